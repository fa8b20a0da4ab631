"""safetensors files without torch: the header read and checked against the file, one tensor
as a lazily read :class:`~unembed.sources.matrix_file.MatrixFile`, and a tensor written back
into a copy of its file block by block (in place, or retyped with a new header)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed._storage import to_storage
from unembed.rows import Values
from unembed.sources.dtypes import ST_CODES, code_of_name, storage_name
from unembed.sources.matrix_file import MatrixFile, first_line

__all__ = ["check_safetensors", "pick_tensor", "safetensors_header", "safetensors_tensor",
           "write_safetensors_blocks"]


def safetensors_header(path: Path) -> dict[str, dict[str, Any]]:
    """The tensors of a safetensors file, read from its JSON header only (no torch): name ->
    {"dtype", "shape", "offset" (absolute, bytes)}. Raises naming the file when the header is
    not one."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if not 2 <= n <= min(size - 8, 1 << 28):
                raise ValueError(f"header length {n} does not fit a file of {size} bytes")
            header = json.loads(fh.read(n).decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        out: dict[str, dict[str, Any]] = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            st, shape, (a, b) = info["dtype"], tuple(int(x) for x in info["shape"]), \
                info["data_offsets"]
            if st not in ST_CODES or ST_CODES[st].storage is None:
                raise ValueError(f"tensor {name!r} has unsupported dtype {st}")
            item = 2 if st == "BF16" else np.dtype(ST_CODES[st].storage).itemsize
            if int(b) - int(a) != int(np.prod(shape, dtype=np.int64)) * item or \
                    8 + n + int(b) > size:
                raise ValueError(f"tensor {name!r} has data offsets that do not fit")
            out[str(name)] = {"dtype": st, "shape": shape, "offset": 8 + n + int(a)}
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, OSError) as e:
        raise UnembedError(f"not a readable safetensors file ({e}).", path=path) from None
    return out


def safetensors_tensor(path: Path, name: str, shape_path: Path | None = None,
                       fmt: str = "safetensors",
                       header: dict[str, dict[str, Any]] | None = None) -> MatrixFile:
    """One tensor of a safetensors file as a lazily read :class:`MatrixFile`."""
    info = (header or safetensors_header(path))[name]
    code = ST_CODES[info["dtype"]]
    assert code.storage is not None  # safetensors_header refuses the codes not read
    return MatrixFile(code.name, shape_path or path, fmt, name, info["shape"],
                      raw=(path, info["offset"], code.storage, False))


def pick_tensor(names: list[str], tensor: str | None, path: Path,
                shapes: dict[str, tuple[int, ...]],
                ndim: int) -> str:
    if tensor is not None:
        if tensor not in names:
            raise UnembedError(f"no tensor named {tensor!r}; it holds "
                               f"{', '.join(repr(n) for n in names[:12])}"
                               f"{' ...' if len(names) > 12 else ''}.", path=path)
        return tensor
    cands = [n for n in names if len(shapes[n]) == ndim]
    if len(cands) == 1:
        return cands[0]
    kind = "matrix" if ndim == 2 else "vector"
    from unembed.sources.tl_config import config_path

    if config_path(path).is_file():  # written by an export of a TransformerLens model
        raise UnembedError(f"a TransformerLens state dict ({config_path(path).name}, its "
                           f"config, is beside it): read the model with --as transformer-lens, or "
                           f"name one of its {len(cands)} {kind} tensors as {path}:NAME.",
                           path=path)
    raise UnembedError(f"holds {len(cands)} {kind} tensors "
                       f"({', '.join(repr(n) for n in cands[:12])}); name one as {path}:NAME.",
                       path=path)


#: The most bytes a safetensors header may hold (the format's own limit).
_MAX_ST_HEADER = 100 * 2**20


def check_safetensors(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a safetensors file's header before the library opens it: a regular
    file, a JSON header of at most 100 MB, no tensor named twice (JSON would keep the last),
    and every tensor's bytes inside the file. Returns the header."""
    import struct

    from unembed._checks import UnembedError, regular_file

    p = regular_file(path, "safetensors file")
    size = p.stat().st_size
    with open(p, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise UnembedError("not a readable safetensors file (shorter than its 8-byte header "
                                "length).", path=p)
        (n,) = struct.unpack("<Q", head)
        if n > _MAX_ST_HEADER or 8 + n > size:
            raise UnembedError(f"not a readable safetensors file (header length {n} for a file of "
                                f"{size} bytes).", path=p)
        raw = fh.read(n)
    dupes: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                dupes.append(k)
            out[k] = v
        return out

    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=pairs)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise UnembedError(f"not a readable safetensors file (its header is not valid JSON: "
                            f"{first_line(e)}).", path=p) from None
    if not isinstance(header, dict):
        raise UnembedError("not a readable safetensors file (its header is not a JSON object).",
                           path=p)
    if dupes:
        raise UnembedError(f"its header names the tensor {dupes[0]!r} twice; refused (which "
                            f"one is meant is not known).", path=p)
    data = size - 8 - n
    for k, v in header.items():
        if k == "__metadata__":
            continue
        offs = v.get("data_offsets") if isinstance(v, dict) else None
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)
                or not 0 <= offs[0] <= offs[1] <= data):
            raise UnembedError(f"the header's entry for {k!r} does not locate its bytes "
                                f"inside the file ({data} bytes of data).", path=p)
        _check_st_shape(p, k, v, offs[1] - offs[0])
    return header


def _check_st_shape(p: Path, name: str, entry: dict[str, Any], n_bytes: int) -> None:
    """A header entry's shape (non-negative integers) times its dtype's size must be the
    bytes its offsets give it (exact integers: an enormous shape is refused here, not
    overflowed later)."""
    from unembed._checks import UnembedError

    shape, code = entry.get("shape"), entry.get("dtype")
    if not isinstance(shape, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise UnembedError(f"the header's shape of {name!r} is not a list of non-negative "
                            f"integers. Got {str(shape)[:80]}.", path=p)
    item = ST_CODES[str(code)].itemsize if str(code) in ST_CODES else None
    if item is None:
        return  # a dtype unembed does not read: refused by name where the tensor is read
    if math.prod(shape) * item != n_bytes:
        raise UnembedError(f"the header gives {name!r} the shape {str(shape)[:80]} of "
                            f"{code}, which is not the {n_bytes} bytes its offsets span.", path=p)


def write_safetensors_blocks(source: MatrixFile, tmp: Path, values: Values,
                              shift: NDArray[np.float64] | None) -> None:
    """The source's safetensors file (a shard, for a sharded checkpoint) with this tensor's
    values replaced, stored as ``source.dtype``: in place when that is its stored dtype, else
    retyped (a new header; every other tensor copied unchanged)."""
    assert source.raw is not None
    if storage_name(source.raw[2]) == source.dtype:
        _write_safetensors_in_place(source, tmp, values, shift)
    else:
        _write_safetensors_retyped(source, tmp, values, shift)


def _write_safetensors_retyped(source: MatrixFile, tmp: Path, values: Values,
                               shift: NDArray[np.float64] | None) -> None:
    """Write the source's safetensors file with this tensor stored as ``source.dtype``: a new
    header (this tensor's dtype and the data offsets after it changed; metadata and order
    kept), every other tensor's bytes copied in 16 MiB pieces, this tensor written block by
    block of rows: memory O(block), whatever the file's size."""
    import struct

    from unembed._blocks import row_blocks

    assert source.raw is not None and source.tensor is not None
    path = source.raw[0]
    code = code_of_name(source.dtype)
    assert code is not None
    storage = ST_CODES[code].storage
    assert storage is not None
    item = 2 if storage == "bf16" else np.dtype(storage).itemsize
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n).decode("utf-8"))
    base = 8 + n
    tensors = sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                     key=lambda kv: int(kv[1]["data_offsets"][0]))
    new: dict[str, Any] = {}
    if "__metadata__" in header:
        new["__metadata__"] = header["__metadata__"]
    plan: list[tuple[int | None, int]] = []  # (source byte offset or None: this tensor, size)
    off = 0
    for k, v in tensors:
        a, b = (int(x) for x in v["data_offsets"])
        if k == source.tensor:
            size = int(np.prod(values.shape, dtype=np.int64)) * item
            new[k] = {**v, "dtype": code, "data_offsets": [off, off + size]}
            plan.append((None, size))
        else:
            size = b - a
            new[k] = {**v, "data_offsets": [off, off + size]}
            plan.append((base + a, size))
        off += size
    hb = json.dumps(new, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    with open(path, "rb") as src, open(tmp, "wb") as out:
        out.write(struct.pack("<Q", len(hb)) + hb)
        for where, size in plan:
            if where is not None:
                src.seek(where)
                left = size
                while left:
                    piece = src.read(min(left, 1 << 24))
                    if not piece:
                        raise UnembedError("truncated (a tensor's data ends early).", path=path)
                    out.write(piece)
                    left -= len(piece)
                continue
            if isinstance(values, np.ndarray) and values.ndim != 2:
                out.write(to_storage(values if shift is None else values + shift,
                                     storage).tobytes())
                continue
            for s, e in row_blocks(*values.shape):
                blk = values[s:e] if shift is None else values[s:e] + shift
                out.write(to_storage(blk, storage).tobytes())


def _write_safetensors_in_place(source: MatrixFile, tmp: Path, values: Values,
                                shift: NDArray[np.float64] | None) -> None:
    """Copy the source file (every other tensor and the header unchanged: same dtype and shape,
    so the same offsets), then overwrite this tensor's bytes block by block."""
    import shutil

    from unembed._blocks import row_blocks

    assert source.raw is not None
    path, offset, storage, _ = source.raw
    shutil.copyfile(path, tmp)
    item = 2 if storage == "bf16" else np.dtype(storage).itemsize
    with open(tmp, "r+b") as fh:
        if isinstance(values, np.ndarray) and values.ndim != 2:
            fh.seek(offset)
            fh.write(to_storage(values if shift is None else values + shift, storage).tobytes())
            return
        d = values.shape[1]
        for s, e in row_blocks(*values.shape):
            blk = values[s:e] if shift is None else values[s:e] + shift
            fh.seek(offset + s * d * item)
            fh.write(to_storage(blk, storage).tobytes())
