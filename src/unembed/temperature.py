"""A temperature per input: a model that divides its scores by T_n > 0 before the softmax.

For a head without a bias, z_n = (W h_n) / T_n = W (h_n / T_n): dividing each hidden state by
its own temperature is exactly the model, so every analysis of hidden states applies to the
scaled states. With a bias, (W h_n + b) / T_n = W (h_n / T_n) + b / T_n divides the bias by a
different T for each input: that is not one head, and it is refused. (A single fixed T is
one head, ``Head(W / T, b / T)``: ``load(..., temperature=T)``.)

>>> import numpy as np
>>> from unembed import Head
>>> head = Head(np.eye(2))
>>> divide_by_temperature(np.array([[2.0, 4.0], [3.0, 3.0]]), head, np.array([2.0, 3.0]))
array([[1., 2.],
       [1., 1.]])
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed.errors import Setting
from unembed.head import Head

__all__ = ["divide_by_temperature", "read_temperatures"]

_FIXED = Setting("temperature=T", "--temperature T")


def read_temperatures(path: str | os.PathLike[str], n: int) -> NDArray[np.float64]:
    """One positive finite temperature per input row from a 1-D weight file (``.npy``,
    ``.safetensors``, ``PATH:TENSOR``), shape (n,) float64."""
    from unembed.sources.files import read_tensor

    arr = np.asarray(read_tensor(path, ndim=1).array, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n:
        raise UnembedError(f"{arr.shape[0]} temperatures for {n} input rows; expected one per "
                           f"row.", path=path)
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise UnembedError("every temperature must be a positive finite number.", path=path)
    return arr


def divide_by_temperature(H: Any, head: Head, T: NDArray[np.float64],
                          where: str | os.PathLike[str] | None = None) -> NDArray[np.float64]:
    """Hidden states H (n, d) divided row by row by T (n,): the inputs of ``head`` that give
    the model's scores (W h_n + b) / T_n, exactly when the head has no bias (else refused,
    naming ``where``, the file of the temperatures)."""
    if head.b is not None and np.any(head.b != 0):
        raise UnembedError(("a per-input temperature with a bias is not one head (the bias "
                            "would be divided by a different T for each input); fold the bias "
                            "into the weights or give a fixed ", _FIXED, "."), path=where)
    return np.asarray(H, dtype=np.float64) / np.asarray(T, dtype=np.float64)[:, None]
