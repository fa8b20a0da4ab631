"""Where a head's rows are stored: the core's side of the seam between a :class:`Head` and
the file it was read from.

A head read from a weight file keeps a :class:`StoredMatrix` (``head.file``) so that an
equivalent head can be written back in the same format and dtype; the head itself knows no
file format. Sources implement the protocol (:class:`unembed.sources.matrix_file.MatrixFile`);
export reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = ["InFile", "InMemory", "RowAccess", "RowBlocks", "StoredMatrix", "Values"]


@runtime_checkable
class StoredMatrix(Protocol):
    """One (V, d) matrix of a file: where it is, how it is stored, and its rows on demand.

    Attributes
    ----------
    path : Path
        The file.
    tensor : str or None
        The tensor's name inside the file (a safetensors file, a saved state dict); None for
        a file of one array.
    dtype : str
        The stored dtype ("float32", "bfloat16", ...).
    shape : tuple of int
        The stored shape.
    """

    @property
    def path(self) -> Path: ...

    @property
    def tensor(self) -> str | None: ...

    @property
    def dtype(self) -> str: ...

    @property
    def shape(self) -> tuple[int, ...]: ...

    def rows(self, start: int, stop: int) -> NDArray[Any]:
        """Rows ``start..stop`` in their stored precision (bfloat16 widened exactly to
        float32): a block read from the file, never the whole matrix."""
        ...

    def read_float64(self) -> NDArray[np.float64]:
        """The whole matrix as one float64 array, read block by block."""
        ...


class RowAccess(Protocol):
    """How a head reaches its rows in float64: by block, by index, or whole.

    ``shape`` is (V, d). ``rows[s:e]`` (a slice with step 1) gives rows s..e as float64 (so
    whole-head passes written for arrays, :mod:`unembed._blocks`, walk it unchanged);
    :meth:`take` the rows of some indices; :meth:`full` the whole (V, d) float64 matrix
    (read once and kept, for the computations that need it all); ``materialised`` that
    matrix when it is in memory already, else None.
    """

    @property
    def shape(self) -> tuple[int, int]: ...

    @property
    def materialised(self) -> NDArray[np.float64] | None: ...

    def __getitem__(self, key: slice) -> NDArray[np.float64]: ...

    def take(self, indices: NDArray[np.intp]) -> NDArray[np.float64]: ...

    def stored(self, start: int, stop: int) -> NDArray[np.floating]:
        """Rows start..stop in the precision they are kept in (float16, float32 or float64,
        every value exactly a float64): for a pass whose first float64 operation widens them
        anyway (``np.subtract(rows.stored(s, e), m)`` is ``rows[s:e] - m`` to the last bit)."""
        ...

    def full(self) -> NDArray[np.float64]: ...


class InMemory:
    """The rows as one float64 array in memory (a :class:`RowAccess`)."""

    def __init__(self, W: NDArray[np.float64]) -> None:
        self._W = W

    @property
    def shape(self) -> tuple[int, int]:
        V, d = self._W.shape
        return int(V), int(d)

    @property
    def materialised(self) -> NDArray[np.float64]:
        return self._W

    def __getitem__(self, key: slice) -> NDArray[np.float64]:
        return self._W[key]

    def take(self, indices: NDArray[np.intp]) -> NDArray[np.float64]:
        return np.asarray(self._W[indices])

    def stored(self, start: int, stop: int) -> NDArray[np.floating]:
        return self._W[start:stop]

    def full(self) -> NDArray[np.float64]:
        return self._W


class InFile:
    """The rows left in their file (a :class:`RowAccess` over a :class:`StoredMatrix`): each
    block or index read from the file and widened to float64 exactly (every float16,
    bfloat16 and float32 value is a float64 value), nothing kept but what :meth:`full`
    reads, once, when something needs the whole matrix."""

    def __init__(self, stored: StoredMatrix) -> None:
        self._stored = stored
        V, d = stored.shape
        self._shape = (int(V), int(d))
        self._full: NDArray[np.float64] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def materialised(self) -> NDArray[np.float64] | None:
        return self._full

    def __getitem__(self, key: slice) -> NDArray[np.float64]:
        if self._full is not None:
            return self._full[key]
        start, stop, step = key.indices(self._shape[0])
        if step != 1:
            raise ValueError("rows are read in slices of step 1")
        out = np.asarray(self.stored(start, stop), dtype=np.float64)
        out.setflags(write=False)
        return out

    def stored(self, start: int, stop: int) -> NDArray[np.floating]:
        if self._full is not None:
            return self._full[start:stop]
        out: NDArray[np.floating] = self._stored.rows(start, max(start, stop))
        out.setflags(write=False)
        return out

    def take(self, indices: NDArray[np.intp]) -> NDArray[np.float64]:
        """Rows of ``indices`` (any order, repeats allowed): each run of consecutive
        indices read as one block."""
        if self._full is not None:
            return np.asarray(self._full[indices])
        idx = np.asarray(indices, dtype=np.intp).ravel()
        out = np.empty((idx.size, self._shape[1]))
        if idx.size == 0:
            return out
        if idx[0] >= 0 and idx.size == int(idx[-1]) - int(idx[0]) + 1 and (
                idx.size == 1 or bool((np.diff(idx) == 1).all())):  # one run, in order
            return self[int(idx[0]):int(idx[-1]) + 1]
        order = np.argsort(idx, kind="stable")
        srt = idx[order]
        cuts = np.flatnonzero(np.diff(srt) > 1) + 1
        for run in np.split(np.arange(srt.size), cuts):
            lo, hi = int(srt[run[0]]), int(srt[run[-1]]) + 1
            block = self[lo:hi]
            out[order[run]] = block[srt[run] - lo]
        return out

    def full(self) -> NDArray[np.float64]:
        if self._full is None:
            W = self._stored.read_float64()
            W.setflags(write=False)
            self._full = W
        return self._full


@dataclass(frozen=True)
class RowBlocks:
    """A (V, d) matrix given block by block, for writers that walk its rows without holding
    it whole: ``block(start, stop)`` returns rows start..stop in float64 (``Head.row_block``).
    ``values[start:stop]`` is that block, so a writer indexes it as it would an array."""

    shape: tuple[int, int]
    block: Callable[[int, int], NDArray[np.float64]]
    ndim = 2

    def __getitem__(self, rows: slice) -> NDArray[np.float64]:
        start, stop, _ = rows.indices(self.shape[0])
        return self.block(start, stop)

    def whole(self) -> NDArray[np.float64]:
        """The whole matrix as one float64 array (for formats written in one piece), filled in
        blocks of 16 MiB."""
        V, d = self.shape
        out = np.empty(self.shape)
        step = max(1, (1 << 24) // (8 * max(d, 1)))
        for s in range(0, V, step):
            out[s:s + step] = self.block(s, min(V, s + step))
        return out


#: What a writer takes: an array, or a (V, d) matrix given block by block.
Values = NDArray[np.float64] | RowBlocks
