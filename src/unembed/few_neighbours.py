"""The k nearest labels of a few query labels (at most :data:`FEW`): one pass over the rows
(for a few queries the product is not what costs, reading the rows is), in float64, or, for
rows kept in float32 or float16, a float32 selection under a proven bound with the candidates
formed in float64 (below). Used by :func:`unembed.neighbours.nearest`; the answer is the one
every neighbour path gives, to the last bit.

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

Rows kept in float32 (or float16), ``raw`` and ``centered`` with no known null space: the
block is never widened. With eps = 2^-24, G = gamma32_{d+2} and m32 = fl32(m) (m the mean of
the view, the plain mean for raw), each block is r~_j = fl32(u_j - m32) in float32, with its
squared norms and its products with q32 = fl32(q_a) (and, raw, with m32) in float32.

Centered: n_j = |r~_j| and s_aj = fl32(q32 . r~_j) / n_j. With rho_j = |r~_j| and
dm = |m - m32|: |r~_j - c_j| <= e_j := dm + eps rho_j (c_j the exact row; a subtraction's
rounding is at most eps of its result, and exact in the subnormal range),
|fl32(q32 . r~) - q32 . r~| <= gamma_d |q32| rho + d 2^-150 (gradual underflow: each product
may lose 2^-150 besides its relative error), |n_j - rho_j| <= gamma_{d+1} rho_j while
2^-40 <= n_j <= 2^60 (no overflow, underflow negligible), and
| |c_j| - n_j | <= e_j + gamma_{d+1} rho_j. Writing x = q_a . c_j / |c_j|,

    |s - x| <= |q| (2 gamma_{d+1} rho + 2 e_j) / n_j (1 + eps) + d 2^-150 / n_j + eps (1 + ...)
            <= E_j := 3 G + (3 dm + d 2^-149) / n_j        (for d < 1.6e5, |q| <= 1.001).

Raw: u_j = m32 + c'_j exactly (c'_j = u_j - m32, of which r~_j is the rounding), so
q . u_j = q . m32 + q . c'_j and |u_j|^2 = |m32|^2 + 2 m32 . c'_j + |c'_j|^2; the float32
products give q . c'_j within e_a = (G + 3 eps) |q| rho_j (plus underflow), m32 . c'_j within
e_t = (G + 2 eps) |m32| rho_j and |c'_j|^2 within e_n = (G + 2.1 eps) rho_j^2; q . m32 and
the sums are in float64. With N_j^2 the computed |u_j|^2 (within e_N = 2 e_t + e_n and the
float64 sums' rounding) and s_aj = (q . m32 + fl32(q32 . r~_j)) / N_j,

    |s - x| <= E_j := 1.01 (e_a / N_j + 1.001 e_N / N_j^2) + 8 eps64,

x = q_a . u_j / |u_j|. Rows sharing a large common part (|m32| >> |c'_j|, as the raw rows
of language models' heads do) get E_j of order G |c'_j| / |u_j|, not G: their raw cosines
all lie near one value, and only the part of each row off the mean is rounded. Rows far
smaller than their mean would get a large E_j this way, so the raw selection goes about the
mean only when |m|^2 is at least half the mean squared norm of the first 256 rows; else
about 0 (the centered selection with m = 0, dm = 0).

A row is a candidate when s_aj + E_j >= L_a - e_v, with L_a the larger of the k-th best
re-scored value so far and the block's k-th largest s_aj - E_j, minus e_v: both are at most
the final k-th best v, so every label that reaches it is kept. A row whose norm leaves
[2^-40, 2^60] or whose E_j >= 0.5 is always a candidate; the candidates' float64 rows (and
their norms, and whether they have a direction at all) are formed as the float64 path forms
them. E_j is about 7e-4 for d = 4096 (a few to tens of candidates among 128k labels,
re-read in float64 by index); a block with more candidates than half its rows (a mean far
from the rows, so dm / n_j is large, or cosines all within E_j of each other) is done in
float64, and when most of the first blocks are, so are the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from threadpoolctl import threadpool_limits

from unembed._blocks import row_blocks
from unembed.head import Head
from unembed.moments import LogitRows
from unembed.row_stats import EPS32, NARROW_PASS_BYTES, PASS_BYTES, norm_above, reads_narrow
from unembed.top_cosines import dot_rows

__all__ = ["FEW", "excluded", "merge", "nearest_few", "unit_rows"]

#: Up to this many queries, every cosine is computed in float64 (module docstring).
FEW = 64

#: Bytes of float64 per block of labels (2 MiB, as the first pass): the block's several reads
#: (norms, product) then come from the cache (8 MiB blocks measured 0.15-0.5 s slower on a
#: 128256 x 4096 head).
_BLOCK_BYTES = PASS_BYTES
#: The same for the float32 selection (module docstring; 8 MiB of float64 rows, read as 4 MiB
#: of float32: its per-block steps cost more than the cache saves).
_NARROW_BLOCK_BYTES = NARROW_PASS_BYTES

#: A row whose norm is at most this has no direction: never a neighbour.
_TINY = 1e-300

#: Blocks tried in float32 before giving it up when most of them were done in float64 (the
#: float32 bound cannot separate the rows: a centered mean far from the rows next to their
#: spread, or cosines that agree to within the bound).
_TRIAL = 16


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
    queries; unit rows for the candidates only. Rows kept in float32 or float16 are not
    widened but for the candidates (module docstring)."""
    from unembed.views import _center_of

    V, d, q = head.n_labels, head.d, Qz.shape[0]
    m = None if view == "raw" else _center_of(head, weights)
    gap = slack(d)
    best_i = np.full((q, k), -1, dtype=np.intp)
    best_v = np.full((q, k), -np.inf)
    nar = None
    if reads_narrow(head.stored_dtype, d, head.null_space is not None):
        if m is not None:
            nar = _Narrow.of(Qz, m, raw=False)
        elif _common_part(head):  # raw, about the mean
            nar = _Narrow.of(Qz, head.stats.mean(), raw=True)
        else:  # raw, as stored (the centered selection about 0)
            nar = _Narrow.of(Qz, np.zeros(d), raw=False)
    tried = fell_back = 0
    for s, e in row_blocks(V, d, _BLOCK_BYTES if nar is None else _NARROW_BLOCK_BYTES):
        B = head.stored_block(s, e)
        pairs = None
        if nar is not None and not (tried >= _TRIAL and 2 * fell_back > tried):
            pairs = _narrow_candidates(nar, B, best_v, queries, qbad, k, s, e, gap / 4)
            tried, fell_back = tried + 1, fell_back + (pairs is None)
            if pairs is not None:
                best_i, best_v = _rescore(head, B, m, Qz, pairs, s, best_i, best_v, k)
                continue
        R = _rows64(head, B, m)
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


def _rescore(head: Head, B: NDArray[np.floating], m: NDArray[np.float64] | None,
             Qz: NDArray[np.float64], pairs: tuple[NDArray[np.intp], NDArray[np.intp]],
             s: int, best_i: NDArray[np.intp], best_v: NDArray[np.float64], k: int
             ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """The candidates (query, column) of the block of stored rows ``B`` (labels s..) scored
    in float64 as the float64 pass scores its candidates, and merged into the k best."""
    r, c = pairs
    if not r.size:
        return best_i, best_v
    cu, back = np.unique(c, return_inverse=True)
    R = _rows64(head, B[cu], m)
    n = np.sqrt(np.einsum("ij,ij->i", R, R))
    ok = n[back] > _TINY  # a row without a direction is never a neighbour
    r, back = r[ok], back[ok]
    U = R[back] / n[back][:, None]
    return merge(best_i, best_v, r, cu[back] + s, dot_rows(Qz[r], U), k)


def _rows64(head: Head, B: NDArray[np.floating], m: NDArray[np.float64] | None
            ) -> NDArray[np.float64]:
    """The view's float64 rows of stored rows ``B``: widened, or widened and centered in one
    operation (the stored values are float64 values), projected off the null space."""
    if m is None:
        return np.asarray(B, dtype=np.float64)
    return head.stats.identify(np.subtract(B, m))


@dataclass(frozen=True)
class _Narrow:
    """What the float32 selection of a block needs (module docstring): the queries q32 and,
    for the raw view, the rounded mean m32 as one more column; G = gamma32_{d+2}; for the
    centered view dm = |m - m32|; for the raw view q . m32 and |m32|^2 in float64."""

    raw: bool
    m32: NDArray[np.float32]
    QM: NDArray[np.float32]  # (d, q) centered, (d, q + 1) raw
    G: float
    dm: float
    qm: NDArray[np.float64]
    mm: float
    qn: NDArray[np.float64]

    @classmethod
    def of(cls, Qz: NDArray[np.float64], m: NDArray[np.float64], raw: bool) -> _Narrow:
        d = Qz.shape[1]
        m32 = m.astype(np.float32)
        m64 = np.asarray(m32, dtype=np.float64)
        cols = [Qz.T, m64[:, None]] if raw else [Qz.T]
        QM = np.ascontiguousarray(np.hstack(cols), dtype=np.float32)
        G = (d + 2) * EPS32 / (1 - (d + 2) * EPS32)
        dm = 0.0 if raw else norm_above(m - m64)
        return cls(raw, m32, QM, G, dm, Qz @ m64, float(m64 @ m64),
                   np.sqrt(np.einsum("ij,ij->i", Qz, Qz)))


def _common_part(head: Head) -> bool:
    """Do the rows share a large common part, |m|^2 at least half the mean |u_j|^2 (over the
    first 256 rows)? Then the raw selection goes about the mean (module docstring); else
    about 0."""
    B = np.asarray(head.stored_block(0, min(head.n_labels, 256)), dtype=np.float64)
    m = head.stats.mean()
    return bool(float(m @ m) >= 0.5 * float(np.einsum("ij,ij->", B, B)) / B.shape[0])


def _narrow_candidates(nar: _Narrow, B: NDArray[np.floating], best_v: NDArray[np.float64],
                       queries: NDArray[np.intp], qbad: NDArray[np.intp], k: int, s: int,
                       e: int, e_v: float) -> tuple[NDArray[np.intp], NDArray[np.intp]] | None:
    """(query, column) of the block's candidates found in float32 (module docstring), or
    None when more than half the block's rows are candidates (float64 is then as cheap)."""
    R = np.subtract(B, nar.m32, dtype=np.float32)
    n2 = np.einsum("ij,ij->i", R, R).astype(np.float64)
    P = (R @ nar.QM).astype(np.float64)  # (b, q) or (b, q + 1)
    d, G = R.shape[1], nar.G
    under = d * 2.0**-149
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if nar.raw:
            S, E, N = _raw_selection(nar, P, n2, d)
        else:
            N = np.sqrt(n2)
            S = P.T / N
            E = 3 * G + (3 * nar.dm + under) / N
        sure = (N >= 2.0**-40) & (N <= 2.0**60) & (E < 0.5)
        lo = np.where(sure, S - E, -np.inf)
        hi = np.where(sure, S + E, np.inf)
    excluded(lo, _NO_ROWS, qbad, queries, s, e)
    excluded(hi, _NO_ROWS, qbad, queries, s, e)
    kk = min(k, e - s)
    kth = -np.partition(-lo, kk - 1, axis=1)[:, kk - 1]
    floor = np.maximum(kth - e_v, best_v[:, -1]) - e_v
    hit = (hi >= floor[:, None]) & (hi > -np.inf)
    if 2 * int(hit.any(axis=0).sum()) > e - s:
        return None
    r, c = np.nonzero(hit)
    return r.astype(np.intp), c.astype(np.intp)


def _raw_selection(nar: _Narrow, P: NDArray[np.float64], n2: NDArray[np.float64], d: int
                   ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """The raw view's selection values S (q, b), their bounds E (broadcast to S) and the
    rows' norms N (b,) from the float32 products with the rows less m32 (module docstring:
    u = m32 + c', each part's rounding bounded separately)."""
    g, eps, u64 = nar.G, EPS32, 2.0**-53
    under = d * 2.0**-149
    q = nar.QM.shape[1] - 1
    p, t = P[:, :q], P[:, q]
    rho = np.sqrt((n2 + under) / (1 - g)) * (1 + 4 * u64)  # >= |fl32(c')|
    mn = np.sqrt(nar.mm) * (1 + 4 * u64)
    N2 = nar.mm + 2 * t + n2
    N = np.sqrt(np.maximum(N2, 0.0))
    e_t = (g + 2 * eps) * mn * rho + under
    e_n = (g + 2.1 * eps) * rho * rho + under
    e_N2 = (2 * e_t + e_n + 8 * u64 * (nar.mm + 2 * np.abs(t) + n2)) * 1.01
    qn = nar.qn[:, None] * (1 + 4 * u64)
    e_a = (g + 3 * eps) * qn * rho[None, :] + under + d * 2 * u64 * qn * mn
    S = (nar.qm[:, None] + p.T) / N
    E = 1.01 * (e_a / N + 1.001 * e_N2 / (N * N)) + 8 * u64
    E = np.where(e_N2 <= 0.5 * N2, E, np.inf)  # |u| itself not pinned down: no bound
    return S, E, N


_NO_ROWS = np.zeros(0, dtype=np.intp)


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
