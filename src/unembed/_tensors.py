"""torch tensors to numpy arrays: the one conversion every torch-based part of unembed uses.

torch is imported only when a tensor is converted (importing this module does not import it).
numpy has no bfloat16, so a bfloat16 tensor is widened to float32; that is exact (bfloat16 is
float32 with the low 16 bits of the mantissa dropped). The stored dtype's name is kept
separately (:func:`dtype_name`), so a head remembers how its weights are stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import torch

__all__ = ["as_f64", "dtype_name", "logits_out", "tensor_to_numpy", "to_f64", "to_native"]


def dtype_name(t: torch.Tensor) -> str:
    """The tensor's dtype as numpy/safetensors spell it: ``"float32"``, ``"bfloat16"``, ..."""
    return str(t.dtype).removeprefix("torch.")


def to_numpy(t: torch.Tensor, *, widen_half: bool = False) -> NDArray[np.generic]:
    """A tensor as a numpy array on the CPU in its own precision, bfloat16 widened exactly to
    float32 (and float16 too when ``widen_half``); integer and bool tensors as they are.
    Shares memory with ``t`` where torch allows (a CPU tensor of a numpy dtype)."""
    import torch

    t = t.detach()
    if t.dtype == torch.bfloat16 or (widen_half and t.dtype == torch.float16):
        t = t.to(torch.float32)
    return np.asarray(t.cpu().numpy())


def tensor_to_numpy(t: torch.Tensor) -> tuple[NDArray[np.generic], str]:
    """``(to_numpy(t), dtype_name(t))``: the values in their own precision and the stored
    dtype's name (a weight read from a file)."""
    return to_numpy(t), dtype_name(t)


def to_native(t: torch.Tensor) -> NDArray[np.floating]:
    """A floating tensor (a model's outputs) as float32 or float64, the precision it was
    computed in: float16 and bfloat16 widened exactly to float32 (numpy computes slowly or not
    at all in them)."""
    return to_numpy(t, widen_half=True)  # type: ignore[return-value]


def to_f64(t: torch.Tensor) -> NDArray[np.float64]:
    """A tensor as a float64 numpy array (exact for every floating dtype torch has)."""
    import torch

    return np.asarray(t.detach().to(torch.float64).cpu().numpy(), dtype=np.float64)


def logits_out(t: torch.Tensor) -> NDArray[np.floating] | torch.Tensor:
    """A model's logits as the audit's streaming pass takes them: on the CPU a numpy array in
    the model's own precision (:func:`to_native`, no copy); on an accelerator the tensor
    itself, left on its device (the pass runs there, :mod:`unembed.kernels`)."""
    t = t.detach()
    return to_native(t) if t.device.type == "cpu" else t


def as_f64(z: NDArray[np.floating] | torch.Tensor) -> NDArray[np.float64]:
    """Logits from :func:`logits_out` (array or tensor) as a float64 numpy array."""
    if isinstance(z, np.ndarray):
        return np.asarray(z, dtype=np.float64)
    return to_f64(z)
