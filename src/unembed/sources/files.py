"""Raw weight files: ``.npy``, ``.pt``/``.pth``/``.bin`` (read with ``weights_only=True``) and
``.safetensors``, each naming one matrix; plus label files.

A file spec is ``PATH`` or ``PATH:TENSOR`` (the tensor's name inside a safetensors file or a
saved state dict). Files are read as stored (float16 and bfloat16 included) and handed on as
float arrays; the Head computes in float64. Nothing is unpickled beyond what
``torch.load(weights_only=True)`` allows.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import fail
from unembed._io import atomic_write
from unembed._tensors import tensor_to_numpy

__all__ = ["MatrixFile", "read_labels", "read_tensor", "split_spec", "write_like"]

SUFFIXES = (".npy", ".pt", ".pth", ".bin", ".safetensors")


@dataclass(frozen=True)
class MatrixFile:
    """One tensor read from a file: its values, stored dtype, format and name inside the file."""

    array: NDArray[Any]
    dtype: str
    path: Path
    format: str  # "npy" | "pt" | "safetensors"
    tensor: str | None


def split_spec(spec: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """``"model.safetensors:lm_head.weight"`` -> (path, "lm_head.weight")."""
    s = os.fspath(spec)
    if os.path.exists(s):
        return Path(s), None
    if ":" in s:
        path, _, name = s.rpartition(":")
        if path and (os.path.splitext(path)[1].lower() in SUFFIXES
                     or path.endswith(".index.json")):
            return Path(path), name or None
    return Path(s), None


def _format_of(path: Path) -> str:
    ext = path.suffix.lower()
    if ext == ".npy":
        return "npy"
    if ext in (".pt", ".pth", ".bin"):
        return "pt"
    if ext == ".safetensors":
        return "safetensors"
    raise fail(f"{path}: unknown weight file type {ext or '(no suffix)'!r}; expected one of "
               f"{', '.join(SUFFIXES)}.")


#: safetensors dtype codes -> the dtype names unembed records (torch's names).
_ST_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
              "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
              "BOOL": "bool"}


def _read_safetensors(path: Path, tensor: str | None,
                      ndim: int) -> tuple[NDArray[Any], str, str]:
    """One tensor of a safetensors file through its numpy API (no torch): (array, dtype name,
    tensor name). bfloat16, which numpy lacks, is read as its 16-bit patterns and widened
    exactly to float32 (the bits are the upper half of a float32's)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            names = list(f.keys())
            slices = {n: f.get_slice(n) for n in names}
            shapes = {n: tuple(sl.get_shape()) for n, sl in slices.items()}
            name = _pick(names, tensor, path, shapes, ndim)
            code = str(slices[name].get_dtype())
            if code != "BF16":
                return np.asarray(f.get_tensor(name)), _ST_DTYPES.get(code, code.lower()), name
    except (SafetensorError, OSError, RuntimeError, ValueError, TypeError) as e:
        raise fail(f"{path}: not a readable safetensors file ({_first_line(e)}).") from None
    return _read_bf16(path, name, shapes[name]), "bfloat16", name


def _read_bf16(path: Path, name: str, shape: tuple[int, ...]) -> NDArray[np.float32]:
    """A bfloat16 tensor of a safetensors file, widened exactly to float32: the file is an
    8-byte little-endian header length, a JSON header with each tensor's data offsets, and the
    raw little-endian data."""
    import struct

    with open(path, "rb") as fh:
        (hlen,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(hlen))
        start, end = header[name]["data_offsets"]
        fh.seek(8 + hlen + int(start))
        raw = fh.read(int(end) - int(start))
    bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
    return bits.view(np.float32).reshape(shape)


def _pick(names: list[str], tensor: str | None, path: Path, shapes: dict[str, tuple[int, ...]],
          ndim: int) -> str:
    if tensor is not None:
        if tensor not in names:
            raise fail(f"{path}: no tensor named {tensor!r}; it holds "
                       f"{', '.join(repr(n) for n in names[:12])}"
                       f"{' ...' if len(names) > 12 else ''}.")
        return tensor
    cands = [n for n in names if len(shapes[n]) == ndim]
    if len(cands) == 1:
        return cands[0]
    kind = "matrix" if ndim == 2 else "vector"
    raise fail(f"{path}: holds {len(cands)} {kind} tensors "
               f"({', '.join(repr(n) for n in cands[:12])}); name one as {path}:NAME.")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def read_npy(path: str | os.PathLike[str], *, mmap: bool = False,
             numeric: bool = False) -> NDArray[Any]:
    """An ``.npy`` file, checked before it is read: a regular file, a valid header, no pickled
    objects, and exactly as many bytes after the header as its shape and dtype say (a file
    that is shorter or longer than its header says is refused, not read in part). With
    ``numeric``, only booleans, integers and floats are accepted (no structured, void or
    string arrays). ``mmap`` memory-maps it read-only."""
    from unembed._checks import file_error, regular_file

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
        raise file_error(p, f"not a readable .npy file ({_first_line(e)}).") from None
    if dtype.hasobject:
        raise file_error(p, "holds Python objects (a pickle); only numeric arrays are read.")
    if numeric and dtype.kind not in "biuf":
        what = "structured or void" if dtype.kind == "V" else f"kind {dtype.kind!r}"
        raise file_error(p, f"holds an array of dtype {dtype} ({what}); expected numbers.")
    n = 1
    for k in shape:
        n *= int(k)
    want = offset + n * dtype.itemsize
    size = p.stat().st_size
    if size != want:
        raise file_error(p, f"its header says shape {tuple(shape)} of {dtype} ({want - offset} "
                            f"bytes of data), but the file holds {size - offset}; truncated "
                            f"or padded.")
    try:
        if mmap and n > 0:
            return np.load(p, mmap_mode="r", allow_pickle=False)
        return np.load(p, allow_pickle=False)
    except Exception as e:
        raise file_error(p, f"not a readable .npy file ({_first_line(e)}).") from None


#: The most bytes a safetensors header may hold (the format's own limit).
_MAX_ST_HEADER = 100 * 2**20


def check_safetensors(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a safetensors file's header before the library opens it: a regular
    file, a JSON header of at most 100 MB, no tensor named twice (JSON would keep the last),
    and every tensor's bytes inside the file. Returns the header."""
    import struct

    from unembed._checks import file_error, regular_file

    p = regular_file(path, "safetensors file")
    size = p.stat().st_size
    with open(p, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise file_error(p, "not a readable safetensors file (shorter than its 8-byte header "
                                "length).")
        (n,) = struct.unpack("<Q", head)
        if n > _MAX_ST_HEADER or 8 + n > size:
            raise file_error(p, f"not a readable safetensors file (header length {n} for a file of "
                                f"{size} bytes).")
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
        raise file_error(p, f"not a readable safetensors file (its header is not valid JSON: "
                            f"{_first_line(e)}).") from None
    if not isinstance(header, dict):
        raise file_error(p, "not a readable safetensors file (its header is not a JSON object).")
    if dupes:
        raise file_error(p, f"its header names the tensor {dupes[0]!r} twice; refused (which "
                            f"one is meant is not known).")
    data = size - 8 - n
    for k, v in header.items():
        if k == "__metadata__":
            continue
        offs = v.get("data_offsets") if isinstance(v, dict) else None
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)
                or not 0 <= offs[0] <= offs[1] <= data):
            raise file_error(p, f"the header's entry for {k!r} does not locate its bytes "
                                f"inside the file ({data} bytes of data).")
    return header


def torch_load(path: str | os.PathLike[str], *, mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)``: only tensors and plain containers are
    unpickled. A zip checkpoint may be memory-mapped (``mmap``); a legacy (pre-1.6, non-zip)
    checkpoint cannot be, and is read whole. Anything else is refused with the reason."""
    import pickle
    import re
    import zipfile

    import torch

    from unembed._checks import file_error, regular_file

    p = regular_file(path, "torch checkpoint")
    with open(p, "rb") as fh:
        magic = fh.read(2)
    try:
        is_zip = zipfile.is_zipfile(p)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise file_error(p, f"not a readable torch file (a damaged zip archive: "
                            f"{_first_line(e)}).") from None
    if not is_zip and magic[:1] != b"\x80":
        raise file_error(p, "not a readable torch file (neither a torch zip archive nor a "
                            "legacy pickle).")
    try:
        return torch.load(p, map_location="cpu", weights_only=True, mmap=mmap and is_zip)
    except pickle.UnpicklingError as e:
        m = re.search(r"Unsupported global: (?:GLOBAL )?(\S+)", str(e))
        what = f" ({m.group(1)})" if m else ""
        raise file_error(p, f"refused to unpickle: the file holds objects other than tensors "
                            f"and plain containers{what}; unembed reads only tensors and plain "
                            f"containers from torch files.") from None
    except Exception as e:  # damaged archive, truncated pickle, bad storage
        msg = _first_line(e)
        if "weights_only" in msg or "pickle" in msg.lower():
            msg = "damaged or not a checkpoint"
        raise file_error(p, f"not a readable torch file ({type(e).__name__}: {msg}).") \
            from None


def read_tensor(spec: str | os.PathLike[str], *, ndim: int = 2) -> MatrixFile:
    """Read one tensor from a weight file spec (``PATH`` or ``PATH:NAME``).

    Raises UnembedError naming the file when it is missing, truncated, not of the format its
    suffix says, or ambiguous (several candidate tensors and no name).
    """
    from unembed._checks import regular_file

    path, tensor = split_spec(spec)
    regular_file(path, "file")
    if path.name.endswith(".index.json"):
        from unembed.sources.checkpoint import read_indexed_tensor

        arr, dtype, name = read_indexed_tensor(path, tensor, ndim)
        return MatrixFile(arr, dtype, path, "sharded", name)
    fmt = _format_of(path)
    if fmt == "npy":
        if tensor is not None:
            raise fail(f"{path}: an .npy file holds one array; drop the ':{tensor}' suffix.")
        arr = read_npy(path)
        return MatrixFile(arr, str(arr.dtype), path, fmt, None)
    if fmt == "safetensors":
        check_safetensors(path)
        arr, dtype, name = _read_safetensors(path, tensor, ndim)
        return MatrixFile(arr, dtype, path, fmt, name)
    import torch

    obj = torch_load(path)
    if isinstance(obj, torch.Tensor):
        if tensor is not None:
            raise fail(f"{path}: holds a single tensor; drop the ':{tensor}' suffix.")
        arr, dtype = tensor_to_numpy(obj)
        return MatrixFile(arr, dtype, path, fmt, None)
    if isinstance(obj, dict):
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        shapes = {k: tuple(v.shape) for k, v in tensors.items()}
        name = _pick(list(tensors), tensor, path, shapes, ndim)
        arr, dtype = tensor_to_numpy(tensors[name])
        return MatrixFile(arr, dtype, path, fmt, name)
    raise fail(f"{path}: holds a {type(obj).__name__}, not a tensor or a dict of tensors.")


def read_labels(path: str | os.PathLike[str]) -> list[str]:
    """Labels from a file: JSON (a list, or a dict id -> label as HF's ``id2label``), or plain
    text with one label per line."""
    from unembed._checks import read_json, read_text

    p = Path(path)
    if p.suffix.lower() == ".json":
        obj = read_json(p, "labels file")
        if isinstance(obj, dict) and "id2label" in obj:
            obj = obj["id2label"]
        if isinstance(obj, dict):
            try:
                items = sorted((int(k), str(v)) for k, v in obj.items())
            except ValueError:
                raise fail(f"{p}: a labels dict must map integer ids to labels.") from None
            if [k for k, _ in items] != list(range(len(items))):
                raise fail(f"{p}: label ids must be 0..{len(items) - 1} without gaps.")
            return [v for _, v in items]
        if isinstance(obj, list):
            return [str(x) for x in obj]
        raise fail(f"{p}: expected a JSON list of labels or a dict id -> label.")
    lines = read_text(p, "labels file").splitlines()
    while lines and lines[-1] == "":
        lines.pop()
    return lines


def write_like(source: MatrixFile, values: NDArray[np.float64], out: str | os.PathLike[str], *,
               force: bool = False) -> Path:
    """Write ``values`` in the format and dtype of ``source`` (the same tensor name; every other
    tensor of a safetensors or state-dict file is copied unchanged). Atomic; an existing
    ``out`` needs ``force``."""
    outp = Path(out)
    if source.format == "sharded":
        raise fail(f"{source.path}: a tensor of a sharded checkpoint is not written back as a "
                   f"file; export the whole model with --model DIR (export_model).")
    if outp.suffix.lower() != source.path.suffix.lower():
        raise fail(f"{outp}: the output must have the input's suffix "
                   f"{source.path.suffix!r} (it is written in the input's format).")
    if values.shape != source.array.shape:
        raise fail(f"{outp}: values of shape {values.shape} do not match the source tensor's "
                   f"shape {source.array.shape}.")
    if source.format == "npy":
        arr = values.astype(source.array.dtype)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.save(fh, arr)

        atomic_write(outp, write, force=force)
        return outp
    import torch

    tdtype = getattr(torch, source.dtype)
    new_t = torch.from_numpy(np.array(values, dtype=np.float64)).to(tdtype)
    if source.format == "safetensors":
        from safetensors import safe_open
        from safetensors.torch import save_file

        with safe_open(str(source.path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            metadata = f.metadata()
        assert source.tensor is not None
        tensors[source.tensor] = new_t
        atomic_write(outp, lambda tmp: save_file(tensors, str(tmp), metadata=metadata),
                     force=force)
        return outp
    obj = torch_load(source.path)
    if isinstance(obj, dict):
        assert source.tensor is not None
        obj = dict(obj)
        obj[source.tensor] = new_t
    else:
        obj = new_t
    atomic_write(outp, lambda tmp: torch.save(obj, tmp), force=force)
    return outp


def write_head_like(head: Any, out: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write ``head.W`` to ``out`` in the format and dtype of the file the head's original was
    read from (``head.meta["file"]``, set by :func:`unembed.sources.load_head_file`)."""
    source = head.meta.get("file")
    if not isinstance(source, MatrixFile):
        raise fail("write_head_like: this head was not read from a weight file; nothing to write "
                   "it like.")
    return write_like(source, head.W, out, force=force)
