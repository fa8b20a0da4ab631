"""The safetensors dtype codes in one table: each code's bytes per element, how numpy stores it
("bf16" for bfloat16, which numpy lacks: read as 16-bit patterns, widened exactly to float32),
and the dtype name unembed records (torch's names)."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["ST_CODES", "StCode", "code_of_name", "storage_name", "widened"]


class StCode(NamedTuple):
    """One safetensors dtype code."""

    itemsize: int
    storage: str | None  # numpy's dtype string, "bf16", or None: not read as a matrix
    name: str


#: safetensors dtype code -> its size, numpy storage and name.
ST_CODES: dict[str, StCode] = {
    "F64": StCode(8, "<f8", "float64"), "F32": StCode(4, "<f4", "float32"),
    "F16": StCode(2, "<f2", "float16"), "BF16": StCode(2, "bf16", "bfloat16"),
    "I64": StCode(8, "<i8", "int64"), "I32": StCode(4, "<i4", "int32"),
    "I16": StCode(2, "<i2", "int16"), "I8": StCode(1, "i1", "int8"),
    "U8": StCode(1, "u1", "uint8"), "BOOL": StCode(1, "?", "bool"),
    "U64": StCode(8, None, "uint64"), "U32": StCode(4, None, "uint32"),
    "U16": StCode(2, None, "uint16"), "F8_E4M3": StCode(1, None, "float8_e4m3fn"),
    "F8_E5M2": StCode(1, None, "float8_e5m2"),
}

#: The floating dtypes a head may be written as -> their codes.
_FLOAT_CODES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16"}


def code_of_name(name: str) -> str | None:
    """The safetensors code a head of dtype ``name`` is written as (None: not a float)."""
    return _FLOAT_CODES.get(name)


def storage_name(storage: str) -> str:
    """The dtype name of a raw storage code ("bf16" or a numpy dtype string)."""
    return "bfloat16" if storage == "bf16" else np.dtype(storage).name


def widened(storage: str) -> np.dtype[Any]:
    """The numpy dtype a raw storage is read into (bfloat16 widened to float32)."""
    return np.dtype(np.float32) if storage == "bf16" else np.dtype(storage)
