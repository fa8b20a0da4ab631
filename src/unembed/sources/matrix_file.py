"""One tensor of a weight file, read on demand: :class:`MatrixFile` (the
:class:`unembed.rows.StoredMatrix` a head read from a file keeps), file specs
(``PATH:TENSOR``) and the suffixes read."""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed.sources.dtypes import widened

__all__ = ["SUFFIXES", "MatrixFile", "first_line", "format_of", "split_spec"]

#: held while a file's descriptor is opened for the first time
_OPENING = threading.Lock()

SUFFIXES = (".npy", ".pt", ".pth", ".bin", ".safetensors")


@dataclass(frozen=True, eq=False)
class MatrixFile:
    """One tensor of a file: where it is, its stored dtype and shape, and how to read it (a
    :class:`unembed.rows.StoredMatrix`).

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

    def _pinned(self) -> int:
        """A descriptor of the file the first read found at ``raw``'s path, kept open for as
        long as this object lives: every later read comes from the same file, even when its
        path is replaced meanwhile (``counterexample --out`` over its own input writes a new
        file and renames it into place; the head read from the old one still reads the old
        one, so what is verified is the original against what was written)."""
        fd: int | None = self.__dict__.get("_fd")
        if fd is None:
            with _OPENING:  # two threads reading first open it once
                fd = self.__dict__.get("_fd")
                if fd is None:
                    assert self.raw is not None
                    fd = os.open(self.raw[0], os.O_RDONLY)
                    weakref.finalize(self, os.close, fd)
                    object.__setattr__(self, "_fd", fd)
        return fd

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (to another process) without the open descriptor: it opens its own."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_fd", "_mm")}

    @property
    def array(self) -> NDArray[Any]:
        """The whole tensor in its stored precision (bfloat16 widened exactly to float32)."""
        if self.loaded is not None:
            return self.loaded
        assert self.raw is not None
        if len(self.shape) == 2:
            from unembed._blocks import row_blocks

            out = np.empty(self.shape, dtype=widened(self.raw[2]))
            for s, e in row_blocks(*self.shape):
                out[s:e] = self.rows(s, e)
            return out
        data = _read_raw(self.raw, self.shape, 0, int(np.prod(self.shape, dtype=np.int64)))
        return data.reshape(self.shape)

    def rows(self, start: int, stop: int) -> NDArray[Any]:
        """Rows start..stop of a matrix, read from the file (stored precision, bfloat16 widened)."""
        if self.loaded is not None:
            return self.loaded[start:stop]
        assert self.raw is not None and len(self.shape) == 2
        d = self.shape[1]
        if self.raw[3]:  # Fortran order: read through a memory map (rare), kept open
            mm = self.__dict__.get("_mm")
            if mm is None:
                mm = np.load(self.raw[0], mmap_mode="r", allow_pickle=False)
                object.__setattr__(self, "_mm", mm)
            return np.array(mm[start:stop])
        return _read_raw(self.raw, self.shape, start * d, (stop - start) * d,
                         self._pinned()).reshape(-1, d)

    _rows = rows  # the name the block readers used before StoredMatrix named it

    def read_float64(self) -> NDArray[np.float64]:
        """The matrix as one float64 C-contiguous array, read block by block (each block of rows
        read from the file into a small buffer and converted in place): peak memory is the
        float64 array plus one block. File pages are read, not mapped, so they do not count
        towards this process's resident memory."""
        from unembed._blocks import row_blocks
        from unembed._memory import populated_empty

        if self.raw is None or len(self.shape) != 2:
            return np.array(self.array, dtype=np.float64)
        # its pages mapped at once: one page fault per 4 KiB cost more than the reading
        out = populated_empty(tuple(self.shape))
        for s, e in row_blocks(*self.shape):
            out[s:e] = self.rows(s, e)
        return out


def _read_raw(raw: tuple[Path, int, str, bool], shape: tuple[int, ...], first: int,
              count: int, fd: int | None = None) -> NDArray[Any]:
    """``count`` consecutive elements from element ``first`` of a raw little-endian tensor
    (read from the open descriptor ``fd`` when given, else from the path); bfloat16 is
    widened exactly to float32 (its 16 bits are the top half of a float32)."""
    path, offset, storage, _ = raw
    item = 2 if storage == "bf16" else np.dtype(storage).itemsize
    out = np.empty(count, dtype="<u2" if storage == "bf16" else np.dtype(storage))
    view = out.data.cast("B")
    at, done = offset + first * item, 0
    with contextlib.ExitStack() as stack:
        if fd is None:
            fd = os.open(path, os.O_RDONLY)
            stack.callback(os.close, fd)
        while done < view.nbytes:  # pread may return less than asked
            n = os.preadv(fd, [view[done:]], at + done)
            if n <= 0:
                raise UnembedError("truncated (the tensor's data ends early).", path=path)
            done += n
    if storage == "bf16":
        return (out.astype("<u4") << 16).view(np.float32)
    return out.astype(out.dtype.newbyteorder("="), copy=False)


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


def format_of(path: Path) -> str:
    ext = path.suffix.lower()
    if ext == ".npy":
        return "npy"
    if ext in (".pt", ".pth", ".bin"):
        return "pt"
    if ext == ".safetensors":
        return "safetensors"
    raise UnembedError(f"unknown weight file type {ext or '(no suffix)'!r}; expected one of "
                       f"{', '.join(SUFFIXES)}.", path=path)


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
