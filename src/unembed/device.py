"""Where a torch model's forward passes run, and in what precision.

``device``: a torch device name ("cpu", "cuda", "cuda:1", "mps"), or None / "auto" for CUDA
when torch sees a GPU, else the CPU. ``model_dtype``: "float32", "float16", "bfloat16",
"float64", or None / "auto" for the checkpoint's own dtype. The head unembed analyses is always
the checkpoint's (read before any cast, in float64); a model run in another dtype is checked
against it to that dtype's tolerance.

Only torch-based sources call these (nothing here imports torch before it is needed):

>>> resolve_dtype_name("bf16")
'bfloat16'
>>> resolve_dtype_name(None) is None
True
"""

from __future__ import annotations

from typing import Any

from unembed._checks import UnembedError

__all__ = ["DTYPES", "SUPPORTED_DEVICES", "resolve_device", "resolve_dtype_name", "torch_dtype"]

#: --model-dtype values and their aliases.
DTYPES = {"float32": "float32", "fp32": "float32", "float": "float32",
          "float16": "float16", "fp16": "float16", "half": "float16",
          "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float64": "float64", "fp64": "float64", "double": "float64"}


def resolve_dtype_name(name: str | None) -> str | None:
    """The canonical dtype name for ``name`` (None or "auto": None, the checkpoint's own)."""
    if name is None or str(name).lower() == "auto":
        return None
    key = str(name).lower().removeprefix("torch.")
    if key not in DTYPES:
        raise UnembedError("must be one of auto, float32, float16, bfloat16, float64",
                           argument="model_dtype", function="load", got=name)
    return DTYPES[key]


def torch_dtype(name: str | None) -> Any:
    """The torch dtype of a canonical name (None stays None)."""
    import torch

    n = resolve_dtype_name(name)
    return None if n is None else getattr(torch, n)


#: The torch device types unembed runs models on.
SUPPORTED_DEVICES = ("cpu", "cuda", "mps")


def resolve_device(device: str | None) -> Any:
    """A ``torch.device``: the one named, or CUDA when torch sees a GPU, else the CPU. A device
    named but absent is an error (never a silent fall-back to the CPU)."""
    import torch

    if device is None or str(device).lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(str(device))
    except (RuntimeError, ValueError):
        raise UnembedError("must be a torch device such as cpu, cuda or cuda:1", argument="device",
                           function="load", got=device) from None
    if dev.type not in SUPPORTED_DEVICES:
        # torch names more device types (meta holds no data, xpu, vulkan, ...): unembed runs
        # and checks its models on these only
        raise UnembedError(f"must be cpu, cuda, cuda:N or mps; {dev.type!r} is a "
                           f"torch device type unembed does not run models on", argument="device",
                           function="load", got=device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UnembedError(f"The device {device!r} was asked for, but torch sees no CUDA GPU "
                               f"here.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UnembedError(f"The device {device!r} was asked for, but torch sees "
                               f"{torch.cuda.device_count()} CUDA GPU(s).")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise UnembedError(f"The device {device!r} was asked for, but torch sees no MPS device "
                           f"here.")
    return dev
