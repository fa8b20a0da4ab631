"""float64 values as the bytes of a storage dtype: what writing a weight file does to them,
and what a claim about stored values must round them to first."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["to_storage"]


def to_storage(x: NDArray[np.float64], storage: str) -> NDArray[Any]:
    """float64 values in a raw storage dtype (numpy's, or "bf16": float32 rounded to the nearest
    bfloat16, ties to even, as torch rounds), as the bytes to write."""
    if storage != "bf16":
        return np.ascontiguousarray(x, dtype=np.dtype(storage))
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> \
        np.uint32(16)
    return rounded.astype("<u2")
