"""Torch helpers shared by the torch-based sources: capturing what a module receives, final
norms (their kind, gain and shift). Tensor conversions live in :mod:`unembed._tensors`,
tolerances in :mod:`unembed._tolerance`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed._tensors import as_f64 as as_f64  # re-exported for the sources
from unembed._tensors import logits_out as logits_out
from unembed._tensors import to_f64 as to_f64
from unembed._tensors import to_native as to_native
from unembed._tolerance import tolerance

NORM_KINDS = ("layernorm", "rmsnorm", "rmsnorm_1p")


@contextmanager
def capture_inputs(modules: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Within the block, ``captured[name]`` is the first positional input of the last call of
    ``modules[name]`` (forward pre-hooks; removed on exit)."""
    captured: dict[str, Any] = {}
    handles = []

    def make(name: str) -> Callable[..., None]:
        def hook(_mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> None:
            x = args[0] if args else next(iter((kwargs or {}).values()))
            captured[name] = x.detach()

        return hook

    for name, mod in modules.items():
        handles.append(mod.register_forward_pre_hook(make(name), with_kwargs=True))
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()


def place(model: Any, device: Any, dtype: Any) -> Any:
    """``model`` moved to ``device`` and cast to ``dtype`` (None: kept as it is)."""
    model = model.to(device)
    return model if dtype is None else model.to(dtype)


@dataclass(frozen=True)
class FinalNorm:
    """A final norm between the trunk and the head: ``out = g * n(x) + beta`` with n the
    normalised state (LayerNorm: centered and scaled; RMSNorm: scaled), ``g`` the effective
    gain (``1 + weight`` for Gemma's RMSNorm) and ``beta`` the shift (zero for RMSNorm).

    ``name`` is the module's dotted path; ``eps`` is None until the module has been seen.
    """

    name: str
    kind: str
    gain: NDArray[np.float64]
    shift: NDArray[np.float64] | None
    eps: float | None = None

    def normalise(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """n(x) in float64 for inputs x of shape (..., d): the state without gain or shift."""
        eps = 0.0 if self.eps is None else self.eps
        if self.kind == "layernorm":
            xc = x - x.mean(axis=-1, keepdims=True)
            out: NDArray[np.float64] = xc / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)
            return out
        rms: NDArray[np.float64] = x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)
        return rms

    def apply(self, n: NDArray[np.float64]) -> NDArray[np.float64]:
        """g * n + beta."""
        out = n * self.gain
        if self.shift is not None:
            out = out + self.shift
        return np.asarray(out, dtype=np.float64)

    def describe(self) -> str:
        what = {"layernorm": "LayerNorm (gain g, shift beta)", "rmsnorm": "RMSNorm (gain g)",
                "rmsnorm_1p": "RMSNorm with gain 1 + weight"}[self.kind]
        return f"{what} at {self.name}"


def norm_eps(mod: Any) -> float:
    """The epsilon of a norm module (``eps``, ``variance_epsilon`` or ``epsilon``)."""
    for attr in ("eps", "variance_epsilon", "epsilon"):
        v = getattr(mod, attr, None)
        if isinstance(v, (int, float)):
            return float(v)
    raise UnembedError(f"cannot find the epsilon of the final norm {type(mod).__name__}.")


def norm_from_module(name: str, mod: Any, kind: str) -> FinalNorm:
    """A :class:`FinalNorm` from a module's parameters (float64)."""
    weight = getattr(mod, "weight", None)
    d = int(weight.shape[0]) if weight is not None else int(mod.normalized_shape[0])
    g = to_f64(weight) if weight is not None else np.ones(d)
    if kind == "rmsnorm_1p":
        g = 1.0 + g
    bias = getattr(mod, "bias", None)
    shift = to_f64(bias) if (kind == "layernorm" and bias is not None) else None
    return FinalNorm(name=name, kind=kind, gain=g, shift=shift, eps=norm_eps(mod))


def guess_norm_kinds(mod: Any) -> list[str]:
    """Norm kinds a module may be, by its class (to be confirmed by running it)."""
    import torch

    cls = type(mod).__name__.lower()
    if isinstance(mod, torch.nn.LayerNorm) or "layernorm" in cls:
        return ["layernorm"]
    if "rmsnorm" in cls:
        return ["rmsnorm", "rmsnorm_1p"]
    return []


def norm_matches(norm: FinalNorm, mod: Any, x: Any, dtype: str) -> bool:
    """Whether ``mod(x)`` equals ``g * n(x) + beta`` computed in float64."""
    import torch

    with torch.no_grad():
        y = to_f64(mod(x))
    mine = norm.apply(norm.normalise(to_f64(x)))
    scale = 1.0 + float(np.abs(y).max())
    return bool(np.abs(mine - y).max() <= tolerance(dtype).logits * scale * 10)


def check_logits_equal(where: object, what: str, mine: NDArray[np.float64],
                       z: NDArray[np.float64], dtype: str) -> None:
    """Refuse a model whose own logits ``z`` are not the head's logits ``mine`` =
    head.logits(hidden states) on the same inputs, within the tolerance of the model's dtype
    (relative to the largest logit): the head read would not be the model's."""
    err = float(np.abs(mine - z).max()) if z.size else 0.0
    tol = tolerance(dtype).logits * (1.0 + (float(np.abs(z).max()) if z.size else 0.0))
    if not err <= tol:
        raise UnembedError(f"{where}: {what} are not head.logits(hidden state) (max difference "
                           f"{err:.3g} > {tol:.3g}); this architecture cannot be handled exactly.")
