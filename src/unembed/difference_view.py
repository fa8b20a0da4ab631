"""The ``differences`` view: how label pairs compare through the differences of rows,

    cos(u_i - u_k, u_j - u_k)   for a reference label k,

the cosine that ranks i and j against k (a softmax compares labels only through differences
of their rows, so this view is invariant under every translation). For a pair, its value is
the minimum over the reference labels k other than i and j (:func:`pair_differences`); for a
set of labels, the matrix of those minima (:func:`differences_matrix`).

Both come from inner products of centered rows c = u - m, since

    (c_i - c_k) . (c_j - c_k) = c_i . c_j - c_i . c_k - c_j . c_k + |c_k|^2,

so every reference label costs one row of a product, not a difference vector.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from unembed._blocks import row_blocks
from unembed.head import Head
from unembed.row_stats import PASS_BYTES

__all__ = ["differences_matrix", "gram_is_cheapest", "pair_differences"]

#: unit roundoff of float64
_EPS = float(np.finfo(np.float64).eps) / 2


def gram_is_cheapest(head: Head, k: int) -> bool:
    """Is the head's (V, V) centered Gram matrix (cached, O(V^2 d) once) the cheapest way to
    the inner products of k of its centered rows? (V <= d and k >= V / 2.)"""
    V, d = head.n_labels, head.d
    return V <= d and 2 * k >= V


def differences_matrix(head: Head, idx: list[int], ref: list[int]) -> NDArray[np.float64]:
    """min over reference labels k (other than i, j) of cos(u_i - u_k, u_j - u_k), for every
    pair of ``idx``, from inner products of centered rows c = u - m:

        (c_i - c_k) . (c_j - c_k) = c_i . c_j - c_i . c_k - c_j . c_k + |c_k|^2,

    so every difference cosine comes from one Gram matrix of the centered rows involved: when
    the reference set lies in ``idx`` (``reference="set"``) the (|idx|, |idx|) Gram matrix
    C C^T is all there is (one O(|idx|^2 d) product, then O(|idx|^3) arithmetic); otherwise one
    (|idx|, block) product per block of reference labels (O(|idx| |ref| d) in all). Never a
    Gram matrix per reference label."""
    m = head.stats.mean()
    ix = np.asarray(idx, dtype=np.intp)
    k = ix.size
    pos = {r: a for a, r in enumerate(idx)}
    inside = all(r in pos for r in ref)
    if inside and gram_is_cheapest(head, k):  # the head's one (cached) centered Gram matrix
        Gii = head.stats.centered_gram()[np.ix_(ix, ix)]
    else:
        Ci = head.stats.identify(head.take_rows(ix) - m)
        Gii = Ci @ Ci.T
    dii = np.diag(Gii).copy()
    cn2 = dii if inside else head.stats.centered_norms() ** 2
    out = np.full((k, k), np.inf)
    refs = np.asarray(ref, dtype=np.intp)
    step = max(1, min(4096, (1 << 22) // max(k * k, 1)))
    for s in range(0, refs.size, step):
        R = refs[s:s + step]
        if inside:
            at = np.array([pos[r] for r in R.tolist()], dtype=np.intp)
            X = Gii[:, at]  # c_i . c_k from the one Gram matrix
            nk = dii[at]
        else:
            X = Ci @ head.stats.identify(head.take_rows(R) - m).T  # (k, r): c_i . c_k
            nk = cn2[R]
        d2 = dii[:, None] - 2 * X + nk[None, :]  # |c_i - c_k|^2
        num = Gii[:, :, None] - X[:, None, :] - X[None, :, :] + nk[None, None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            den = np.sqrt(np.maximum(d2, 0.0))
            cos = num / (den[:, None, :] * den[None, :, :])
        bad = den <= 0
        cos[bad[:, None, :] | bad[None, :, :]] = np.inf
        for t, r in enumerate(R.tolist()):
            a = pos.get(r)
            if a is not None:  # the reference label itself is one of the pair
                cos[a, :, t] = np.inf
                cos[:, a, t] = np.inf
        np.minimum(out, cos.min(axis=2), out=out)
    out[~np.isfinite(out)] = np.nan
    out = np.clip(out, -1.0, 1.0)
    np.fill_diagonal(out, 1.0)
    return out


def pair_differences(head: Head, i: int, j: int) -> float:
    """min over k != i, j of cos(u_i - u_k, u_j - u_k), the differences view of one pair (NaN
    when no k has both differences nonzero): O(V d) time in one pass, O(block) memory.

    Each k's cosine is first estimated from inner products of centered rows (module
    docstring) with a bound on its rounding: every inner product x . y of the pass is within
    gamma |x| |y| of its exact value, gamma = d u / (1 - d u) (u the unit roundoff), and
    interval arithmetic carries those errors through the numerator, the two squared lengths
    |c_i - c_k|^2 and |c_j - c_k|^2 and the division. Every k whose interval's lower end
    reaches below the smallest upper end is then computed again from its differences u_i - u_k
    and u_j - u_k themselves, as a direct computation would, and the minimum is taken over
    those: the answer of the direct computation over all k, since its minimiser is among them.
    A k whose difference is too short for the estimate to bound (a near-duplicate of i or j) is
    always computed directly.
    """
    V, d = head.n_labels, head.d
    m = head.stats.mean()
    ui, uj = head.take_rows([i, j])
    ci, cj = head.stats.identify(np.stack([ui, uj]) - m)
    ni, nj = float(np.linalg.norm(ci)), float(np.linalg.norm(cj))
    gij = float(ci @ cj)
    gamma = d * _EPS / (1 - d * _EPS) + 4 * _EPS
    lo = np.empty(V)
    hi = np.empty(V)
    with threadpool_limits(1, user_api="blas"):  # matrix-vector products: bound by reading
        _estimates(head, m, ci, cj, gij, ni, nj, gamma, lo, hi)
    return _direct_minimum(head, i, j, ui, uj, lo, hi, gamma)


def _estimates(head: Head, m: NDArray[np.float64], ci: NDArray[np.float64],
               cj: NDArray[np.float64], gij: float, ni: float, nj: float, gamma: float,
               lo: NDArray[np.float64], hi: NDArray[np.float64]) -> None:
    """Each reference label's interval [lo, hi] for cos(c_i - c_k, c_j - c_k), in blocks
    (:func:`pair_differences`)."""
    V, d = head.n_labels, head.d
    for s, e in row_blocks(V, d, PASS_BYTES):
        C = head.stats.identify(np.subtract(head.stored_block(s, e), m))  # widened exactly
        G, H = C @ ci, C @ cj  # two matrix-vector products: faster than one (d, 2) GEMM
        nk2 = np.einsum("ij,ij->i", C, C)
        nk = np.sqrt(nk2)
        num = gij - G - H + nk2
        A = ni * ni - 2 * G + nk2
        B = nj * nj - 2 * H + nk2
        eN = gamma * (ni + nk) * (nj + nk)
        eA = gamma * (ni + nk) ** 2
        eB = gamma * (nj + nk) ** 2
        dlo = np.sqrt(np.maximum(A - eA, 0.0) * np.maximum(B - eB, 0.0))
        dhi = np.sqrt((A + eA) * (B + eB))
        nlo, nhi = num - eN, num + eN
        with np.errstate(divide="ignore", invalid="ignore"):
            lo[s:e] = np.where(nlo >= 0, nlo / dhi, nlo / dlo)
            hi[s:e] = np.where(nhi >= 0, nhi / dlo, nhi / dhi)
        bad = ~(dlo > 0)
        lo[s:e][bad], hi[s:e][bad] = -np.inf, np.inf


def _direct_minimum(head: Head, i: int, j: int, ui: NDArray[np.float64],
                    uj: NDArray[np.float64], lo: NDArray[np.float64],
                    hi: NDArray[np.float64], gamma: float) -> float:
    """The minimum of the direct computation over the reference labels whose interval
    reaches below every upper end (:func:`pair_differences`)."""
    slack = 8 * gamma  # the direct computation's own rounding, and the division's
    lo -= slack
    hi += slack
    lo[[i, j]], hi[[i, j]] = np.inf, np.inf  # the pair itself is not a third label
    finite_hi = hi[np.isfinite(hi)]
    cut = float(finite_hi.min()) if finite_hi.size else np.inf
    cand = np.flatnonzero(lo <= cut)
    cand = cand[(cand != i) & (cand != j)]
    best = np.inf
    for s in range(0, cand.size, 4096):
        R = head.take_rows(cand[s:s + 4096])
        da = head.stats.identify(ui - R)
        db = head.stats.identify(uj - R)
        na = np.sqrt(np.einsum("kd,kd->k", da, da))
        nb = np.sqrt(np.einsum("kd,kd->k", db, db))
        ok = (na > 0) & (nb > 0)
        if ok.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                c = np.einsum("kd,kd->k", da, db) / (na * nb)
            best = min(best, float(c[ok].min()))
    return float("nan") if not np.isfinite(best) else float(np.clip(best, -1.0, 1.0))
