"""Every row's k largest cosines with the other rows, exact in float64, at the price of half a
float32 V x V x d product.

Input: unit rows U (V, d) in float64 (a row of NaN: no direction, never a neighbour, no
neighbours). Output: for each row i the k rows j != i of largest c64(i, j) = U_i . U_j (the
float64 dot product), best first, ties by row index.

1. Float32 products with a proven rounding bound. The rows are rounded to float32 once; for unit
   rows a, b in R^d the float32 dot product c32 of the rounded rows differs from c64 by at most

       delta = (d + 3) u (1 + 2^-10) + 2^-40,   u = 2^-24

   (rounding of each unit row: 2u + u^2; the float32 dot product in any summation order:
   gamma_d (1 + u)^2 with sum_i |a_i b_i| <= 1; c64's own rounding below 2^-40).
2. Half the product. c32(i, j) and c32(j, i) are both within delta of the same c64 (a dot
   product is symmetric), so the rows are cut into blocks I_1, I_2, ... and only the tiles
   S = U32[I_a] U32[I_b]^T with a <= b are formed: row i of I_a reads its values from S's rows,
   row j of I_b from S's columns.
3. Candidates. For each row keep every j with c32(i, j) >= t_i, where t_i is a lower bound on
   T_i - 2 delta, T_i the k-th largest c32 of row i over all j: the k-th largest c32 among the
   values kept so far, minus 2 delta (those values are among all of row i's), or before k
   values are kept, the smallest maximum of k disjoint column strips of the current tile,
   minus 2 delta (k distinct values at least that large). Kept values below the current t_i
   are dropped as t_i rises.
4. Why that suffices. The k rows of largest c32 all have c64 >= T_i - delta, so the k-th
   largest c64 is at least T_i - delta, and every row of the float64 top k (ties included)
   has c32 >= c64 - delta >= T_i - 2 delta: it is kept. The kept candidates (usually k and a
   few) are re-scored in float64 and ranked by (-c64, row index).

Memory: the float32 rows, one tile (block x block float32) and the candidates (about V k).

>>> import numpy as np
>>> U = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
>>> idx, cos = top_cosines(U, 2)
>>> idx.tolist(), cos[0].round(3).tolist()
([[1, 2], [2, 0], [1, 0], [2, 1]], [0.6, 0.0])
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["dot_rows", "rounding_bound", "top_cosines"]

_U32 = 2.0 ** -24
#: Rows per block of the tiles (a 2048 x 2048 float32 tile is 16 MiB).
BLOCK = 2048


def rounding_bound(d: int) -> float:
    """Bound on |c32 - c64| for unit rows of width d (module docstring, step 1)."""
    return (d + 3) * _U32 * (1 + 2.0 ** -10) + 2.0 ** -40


def dot_rows(A: NDArray[np.float64], B: NDArray[np.float64]) -> NDArray[np.float64]:
    """The float64 dot products of matching rows, A_i . B_i (one summation order everywhere,
    so every path reports the same float64 cosine)."""
    return np.einsum("ij,ij->i", A, B)


def _down32(t: NDArray[np.float64]) -> NDArray[np.float32]:
    """The largest float32 values <= t (so a float32 compare against them keeps every value
    a float64 compare against t would)."""
    f = t.astype(np.float32)
    return np.where(f > t, np.nextafter(f, np.float32(-np.inf)), f).astype(np.float32)


def strip_lower(S: NDArray[np.float32], k: int) -> NDArray[np.float64]:
    """A lower bound on the k-th largest value of each row of S (n, b), k <= b: the smallest
    of the maxima of k disjoint column strips (k distinct entries at least that large); exact
    by partition for rows where a strip holds no finite value."""
    b = S.shape[1]
    w = b // k
    low = S[:, :k * w].reshape(S.shape[0], k, w).max(axis=2).min(axis=1).astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(low))
    if bad.size:
        low[bad] = np.partition(S[bad], b - k, axis=1)[:, b - k]
    return low


def _row_value_key(r: NDArray[np.intp], v: NDArray[np.float32]) -> NDArray[np.int64]:
    """A sort key ordering (r, -v) lexicographically, for rows r < 2^31: the float32 bits of -v
    mapped to unsigned integers in the order of the floats (flip every bit of a negative, set
    the sign bit of a positive) below r in the high 32 bits."""
    b = (-v).view(np.int32).astype(np.int64)
    m = np.where(b < 0, ~b & 0x7FFFFFFF, b | 0x80000000)
    return (r.astype(np.int64) << 32) | m


class _Kept:
    """The candidates of the rows of one block: local row r, column c, float32 value v, and
    the float32 threshold t of each row (step 3 of the module docstring)."""

    def __init__(self, n: int, k: int, delta: float) -> None:
        self.n, self.k, self.delta = n, k, delta
        self.t = np.full(n, -np.inf, dtype=np.float32)
        self.parts: list[tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float32]]] = []
        self.pending = 0

    def offer(self, S: NDArray[np.float32], col0: int, transposed: bool) -> None:
        """Keep the values of a tile at or above each row's threshold: the rows of S (columns
        col0 + j) or, ``transposed``, the columns of S (rows col0 + i)."""
        t = self.t
        width = S.shape[0] if transposed else S.shape[1]
        if not np.isfinite(t).all() and width >= self.k + 1:
            low = strip_lower(S.T if transposed else S, self.k)
            t = np.where(np.isfinite(t), t, _down32(low - 2 * self.delta))
        t = np.maximum(t, np.float32(-2.0))  # never the -inf of a row's own entry
        flat = np.flatnonzero(S >= (t[None, :] if transposed else t[:, None]))
        if not flat.size:
            return
        i, j = np.divmod(flat, S.shape[1])
        v = S.ravel()[flat]
        r, c = (j, i + col0) if transposed else (i, j + col0)
        self.parts.append((r, c, v))
        self.pending += flat.size
        if self.pending > self.n * max(self.k, 4) or not np.isfinite(self.t).all():
            self.prune()

    def prune(self) -> None:
        """Drop the values below each row's k-th largest minus 2 delta; raise the thresholds."""
        if not self.parts:
            return
        r = np.concatenate([p[0] for p in self.parts])
        c = np.concatenate([p[1] for p in self.parts])
        v = np.concatenate([p[2] for p in self.parts])
        order = np.argsort(_row_value_key(r, v))  # by row, then value descending
        r, c, v = r[order], c[order], v[order]
        start = np.searchsorted(r, np.arange(self.n))
        count = np.diff(np.append(start, r.size))
        full = count >= self.k
        kth = np.full(self.n, -np.inf)
        kth[full] = v[start[full] + self.k - 1]
        floor = kth - 2 * self.delta
        keep = v.astype(np.float64) >= floor[r]
        self.parts = [(r[keep], c[keep], v[keep])]
        self.pending = 0
        self.t = np.maximum(self.t, _down32(floor))


def top_cosines(U: NDArray[np.float64], k: int, *, block: int | None = None
                ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Indices (V, k) and float64 cosines (V, k) of each row's k nearest other rows of the unit
    rows U (V, d), best first, ties by row index; -1 / NaN where fewer than k rows have a
    cosine (rows of NaN have none). See the module docstring."""
    V, d = U.shape
    out_i = np.full((V, k), -1, dtype=np.intp)
    out_v = np.full((V, k), np.nan)
    good = np.flatnonzero(~np.isnan(U).any(axis=1))
    G = good.size
    kk = min(k, G - 1)
    if kk < 1:
        return out_i, out_v
    Ug = U if G == V else U[good]
    U32 = Ug.astype(np.float32)
    delta = rounding_bound(d)
    b = max(int(block or BLOCK), 1)
    starts = list(range(0, G, b))
    kept = [_Kept(min(G, s + b) - s, kk, delta) for s in starts]
    for a, s in enumerate(starts):
        A = U32[s:s + b]
        for a2 in range(a, len(starts)):
            s2 = starts[a2]
            S = A @ U32[s2:s2 + b].T
            if a2 == a:
                np.fill_diagonal(S, -np.inf)  # a row is not its own neighbour
            kept[a].offer(S, s2, transposed=False)
            if a2 != a:
                kept[a2].offer(S, s, transposed=True)
    for a, s in enumerate(starts):
        kept[a].prune()
        if kept[a].parts:
            r, cols, _ = kept[a].parts[0]
            _rank(Ug, r + s, cols, kk, good, out_i, out_v)
    return out_i, out_v


def _rank(Ug: NDArray[np.float64], q: NDArray[np.intp], c: NDArray[np.intp], k: int,
          good: NDArray[np.intp], out_i: NDArray[np.intp], out_v: NDArray[np.float64]) -> None:
    """Re-score the candidate pairs (q, c) in float64 and write each row's k best by (-c64,
    index) into out_i / out_v (rows and columns mapped through ``good``)."""
    c64 = np.empty(q.size)
    step = 1 << 13
    for e in range(0, q.size, step):  # the float64 re-score of the candidates only
        c64[e:e + step] = dot_rows(Ug[q[e:e + step]], Ug[c[e:e + step]])
    order = np.lexsort((c, -c64, q))
    q, c, c64 = q[order], c[order], c64[order]
    rank = np.arange(q.size) - np.searchsorted(q, q)
    top = rank < k
    out_i[good[q[top]], rank[top]] = good[c[top]]
    out_v[good[q[top]], rank[top]] = np.clip(c64[top], -1.0, 1.0)
