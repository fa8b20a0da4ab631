"""Row blocks: how a whole head is walked without a (V, d) temporary; and how a freshly made
float64 array is handed to a Head without a copy (:func:`owned`).

Every whole-head pass of unembed (conversion to float64, validation, means, norms, covariances,
nearest neighbours) walks the rows in blocks of at most :data:`BLOCK_BYTES` bytes of float64, so
that what a pass allocates besides the head itself is O(block) (``rows_per_block``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

#: Bytes of float64 per block of rows (16 MiB): large enough for BLAS, small beside any head.
BLOCK_BYTES = 1 << 24


def rows_per_block(d: int, block_bytes: int = BLOCK_BYTES) -> int:
    """How many rows of width ``d`` fit in one block of float64 (at least 1).

    >>> rows_per_block(4096)
    512
    """
    return max(1, block_bytes // (8 * max(d, 1)))


def row_blocks(n: int, d: int, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive blocks of rows covering 0..n.

    >>> list(row_blocks(5, 1 << 22, block_bytes=1 << 25))
    [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    """
    step = rows_per_block(d, block_bytes)
    for s in range(0, n, step):
        yield s, min(n, s + step)


def block_gram(W: NDArray[np.floating], m: NDArray[np.float64] | None = None,
               block_bytes: int = BLOCK_BYTES) -> NDArray[np.float64]:
    """(W - m)(W - m)^T (V, V) in float64 from pairs of row blocks: O(block) memory beyond the
    result, every product on contiguous rows (faster than column blocks, which copy strided
    slices, and than one W W^T followed by centering, which would cancel digits).

    >>> W = np.arange(12.0).reshape(3, 4)
    >>> bool(np.allclose(block_gram(W, W.mean(axis=0)), (W - W.mean(0)) @ (W - W.mean(0)).T))
    True
    """
    V, d = W.shape
    G = np.empty((V, V))
    blocks = list(row_blocks(V, d, block_bytes // 2))

    def rows(s: int, e: int) -> NDArray[np.float64]:
        B = np.asarray(W[s:e], dtype=np.float64)
        return B - m if m is not None else B

    for a, (s, e) in enumerate(blocks):
        A = rows(s, e)
        for s2, e2 in blocks[:a + 1]:
            G[s:e, s2:e2] = A @ (A if s2 == s else rows(s2, e2)).T
            G[s2:e2, s:e] = G[s:e, s2:e2].T
    return G


class _Owned(np.ndarray):
    """Marks a float64 C-contiguous array handed over to a Head (see :func:`owned`)."""


def owned(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """Hand a freshly made float64 array to :class:`Head` without a copy.

    The caller gives up the array: it must be float64, C-contiguous, and no one may write to
    it afterwards (the Head makes it read-only). Readers of large weight files use this so that
    a head costs one float64 copy of its rows, not two.
    """
    a = np.asarray(a)
    if a.dtype != np.float64 or not a.flags.c_contiguous:
        return a
    return a.view(_Owned)
