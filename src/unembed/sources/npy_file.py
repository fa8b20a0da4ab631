""".npy files: read after their header and size are checked (never unpickled), a matrix
read on demand, and a matrix written block by block."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed.rows import Values
from unembed.sources.matrix_file import MatrixFile, first_line

__all__ = ["npy_matrix", "read_npy", "write_npy_blocks"]


def read_npy(path: str | os.PathLike[str], *, mmap: bool = False,
             numeric: bool = False) -> NDArray[Any]:
    """An ``.npy`` file, checked before it is read: a regular file, a valid header, no pickled
    objects, and exactly as many bytes after the header as its shape and dtype say (a file
    that is shorter or longer than its header says is refused, not read in part). With
    ``numeric``, only booleans, integers and floats are accepted (no structured, void or
    string arrays). ``mmap`` memory-maps it read-only."""
    from unembed._checks import UnembedError, regular_file

    p = regular_file(path, ".npy file")
    fmt = np.lib.format
    try:
        with open(p, "rb") as fh:
            version = fmt.read_magic(fh)
            if version == (1, 0):
                shape, _fortran, dtype = fmt.read_array_header_1_0(fh)
            elif version in ((2, 0), (3, 0)):
                shape, _fortran, dtype = fmt.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            offset = fh.tell()
    except Exception as e:  # bad magic, bad header, truncated header
        raise UnembedError(f"not a readable .npy file ({first_line(e)}).", path=p) from None
    if dtype.hasobject:
        raise UnembedError("holds Python objects (a pickle); only numeric arrays are read.", path=p)
    if numeric and dtype.kind not in "biuf":
        what = "structured or void" if dtype.kind == "V" else f"kind {dtype.kind!r}"
        raise UnembedError(f"holds an array of dtype {dtype} ({what}); expected numbers.", path=p)
    n = 1
    for k in shape:
        n *= int(k)
    want = offset + n * dtype.itemsize
    size = p.stat().st_size
    if size != want:
        raise UnembedError(f"its header says shape {tuple(shape)} of {dtype} ({want - offset} "
                            f"bytes of data), but the file holds {size - offset}; truncated "
                            f"or padded.", path=p)
    try:
        if mmap and n > 0:
            return np.load(p, mmap_mode="r", allow_pickle=False)
        return np.load(p, allow_pickle=False)
    except Exception as e:
        raise UnembedError(f"not a readable .npy file ({first_line(e)}).", path=p) from None


def npy_matrix(path: Path) -> MatrixFile:
    """An .npy file's header (format, dtype, shape, data offset); values read on demand.
    The file's checks are :func:`read_npy`'s (memory-mapped there, so nothing is read)."""
    read_npy(path, mmap=True)
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read(fh, max_header_size=1 << 20)
            offset = fh.tell()
        size = path.stat().st_size
        if dtype.hasobject:
            raise ValueError("the array holds Python objects (would need unpickling)")
        if dtype.kind not in "fiub" or dtype.fields is not None:
            raise ValueError(f"unsupported dtype {dtype}")
        if offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > size:
            raise ValueError(f"the file holds {size - offset} bytes of data for an array of "
                             f"shape {shape} and dtype {dtype}")
    except Exception as e:  # truncated, pickled or not an .npy at all
        raise UnembedError(f"not a readable .npy file ({type(e).__name__}: {e}).",
                           path=path) from None
    return MatrixFile(str(dtype.newbyteorder("=")), path, "npy", None,
                      tuple(int(x) for x in shape),
                      raw=(path, offset, dtype.str, bool(fortran and len(shape) > 1)))


def write_npy_blocks(path: Path, values: Values, dtype: np.dtype[Any],
                     shift: NDArray[np.float64] | None = None) -> None:
    """Write ``values`` (+ ``shift`` on every row, if given) as an .npy of ``dtype``, block by
    block (no full-size temporary in the target dtype)."""
    from unembed._blocks import row_blocks

    with open(path, "wb") as fh:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                  "shape": tuple(values.shape)}
        np.lib.format.write_array_header_2_0(fh, header) if _needs_v2(header) else \
            np.lib.format.write_array_header_1_0(fh, header)
        if isinstance(values, np.ndarray) and values.ndim != 2:
            fh.write(np.ascontiguousarray(values, dtype=dtype).tobytes())
            return
        for s, e in row_blocks(*values.shape):
            blk = values[s:e] if shift is None else values[s:e] + shift
            fh.write(np.ascontiguousarray(blk, dtype=dtype).tobytes())


def _needs_v2(header: dict[str, Any]) -> bool:
    import io

    try:
        np.lib.format.write_array_header_1_0(io.BytesIO(), header)
    except ValueError:
        return True
    return False
