"""torch checkpoints read with ``weights_only=True``, after the file's own checks (a legacy
checkpoint's storages against its size); nothing else is unpickled."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from unembed.sources.matrix_file import first_line

__all__ = ["torch_load"]


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

    from unembed._checks import UnembedError

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
                    raise UnembedError(f"not a readable torch file (storage {k} declares "
                                        f"{numel} elements, but the file ends at byte {size} "
                                        f"before its data).", path=p)
                (count,) = struct.unpack("<q", head)
                if count != numel:
                    raise UnembedError(f"not a readable torch file (storage {k} declares "
                                        f"{numel} elements in the pickle but {count} in its "
                                        f"data header).", path=p)
                left = size - at - 8
                if count * es > left:
                    raise UnembedError(f"not a readable torch file (storage {k} declares "
                                        f"{count} elements of {es} bytes, but the file holds "
                                        f"only {left} bytes after its header).", path=p)
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

    from unembed._checks import UnembedError, regular_file

    p = regular_file(path, "torch checkpoint")
    with open(p, "rb") as fh:
        magic = fh.read(2)
    try:
        is_zip = zipfile.is_zipfile(p)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise UnembedError(f"not a readable torch file (a damaged zip archive: "
                            f"{first_line(e)}).", path=p) from None
    if not is_zip and magic[:1] != b"\x80":
        raise UnembedError("not a readable torch file (neither a torch zip archive nor a "
                            "legacy pickle).", path=p)
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
            raise UnembedError("not a weights-only torch file (a pickle that torch.save did "
                                "not write, or one holding more than tensors and plain "
                                "containers); unembed does not unpickle it.", path=p) from None
        raise UnembedError(f"refused to unpickle: the file holds objects other than tensors "
                            f"and plain containers{what}; unembed reads only tensors and plain "
                            f"containers from torch files.", path=p) from None
    except Exception as e:  # damaged archive, truncated pickle, bad storage
        msg = first_line(e)
        if "%ld" in msg:  # a C format string torch did not fill in: keep the words only
            msg = msg.split("%ld")[0].rstrip(" :").removesuffix(" expected").rstrip(" :")
        if "storage that is not resizable" in msg:  # a memory-mapped zip record too short
            msg = "a tensor declares more elements than its storage record holds"
        if "weights_only" in msg or "pickle" in msg.lower():
            msg = "damaged or not a checkpoint"
        raise UnembedError(f"not a readable torch file ({type(e).__name__}: {msg}).", path=p) \
            from None
