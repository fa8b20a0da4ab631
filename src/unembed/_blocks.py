"""Row blocks: how a whole head is walked without a (V, d) temporary; and how a freshly made
float64 array is handed to a Head without a copy (:func:`owned`).

Every whole-head pass of unembed (conversion to float64, validation, means, norms, covariances,
nearest neighbours) walks the rows in blocks of at most :data:`BLOCK_BYTES` bytes of float64, so
that what a pass allocates besides the head itself is O(block) (``rows_per_block``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from numpy.typing import NDArray

from unembed.rows import RowAccess

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


def block_gram(W: NDArray[np.floating] | RowAccess, m: NDArray[np.float64] | None = None,
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


def centered_covariance(W: NDArray[np.floating] | RowAccess, m: NDArray[np.float64],
                        dtype: type[np.floating] = np.float64,
                        transform: Callable[[NDArray[np.float64]], NDArray[np.float64]]
                        | None = None) -> NDArray[np.float64]:
    """(1/V) sum_k c_k c_k^T, c_k = transform(u_k - m), accumulated in place by BLAS's
    symmetric rank-k update in ``dtype`` (DSYRK or SSYRK: the upper triangle only, V d^2 / 2
    multiply-adds) over blocks of up to 2048 centered rows (64 MiB at most, and at most an
    eighth of the rows), then mirrored; returned in float64.

    >>> W = np.arange(12.0).reshape(4, 3) ** 2
    >>> m = W.mean(axis=0)
    >>> bool(np.allclose(centered_covariance(W, m), np.cov(W.T, bias=True)))
    True
    """
    from scipy.linalg.blas import dsyrk, ssyrk

    syrk = dsyrk if np.dtype(dtype) == np.float64 else ssyrk
    V, d = W.shape
    rows = max(rows_per_block(d), min(2048, rows_per_block(d, 1 << 26), V // 8))
    md = m.astype(dtype)
    cov = np.zeros((d, d), dtype=dtype, order="F")
    for s in range(0, V, rows):
        C = np.asarray(W[s:s + rows], dtype=dtype) - md  # (k, d), C-ordered: C.T is Fortran
        if transform is not None:  # (in float64; no copy when dtype is float64)
            C = transform(C.astype(np.float64, copy=False)).astype(dtype, copy=False)
        cov = syrk(1.0, C.T, beta=1.0, c=cov, trans=0, overwrite_c=1)
    out = np.triu(cov).astype(np.float64)
    out += np.triu(out, 1).T
    out /= V
    return out
