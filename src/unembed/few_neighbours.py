"""The k nearest labels of a few query labels (at most :data:`FEW`): one float64 pass over the
rows, no float32 candidate product (for a few rows the product is not what costs, the rows
are). Used by :func:`unembed.neighbours.nearest`; the answer is the one every neighbour path
gives, to the last bit.

For query unit rows q_a and each block of labels, with r_j the view's row of label j:

* ``raw`` and ``centered`` (the rows are linear in the stored rows u_j: r_j = u_j, or
  r_j = P (u_j - m) with P the projection off the known null space): the block's rows r_j,
  their norms n_j = |r_j| and the products q_a . r_j, and the selection value
  s_aj = fl(fl(q_a . r_j) / n_j). The unit rows r_j / n_j are formed for the candidates only.
* the other views: the block's unit rows, and s_aj = q_a . (r_j / n_j).

A label is a candidate when s_aj >= max(k-th s in the block, k-th re-scored value so far)
minus a slack; every candidate is then re-scored as every neighbour query scores its
candidates, v_aj = q_a . fl(r_j / n_j) (:func:`unembed.top_cosines.dot_rows`), and merged by
(-v, label index).

The slack. Let x = q_a . r_j / n_j in exact arithmetic (n_j the rounded norm, |q_a| <= 1 + u).
With u = 2^-53 and gamma_n = n u / (1 - n u), |fl(q . r) - q . r| <= gamma_d |q| |r| and the
rounded norm is within gamma_{d+1} of |r|, so |s - x| <= gamma_d (1 + u)(1 + gamma_{d+1}) + u
<= 2 gamma_{d+2} =: e_s; each entry of fl(r / n) is within u of r / n, so |v - x| <=
(gamma_d + u)(1 + u)(1 + gamma_{d+1}) <= 2 gamma_{d+2} =: e_v (for the unit-row views s and v
are two orders of one sum: within 2 gamma_d of each other). A label whose v reaches the final
k-th best v has s >= v - e_s - ... >= (k-th s of its block) - 2 (e_s + e_v): the slack is
2 (e_s + e_v) = 8 gamma_{d+2}, about 7e-12 for d = 4096, so the candidates stay few.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from threadpoolctl import threadpool_limits

from unembed._blocks import row_blocks
from unembed.head import Head
from unembed.moments import LogitRows
from unembed.row_stats import PASS_BYTES
from unembed.top_cosines import dot_rows

__all__ = ["FEW", "excluded", "merge", "nearest_few", "unit_rows"]

#: Up to this many queries, every cosine is computed in float64 (module docstring).
FEW = 64

#: Bytes of float64 per block of labels (2 MiB, as the first pass): the block's several reads
#: (norms, product) then come from the cache (8 MiB blocks measured 0.15-0.5 s slower on a
#: 128256 x 4096 head).
_BLOCK_BYTES = PASS_BYTES

#: A row whose norm is at most this has no direction: never a neighbour.
_TINY = 1e-300


def unit_rows(head: Head, idx: NDArray[np.intp], view: str, weights: ArrayLike | None,
              data: LogitRows | None = None) -> NDArray[np.float64]:
    """The view's rows of labels ``idx`` divided by their norms; NaN rows where a row has no
    direction."""
    from unembed.views import _rows_of

    R = _rows_of(head, idx, view, weights, data)
    n = np.sqrt(np.einsum("ij,ij->i", R, R))
    with np.errstate(divide="ignore", invalid="ignore"):
        U = R / n[:, None]
    U[~(n > _TINY)] = np.nan  # no direction: never a neighbour
    return np.asarray(U)


def excluded(S: NDArray[np.floating], bad: NDArray[np.intp], qbad: NDArray[np.intp],
             queries: NDArray[np.intp], s: int, e: int) -> NDArray[np.floating]:
    """The cosines ``S`` (q, e - s) of the queries with labels s..e, with -inf where there is
    no neighbour: labels and queries without a direction, and each query's own label."""
    if bad.size:
        S[:, bad] = -np.inf
    if qbad.size:
        S[qbad, :] = -np.inf
    own = (queries >= s) & (queries < e)
    S[np.flatnonzero(own), queries[own] - s] = -np.inf  # a label is not its own neighbour
    return S


def merge(best_i: NDArray[np.intp], best_v: NDArray[np.float64], r: NDArray[np.intp],
          c: NDArray[np.intp], v: NDArray[np.float64], k: int
          ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """The k best of each row of (best_i, best_v) and the candidates (row r, label c, value
    v), by (-value, label index)."""
    q = best_i.shape[0]
    rows = np.concatenate([np.repeat(np.arange(q), best_i.shape[1]), r])
    lab = np.concatenate([best_i.ravel(), c])
    val = np.concatenate([best_v.ravel(), v])
    lab_key = np.where(lab < 0, np.iinfo(np.intp).max, lab)
    order = np.lexsort((lab_key, -val, rows))
    rows, lab, val = rows[order], lab[order], val[order]
    start = np.searchsorted(rows, np.arange(q))
    rank = np.arange(rows.size) - start[rows]
    keep = rank < k
    out_i = np.full((q, k), -1, dtype=np.intp)
    out_v = np.full((q, k), -np.inf)
    out_i[rows[keep], rank[keep]] = lab[keep]
    out_v[rows[keep], rank[keep]] = val[keep]
    return out_i, out_v


def slack(d: int) -> float:
    """The candidates' slack 8 gamma_{d+2} for rows of width d (module docstring)."""
    u = float(np.finfo(np.float64).eps) / 2
    return 8 * (d + 2) * u / (1 - (d + 2) * u)


def nearest_few(head: Head, queries: NDArray[np.intp], Q: NDArray[np.float64],
                qbad: NDArray[np.intp], k: int, view: str, weights: ArrayLike | None,
                data: LogitRows | None) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Indices (q, k) and cosines (q, k) of the k nearest labels of the query labels
    ``queries`` (their unit rows ``Q``; ``qbad`` those without a direction), best first, ties
    by label index, -1 / NaN where fewer than k labels have a cosine (module docstring)."""
    Qz = np.where(np.isnan(Q), 0.0, Q)
    # One BLAS thread: products this thin are bound by reading the rows, not by arithmetic,
    # and a second thread only waits on the first, block after block.
    with threadpool_limits(1, user_api="blas"):
        if view in ("raw", "centered"):
            best_i, best_v = _linear_blocks(head, queries, Qz, qbad, k, view, weights)
        else:
            best_i, best_v = _unit_blocks(head, queries, Qz, qbad, k, view, weights, data)
    best_i = np.where(np.isfinite(best_v), best_i, -1)
    best_v = np.where(np.isfinite(best_v), np.clip(best_v, -1.0, 1.0), np.nan)
    return best_i, best_v


def _candidates(S: NDArray[np.floating], best_v: NDArray[np.float64], k: int, e_minus_s: int,
                gap: float) -> tuple[NDArray[np.intp], NDArray[np.intp]] | None:
    """(query, column) of every value of S within ``gap`` of the larger of its block's k-th
    value and the k-th best so far; None when there are none."""
    kk = min(k, e_minus_s)
    kth = -np.partition(-S, kk - 1, axis=1)[:, kk - 1]
    floor = np.maximum(kth, best_v[:, -1]) - gap
    flat = np.flatnonzero((S >= floor[:, None]) & np.isfinite(S))
    if not flat.size:
        return None
    r, c = np.divmod(flat, S.shape[1])
    return r, c


def _linear_blocks(head: Head, queries: NDArray[np.intp], Qz: NDArray[np.float64],
                   qbad: NDArray[np.intp], k: int, view: str, weights: ArrayLike | None
                   ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """``raw`` and ``centered``: per block the rows, their norms and one product with the
    queries; unit rows for the candidates only."""
    from unembed.views import _center_of

    V, d, q = head.n_labels, head.d, Qz.shape[0]
    m = None if view == "raw" else _center_of(head, weights)
    gap = slack(d)
    best_i = np.full((q, k), -1, dtype=np.intp)
    best_v = np.full((q, k), -np.inf)
    for s, e in row_blocks(V, d, _BLOCK_BYTES):
        if m is None:
            R = head.row_block(s, e)
        else:  # widened and centered in one operation (the stored values are float64 values)
            R = head.stats.identify(np.subtract(head.stored_block(s, e), m))
        n = np.sqrt(np.einsum("ij,ij->i", R, R))
        ok = n > _TINY
        P = Qz @ R.T
        np.divide(P, n, out=P, where=ok)
        got = _candidates(excluded(P, np.flatnonzero(~ok), qbad, queries, s, e), best_v, k,
                          e - s, gap)
        if got is None:
            continue
        r, c = got
        U = R[c] / n[c][:, None]  # each candidate's unit row, as unit_rows forms it
        best_i, best_v = merge(best_i, best_v, r, c + s, dot_rows(Qz[r], U), k)
    return best_i, best_v


def _unit_blocks(head: Head, queries: NDArray[np.intp], Qz: NDArray[np.float64],
                 qbad: NDArray[np.intp], k: int, view: str, weights: ArrayLike | None,
                 data: LogitRows | None) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """The other views: per block the view's unit rows and their products with the queries."""
    V, q = head.n_labels, Qz.shape[0]
    best_i = np.full((q, k), -1, dtype=np.intp)
    best_v = np.full((q, k), -np.inf)
    gap = slack(Qz.shape[1])
    for s, e in row_blocks(V, head.d, _BLOCK_BYTES):
        B = unit_rows(head, np.arange(s, e), view, weights, data)
        bad = np.flatnonzero(np.isnan(B[:, 0]))
        if bad.size:
            B = np.where(np.isnan(B), 0.0, B)
        S = excluded(Qz @ B.T, bad, qbad, queries, s, e)  # (q, b) float64
        got = _candidates(S, best_v, k, e - s, gap)
        if got is None:
            continue
        r, c = got
        best_i, best_v = merge(best_i, best_v, r, c + s, dot_rows(Qz[r], B[c]), k)
    return best_i, best_v
