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

__all__ = ["RowBlocks", "StoredMatrix", "Values"]


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
        """The whole matrix as one float64 array (for formats written in one piece)."""
        from unembed._blocks import row_blocks

        out = np.empty(self.shape)
        for s, e in row_blocks(*self.shape):
            out[s:e] = self.block(s, e)
        return out


#: What a writer takes: an array, or a (V, d) matrix given block by block.
Values = NDArray[np.float64] | RowBlocks
