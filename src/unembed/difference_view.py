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
from unembed.row_stats import EPS32, NARROW_PASS_BYTES, PASS_BYTES, norm_above, reads_narrow

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
    always computed directly. Rows kept in float32 or float16 are estimated without widening
    them (:func:`_estimates32`, float32 products with their own bound); only the direct
    computation is in float64.
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
    narrow = reads_narrow(head.stored_dtype, d, head.null_space is not None)
    with threadpool_limits(1, user_api="blas"):  # matrix-vector products: bound by reading
        if narrow:
            _estimates32(head, m, ci, cj, gij, ni, nj, gamma, lo, hi)
        else:
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
        _interval(num, A, B, eN, eA, eB, lo[s:e], hi[s:e])


def _estimates32(head: Head, m: NDArray[np.float64], ci: NDArray[np.float64],
                 cj: NDArray[np.float64], gij: float, ni: float, nj: float, gamma: float,
                 lo: NDArray[np.float64], hi: NDArray[np.float64]) -> None:
    """:func:`_estimates` for rows kept in float32 or float16, without widening them: each
    block centered in float32 on m32 = fl32(m), its products with fl32(c_i), fl32(c_j) and
    its squared norms in float32, and the rounding of all of it carried into [lo, hi].

    With eps = 2^-24, g = gamma32_d, dm = |m - m32|, c~_k = fl32(u_k - m32) and
    rho_k = |c~_k| (so |c~_k - c_k| <= dm + eps rho_k, |c_k| <= c_k^+ := rho_k^+ + dm +
    eps rho_k^+, rho_k^+ an upper bound on rho_k from the float32 squared norm), each
    float32 product of the pass is within

        e_G = n_i ((g + 3 eps)(1 + eps) rho_k^+ + dm (1 + 2 eps)) + (d + sqrt(d) c_k^+) 2^-149

    of c_i . c_k (the roundings of c_i, of c~_k and of the product, and gradual underflow),
    and the squared norm within e_K = g rho_k^+2 + d 2^-150 + (dm + eps rho_k^+)
    (rho_k^+ + c_k^+) of |c_k|^2. The float64 steps add ``gamma`` (the float64 pass's bound)
    of each term's size. A non-finite value (an overflow) leaves the label's interval
    unbounded: it is then computed directly."""
    V, d = head.n_labels, head.d
    eps = EPS32
    g = d * eps / (1 - d * eps)
    m32 = m.astype(np.float32)
    dm = norm_above(m - np.asarray(m32, dtype=np.float64))  # the difference exact (Sterbenz)
    Q = np.ascontiguousarray(np.stack([ci, cj], axis=1), dtype=np.float32)  # (d, 2)
    up = 1 + 1e-9  # the float64 arithmetic of the bounds themselves, rounded up
    r = (g + 3 * eps) * (1 + eps)
    under = d * 2.0**-149
    for s, e in row_blocks(V, d, NARROW_PASS_BYTES):
        C = np.subtract(head.stored_block(s, e), m32, dtype=np.float32)
        GH = (C @ Q).astype(np.float64)
        G, H = GH[:, 0], GH[:, 1]
        nk2 = np.einsum("ij,ij->i", C, C).astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            rk = np.sqrt((nk2 + under) / (1 - g)) * up
            ck = (rk * (1 + eps) + dm) * up
            tiny = (under + np.sqrt(d) * ck * 2.0**-149) * up
            eG = (ni * (r * rk + dm * (1 + 2 * eps)) + tiny) * up
            eH = (nj * (r * rk + dm * (1 + 2 * eps)) + tiny) * up
            eK = (g * rk * rk + under + (dm + eps * rk) * (rk + ck)) * up
            num = gij - G - H + nk2
            A = ni * ni - 2 * G + nk2
            B = nj * nj - 2 * H + nk2
            eN = (gamma * (abs(gij) + np.abs(G) + np.abs(H) + nk2) + gamma * ni * nj
                  + eG + eH + eK) * up
            eA = (gamma * (ni * ni + 2 * np.abs(G) + nk2) + 2 * eG + eK) * up
            eB = (gamma * (nj * nj + 2 * np.abs(H) + nk2) + 2 * eH + eK) * up
        _interval(num, A, B, eN, eA, eB, lo[s:e], hi[s:e])


def _interval(num: NDArray[np.float64], A: NDArray[np.float64], B: NDArray[np.float64],
              eN: NDArray[np.float64], eA: NDArray[np.float64], eB: NDArray[np.float64],
              lo: NDArray[np.float64], hi: NDArray[np.float64]) -> None:
    """Into ``lo``, ``hi``: the interval of num / sqrt(A B) for num, A, B known within eN,
    eA, eB. Unbounded (-inf, inf) where the lengths may be zero or a value is not finite
    (an overflow): such a label is then computed directly."""
    with np.errstate(over="ignore", invalid="ignore"):
        dlo = np.sqrt(np.maximum(A - eA, 0.0) * np.maximum(B - eB, 0.0))
        dhi = np.sqrt((A + eA) * (B + eB))
        nlo, nhi = num - eN, num + eN
    with np.errstate(divide="ignore", invalid="ignore"):
        lo[:] = np.where(nlo >= 0, nlo / dhi, nlo / dlo)
        hi[:] = np.where(nhi >= 0, nhi / dlo, nhi / dhi)
    bad = ~((dlo > 0) & np.isfinite(dhi) & np.isfinite(nlo) & np.isfinite(nhi))
    lo[bad], hi[bad] = -np.inf, np.inf


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
