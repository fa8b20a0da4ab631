"""Raw weight files: ``.npy``, ``.pt``/``.pth``/``.bin`` (read with ``weights_only=True``) and
``.safetensors``, each naming one matrix; plus label files.

A file spec is ``PATH`` or ``PATH:TENSOR`` (the tensor's name inside a safetensors file or a
saved state dict). Files are read as stored (float16 and bfloat16 included) and handed on as
float arrays; the Head computes in float64. Nothing is unpickled beyond what
``torch.load(weights_only=True)`` allows.
"""

from __future__ import annotations

import json
import math
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


@dataclass(frozen=True, eq=False)
class MatrixFile:
    """One tensor of a file: where it is, its stored dtype and shape, and how to read it.

    ``.npy`` and ``.safetensors`` tensors are not read when the file is opened: their values
    are read on demand, either all at once (:attr:`array`, for small tensors: a bias, inputs)
    or into one float64 array block by block (:meth:`read_float64`, for heads: no full-size
    intermediate in the stored dtype). Torch pickles (``.pt``) are loaded whole by torch.
    """

    dtype: str
    path: Path
    format: str  # "npy" | "pt" | "safetensors" | "sharded"
    tensor: str | None
    shape: tuple[int, ...]
    #: where the raw bytes are: (file, byte offset, numpy storage dtype, Fortran order) for
    #: npy/safetensors/sharded tensors; None when the values are already loaded.
    raw: tuple[Path, int, str, bool] | None = None
    loaded: NDArray[Any] | None = None

    @property
    def array(self) -> NDArray[Any]:
        """The whole tensor in its stored precision (bfloat16 widened exactly to float32)."""
        if self.loaded is not None:
            return self.loaded
        assert self.raw is not None
        if len(self.shape) == 2:
            from unembed._blocks import row_blocks

            out = np.empty(self.shape, dtype=_widened(self.raw[2]))
            for s, e in row_blocks(*self.shape):
                out[s:e] = self._rows(s, e)
            return out
        data = _read_raw(self.raw, self.shape, 0, int(np.prod(self.shape, dtype=np.int64)))
        return data.reshape(self.shape)

    def _rows(self, start: int, stop: int) -> NDArray[Any]:
        """Rows start..stop of a matrix, read from the file (stored precision, bfloat16 widened)."""
        assert self.raw is not None and len(self.shape) == 2
        d = self.shape[1]
        if self.raw[3]:  # Fortran order: read through a memory map (rare)
            mm = np.load(self.raw[0], mmap_mode="r", allow_pickle=False)
            return np.array(mm[start:stop])
        return _read_raw(self.raw, self.shape, start * d, (stop - start) * d).reshape(-1, d)

    def read_float64(self) -> NDArray[np.float64]:
        """The matrix as one float64 C-contiguous array, read block by block (each block of rows
        read from the file into a small buffer and converted in place): peak memory is the
        float64 array plus one block. File pages are read, not mapped, so they do not count
        towards this process's resident memory."""
        from unembed._blocks import row_blocks

        if self.raw is None or len(self.shape) != 2:
            return np.array(self.array, dtype=np.float64)
        out = np.empty(self.shape, dtype=np.float64)
        for s, e in row_blocks(*self.shape):
            out[s:e] = self._rows(s, e)
        return out


_NP_OF_ST = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "bf16", "I64": "<i8",
             "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
_NAME_OF_ST = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
               "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
               "BOOL": "bool"}


def _storage_name(storage: str) -> str:
    """The dtype name of a raw storage code ("bf16" or a numpy dtype string)."""
    return "bfloat16" if storage == "bf16" else np.dtype(storage).name


def _widened(storage: str) -> np.dtype[Any]:
    return np.dtype(np.float32) if storage == "bf16" else np.dtype(storage)


def _read_raw(raw: tuple[Path, int, str, bool], shape: tuple[int, ...], first: int,
              count: int) -> NDArray[Any]:
    """``count`` consecutive elements from element ``first`` of a raw little-endian tensor;
    bfloat16 is widened exactly to float32 (its 16 bits are the top half of a float32)."""
    path, offset, storage, _ = raw
    item = 2 if storage == "bf16" else np.dtype(storage).itemsize
    with open(path, "rb") as fh:
        fh.seek(offset + first * item)
        if storage == "bf16":
            buf = np.empty(count, dtype="<u2")
            n = fh.readinto(buf.data.cast("B"))
            if n != count * item:
                raise fail(f"{path}: truncated (the tensor's data ends early).")
            return (buf.astype("<u4") << 16).view(np.float32)
        out = np.empty(count, dtype=np.dtype(storage))
        n = fh.readinto(out.data.cast("B"))
        if n != count * item:
            raise fail(f"{path}: truncated (the tensor's data ends early).")
        return out.astype(out.dtype.newbyteorder("="), copy=False)


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
            if st not in _NP_OF_ST:
                raise ValueError(f"tensor {name!r} has unsupported dtype {st}")
            item = 2 if st == "BF16" else np.dtype(_NP_OF_ST[st]).itemsize
            if int(b) - int(a) != int(np.prod(shape, dtype=np.int64)) * item or \
                    8 + n + int(b) > size:
                raise ValueError(f"tensor {name!r} has data offsets that do not fit")
            out[str(name)] = {"dtype": st, "shape": shape, "offset": 8 + n + int(a)}
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, OSError) as e:
        raise fail(f"{path}: not a readable safetensors file ({e}).") from None
    return out


def safetensors_tensor(path: Path, name: str, shape_path: Path | None = None,
                       fmt: str = "safetensors",
                       header: dict[str, dict[str, Any]] | None = None) -> MatrixFile:
    """One tensor of a safetensors file as a lazily read :class:`MatrixFile`."""
    info = (header or safetensors_header(path))[name]
    st = info["dtype"]
    return MatrixFile(_NAME_OF_ST[st], shape_path or path, fmt, name, info["shape"],
                      raw=(path, info["offset"], _NP_OF_ST[st], False))


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
    from unembed.sources.tlens import config_path

    if config_path(path).is_file():  # written by an export of a TransformerLens model
        raise fail(f"{path}: a TransformerLens state dict ({config_path(path).name}, its "
                   f"config, is beside it): read the model with --as transformer-lens, or "
                   f"name one of its {len(cands)} {kind} tensors as {path}:NAME.")
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
        _check_st_shape(p, k, v, offs[1] - offs[0])
    return header


#: Bytes per element of the safetensors dtype codes.
_ST_ITEMSIZE = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2,
                "BF16": 2, "I16": 2, "U16": 2, "I8": 1, "U8": 1, "BOOL": 1,
                "F8_E4M3": 1, "F8_E5M2": 1}


def _check_st_shape(p: Path, name: str, entry: dict[str, Any], n_bytes: int) -> None:
    """A header entry's shape (non-negative integers) times its dtype's size must be the
    bytes its offsets give it (exact integers: an enormous shape is refused here, not
    overflowed later)."""
    from unembed._checks import file_error

    shape, code = entry.get("shape"), entry.get("dtype")
    if not isinstance(shape, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise file_error(p, f"the header's shape of {name!r} is not a list of non-negative "
                            f"integers. Got {str(shape)[:80]}.")
    item = _ST_ITEMSIZE.get(str(code))
    if item is None:
        return  # a dtype unembed does not read: refused by name where the tensor is read
    if math.prod(shape) * item != n_bytes:
        raise file_error(p, f"the header gives {name!r} the shape {str(shape)[:80]} of "
                            f"{code}, which is not the {n_bytes} bytes its offsets span.")


_LEGACY_ELEMENT_BYTES = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
    "BoolStorage": 1, "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16,
}


def _check_legacy_storages(p: Path) -> None:
    """Check the storages of a legacy (pre-1.6, non-zip) torch file against the file before
    torch reads them, without unpickling anything (the pickles are only tokenized).

    The layout: five pickles (magic number, protocol, system info, the object whose storages
    are persistent ids ``('storage', torch.<Type>Storage, key, location, numel, ...)``, the
    list of storage keys), then for each key an int64 element count followed by count x
    element-size bytes. A storage whose count disagrees with the object's, or that runs past
    the end of the file, is refused here in words (torch's own message for it is a C format
    string). Anything this walk does not recognise is left to torch."""
    import pickletools
    import struct

    from unembed._checks import UnembedError, file_error

    strings = {"BINUNICODE", "SHORT_BINUNICODE", "UNICODE", "BINUNICODE8", "BINSTRING",
               "SHORT_BINSTRING", "STRING"}
    ints = {"BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG"}

    def values(fh: Any) -> list[object]:
        out: list[object] = []
        memo: dict[int, object] = {}
        for op, arg, _pos in pickletools.genops(fh):
            name = op.name
            if name in strings or name in ints:
                out.append(arg)
            elif name == "GLOBAL":
                out.append(f"GLOBAL:{arg}")
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(str(arg))] = out[-1] if out else None
            elif name == "MEMOIZE":
                memo[len(memo)] = out[-1] if out else None
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                out.append(memo.get(int(str(arg))))
            elif name != "MARK":
                out.append(None)
        return out

    size = p.stat().st_size
    declared: dict[str, tuple[int, int]] = {}  # key -> (numel, bytes per element)
    try:
        with open(p, "rb") as fh:
            for _ in range(3):  # magic number, protocol version, system info
                values(fh)
            obj = values(fh)
            keys = [k for k in values(fh) if isinstance(k, str)]
            for j in range(len(obj) - 4):
                kind, key, numel = obj[j + 1], obj[j + 2], obj[j + 4]
                if (obj[j] == "storage" and isinstance(kind, str)
                        and kind.startswith("GLOBAL:torch ") and isinstance(key, str)
                        and isinstance(numel, int)):
                    es = _LEGACY_ELEMENT_BYTES.get(kind.removeprefix("GLOBAL:torch "))
                    if es is None:
                        return
                    declared[key] = (numel, es)
            if not keys or any(k not in declared for k in keys):
                return
            for k in keys:
                numel, es = declared[k]
                at = fh.tell()
                head = fh.read(8)
                if len(head) < 8:
                    raise file_error(p, f"not a readable torch file (storage {k} declares "
                                        f"{numel} elements, but the file ends at byte {size} "
                                        f"before its data).")
                (count,) = struct.unpack("<q", head)
                if count != numel:
                    raise file_error(p, f"not a readable torch file (storage {k} declares "
                                        f"{numel} elements in the pickle but {count} in its "
                                        f"data header).")
                left = size - at - 8
                if count * es > left:
                    raise file_error(p, f"not a readable torch file (storage {k} declares "
                                        f"{count} elements of {es} bytes, but the file holds "
                                        f"only {left} bytes after its header).")
                fh.seek(count * es, 1)
    except UnembedError:
        raise
    except (ValueError, EOFError, struct.error, OSError):  # not this layout: torch decides
        return


def torch_load(path: str | os.PathLike[str], *, mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)``: only tensors and plain containers are
    unpickled. A zip checkpoint may be memory-mapped (``mmap``); a legacy (pre-1.6, non-zip)
    checkpoint cannot be, and is read whole. Anything else is refused with the reason."""
    import pickle
    import re
    import warnings
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
    if not is_zip:
        _check_legacy_storages(p)
    try:
        with warnings.catch_warnings():
            # "Detected pickle protocol N": the refusal below says what the file is
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(p, map_location="cpu", weights_only=True, mmap=mmap and is_zip)
    except pickle.UnpicklingError as e:
        m = re.search(r"Unsupported global: (?:GLOBAL )?(\S+)", str(e))
        what = f" ({m.group(1)})" if m else ""
        if not is_zip and not m:
            raise file_error(p, "not a weights-only torch file (a pickle that torch.save did "
                                "not write, or one holding more than tensors and plain "
                                "containers); unembed does not unpickle it.") from None
        raise file_error(p, f"refused to unpickle: the file holds objects other than tensors "
                            f"and plain containers{what}; unembed reads only tensors and plain "
                            f"containers from torch files.") from None
    except Exception as e:  # damaged archive, truncated pickle, bad storage
        msg = _first_line(e)
        if "%ld" in msg:  # a C format string torch did not fill in: keep the words only
            msg = msg.split("%ld")[0].rstrip(" :").removesuffix(" expected").rstrip(" :")
        if "storage that is not resizable" in msg:  # a memory-mapped zip record too short
            msg = "a tensor declares more elements than its storage record holds"
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

        return read_indexed_tensor(path, tensor, ndim)
    fmt = _format_of(path)
    if fmt == "npy":
        if tensor is not None:
            raise fail(f"{path}: an .npy file holds one array; drop the ':{tensor}' suffix.")
        return _npy(path)
    if fmt == "safetensors":
        check_safetensors(path)  # the file's own checks first (sizes vs header, ...)
        header = safetensors_header(path)
        names = list(header)
        name = _pick(names, tensor, path, {n: header[n]["shape"] for n in names}, ndim)
        return safetensors_tensor(path, name, header=header)
    import torch

    obj = torch_load(path)
    if isinstance(obj, torch.Tensor):
        if tensor is not None:
            raise fail(f"{path}: holds a single tensor; drop the ':{tensor}' suffix.")
        arr, dtype = tensor_to_numpy(obj)
        return MatrixFile(dtype, path, fmt, None, tuple(arr.shape), loaded=arr)
    if isinstance(obj, dict):
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        shapes = {k: tuple(v.shape) for k, v in tensors.items()}
        name = _pick(list(tensors), tensor, path, shapes, ndim)
        arr, dtype = tensor_to_numpy(tensors[name])
        return MatrixFile(dtype, path, fmt, name, tuple(arr.shape), loaded=arr)
    raise fail(f"{path}: holds a {type(obj).__name__}, not a tensor or a dict of tensors.")


def _npy(path: Path) -> MatrixFile:
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
        raise fail(f"{path}: not a readable .npy file ({type(e).__name__}: {e}).") from None
    return MatrixFile(str(dtype.newbyteorder("=")), path, "npy", None,
                      tuple(int(x) for x in shape),
                      raw=(path, offset, dtype.str, bool(fortran and len(shape) > 1)))


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
               force: bool = False, shift: NDArray[np.float64] | None = None) -> Path:
    """Write ``values`` in the format and dtype of ``source`` (the same tensor name; every
    other tensor of a safetensors or state-dict file is copied unchanged; a tensor of a
    sharded safetensors checkpoint is written as a copy of its shard, to a ``.safetensors``
    path). Atomic; an existing
    ``out`` needs ``force``. With ``shift`` (d,), ``values + shift`` (every row moved by it)
    is written, block by block, without forming it: .npy and .safetensors files are written in
    row blocks (peak memory: one block), torch files whole."""
    outp = Path(out)
    if source.format == "sharded" and source.raw is not None and \
            outp.suffix.lower() == ".safetensors":
        # The shard that holds the tensor, written with the tensor replaced (a .safetensors
        # file that names the same tensor; the other shards are untouched and not copied).
        if tuple(values.shape) != source.shape:
            raise fail(f"{outp}: values of shape {values.shape} do not match the source "
                       f"tensor's shape {source.shape}.")
        atomic_write(outp, lambda tmp: _write_safetensors_blocks(source, tmp, values, shift),
                     force=force)
        return outp
    if source.format == "sharded":
        raise fail(f"{outp}: a tensor of a sharded checkpoint is written as a .safetensors "
                   f"file (its shard, with the tensor replaced); or export the whole model "
                   f"with --model DIR (export_model).")
    if outp.suffix.lower() != source.path.suffix.lower():
        raise fail(f"{outp}: the output must have the input's suffix "
                   f"{source.path.suffix!r} (it is written in the input's format).")
    if tuple(values.shape) != source.shape:
        raise fail(f"{outp}: values of shape {values.shape} do not match the source tensor's "
                   f"shape {source.shape}.")
    if source.format == "npy":
        atomic_write(outp, lambda tmp: write_npy_blocks(tmp, values, np.dtype(source.dtype),
                                                        shift), force=force)
        return outp
    if source.format == "safetensors" and source.raw is not None and \
            source.dtype in _ST_OF_NAME:
        atomic_write(outp, lambda tmp: _write_safetensors_blocks(source, tmp, values, shift),
                     force=force)
        return outp
    import torch

    tdtype = getattr(torch, source.dtype)
    full = np.array(values, dtype=np.float64) if shift is None else values + shift
    new_t = torch.from_numpy(full).to(tdtype)
    if source.format == "safetensors":  # another dtype than stored: the file is rewritten
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


def to_storage(x: NDArray[np.float64], storage: str) -> NDArray[Any]:
    """float64 values in a raw storage dtype (numpy's, or "bf16": float32 rounded to the nearest
    bfloat16, ties to even, as torch rounds), as the bytes to write."""
    if storage != "bf16":
        return np.ascontiguousarray(x, dtype=np.dtype(storage))
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> \
        np.uint32(16)
    return rounded.astype("<u2")


#: Floating dtype names -> safetensors codes (what a head may be written as).
_ST_OF_NAME = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16"}


def _write_safetensors_blocks(source: MatrixFile, tmp: Path, values: NDArray[np.float64],
                              shift: NDArray[np.float64] | None) -> None:
    """The source's safetensors file (a shard, for a sharded checkpoint) with this tensor's
    values replaced, stored as ``source.dtype``: in place when that is its stored dtype, else
    retyped (a new header; every other tensor copied unchanged)."""
    assert source.raw is not None
    if _storage_name(source.raw[2]) == source.dtype:
        _write_safetensors_in_place(source, tmp, values, shift)
    else:
        _write_safetensors_retyped(source, tmp, values, shift)


def _write_safetensors_retyped(source: MatrixFile, tmp: Path, values: NDArray[np.float64],
                               shift: NDArray[np.float64] | None) -> None:
    """Write the source's safetensors file with this tensor stored as ``source.dtype``: a new
    header (this tensor's dtype and the data offsets after it changed; metadata and order
    kept), every other tensor's bytes copied in 16 MiB pieces, this tensor written block by
    block of rows: memory O(block), whatever the file's size."""
    import struct

    from unembed._blocks import row_blocks

    assert source.raw is not None and source.tensor is not None
    path = source.raw[0]
    code = _ST_OF_NAME[source.dtype]
    storage = _NP_OF_ST[code]
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
                        raise fail(f"{path}: truncated (a tensor's data ends early).")
                    out.write(piece)
                    left -= len(piece)
                continue
            if values.ndim != 2:
                out.write(to_storage(values if shift is None else values + shift,
                                     storage).tobytes())
                continue
            for s, e in row_blocks(*values.shape):
                blk = values[s:e] if shift is None else values[s:e] + shift
                out.write(to_storage(blk, storage).tobytes())


def _write_safetensors_in_place(source: MatrixFile, tmp: Path, values: NDArray[np.float64],
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
        if values.ndim != 2:
            fh.seek(offset)
            fh.write(to_storage(values if shift is None else values + shift, storage).tobytes())
            return
        d = values.shape[1]
        for s, e in row_blocks(*values.shape):
            blk = values[s:e] if shift is None else values[s:e] + shift
            fh.seek(offset + s * d * item)
            fh.write(to_storage(blk, storage).tobytes())


def write_npy_blocks(path: Path, values: NDArray[np.float64], dtype: np.dtype[Any],
                     shift: NDArray[np.float64] | None = None) -> None:
    """Write ``values`` (+ ``shift`` on every row, if given) as an .npy of ``dtype``, block by
    block (no full-size temporary in the target dtype)."""
    from unembed._blocks import row_blocks

    with open(path, "wb") as fh:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                  "shape": tuple(values.shape)}
        np.lib.format.write_array_header_2_0(fh, header) if _needs_v2(header) else \
            np.lib.format.write_array_header_1_0(fh, header)
        if values.ndim != 2:
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


def write_head_like(head: Any, out: str | os.PathLike[str], *, force: bool = False,
                    shift: NDArray[np.float64] | None = None) -> Path:
    """Write ``head.W`` to ``out`` in the format and dtype of the file the head's original was
    read from (``head.file``, set by :func:`unembed.sources.load_head_file`)."""
    source = head.file
    if not isinstance(source, MatrixFile):
        raise fail("write_head_like: this head was not read from a weight file; nothing to write "
                   "it like.")
    return write_like(source, head.W, out, force=force, shift=shift)
