"""The fast pass's walk over the sketch's bounds (``Sketch.reach``, ``Scores.first`` through a
sketch), against the whole-matrix computation written here in plain numpy.

Where the walk must equal the whole matrix bit for bit, the sketch's coefficients and the
witnesses' projections are small integers (and the residual column zero): every float32 dot
product is then exact, whatever order the BLAS sums it in, so a chunk's product and the whole
product agree entry for entry and any difference is the walk's. On a real sketch
(``Sketch.build``) the walk is held to the bound itself: every row it leaves out has a float64
logit below the cut, and the largest bound it reports is above every such logit.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from unembed.feasibility.fast_pass import Scores
from unembed.feasibility.sketch import Projection, Sketch, down32, principal_basis


def integer_sketch(rng: np.random.Generator, V: int, k: int, d: int
                   ) -> tuple[Sketch, np.ndarray]:
    """A true sketch of integer rows lying in the first k coordinates (P = [I; 0], mean 0,
    residuals exactly 0): (the sketch, the rows W (V, d))."""
    S = rng.integers(-8, 9, size=(V, k)).astype(np.float64)
    W = np.zeros((V, d))
    W[:, :k] = S
    P = np.zeros((d, k))
    P[np.arange(k), np.arange(k)] = 1.0
    A = np.zeros((V, k + 1), dtype=np.float32)
    A[:, :k] = S
    s_max = float(np.linalg.norm(S, axis=1).max())
    return Sketch(P, A, None, np.zeros(d), 0.0, s_max, 0.0, 0.0), W


def whole_walk(Y: np.ndarray, thr: np.ndarray, kept: np.ndarray,
               bias: np.ndarray | None, unit: tuple[np.ndarray, np.ndarray] | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """keep, top and the bounds with the kept columns -inf, from the whole (n, V) float32
    bounds Y (NaN as +inf already)."""
    Y = Y.copy()
    if bias is not None:
        Y = Y + bias[None, :]
    keep = (Y >= thr[:, None]).any(axis=0)
    if unit is not None:
        keep |= ((Y + unit[0][None, :]) >= unit[1][:, None]).any(axis=0)
    keep[kept] = True
    Y[:, keep] = -np.inf
    return keep, Y.max(axis=1), Y


def integer_projection(rng: np.random.Generator, n: int, k: int, V: int,
                       out: np.ndarray | None = None) -> Projection:
    G = np.zeros((n, k + 1), dtype=np.float32)
    G[:, :k] = rng.integers(-8, 9, size=(n, k))
    G[:, k] = rng.uniform(0.5, 2.0, size=n)  # times the residual column 0: exactly 0
    o = np.zeros(n, dtype=bool) if out is None else out
    return Projection(G, np.zeros(n), np.full(n, 1e4), o)


def exact_bounds(sk: Sketch, proj: Projection) -> np.ndarray:
    """fl32(G A^T) formed in float64 (exact for these integers), NaN as +inf, rows out +inf."""
    with np.errstate(invalid="ignore", over="ignore"):
        Y = (proj.G.astype(np.float64) @ sk.A.astype(np.float64).T).astype(np.float32)
    Y[np.isnan(Y)] = np.inf
    Y[proj.out] = np.inf
    return Y


@pytest.mark.parametrize("n, chunk", [(7, 4 * 7 * 64), (7, 4 * 7 * 61), (1, 4 * 37),
                                      (7, 1 << 21), (7, 4)])
@pytest.mark.parametrize("with_bias", ["none", "added", "unit"])
def test_reach_is_the_whole_matrix_keep_set_and_maximum(n: int, chunk: int,
                                                        with_bias: str) -> None:
    rng = np.random.default_rng(n * 1000 + chunk % 997)
    V, k = 1000, 6
    sk, _ = integer_sketch(rng, V, k, 9)
    proj = integer_projection(rng, n, k, V)
    Y = exact_bounds(sk, proj)
    b = rng.uniform(-3, 3, size=V).astype(np.float32)
    bias = b if with_bias == "added" else None
    Yb = Y + b if bias is not None else Y
    # thresholds a few rows reach, one witness reaching none, one reaching all
    thr = np.quantile(Yb, 0.995, axis=1).astype(np.float32)
    thr[0] = np.inf
    if n > 2:
        thr[2] = -np.inf
    unit = None
    if with_bias == "unit":
        unit = (b, np.quantile(Yb + b, 0.997, axis=1).astype(np.float32))
    kept = rng.choice(V, 5, replace=False)
    keep_ref, top_ref, Y_ref = whole_walk(Y, thr, kept, bias, unit)
    into = np.full((n, V), np.nan, dtype=np.float32)
    keep, top = sk.reach(proj, thr, kept, into, bias, unit, chunk=chunk)
    np.testing.assert_array_equal(keep, keep_ref)
    np.testing.assert_array_equal(top, top_ref)
    assert keep.sum() > kept.size or n == 1  # not only the rows kept by fiat
    np.testing.assert_array_equal(into, Y_ref)


def test_reach_with_infinite_and_undefined_products_and_rows_out_of_range() -> None:
    """inf - inf in a product (NaN) is no bound, so +inf: such a row is kept by every
    witness that meets it; a witness out of float32's range bounds every row by +inf."""
    rng = np.random.default_rng(4)
    V, k, n = 300, 5, 6
    sk, _ = integer_sketch(rng, V, k, 7)
    A = sk.A.copy()
    A[10, 0], A[10, 1] = np.inf, -np.inf  # NaN against every witness (g_0 = g_1 below)
    A[20, 2] = np.inf  # +inf or -inf by the sign of g_2, NaN where g_2 = 0
    A[30, k] = -np.inf  # times |rho| > 0: -inf for every witness
    sk = Sketch(sk.P, A, None, sk.mean, 0.0, np.inf, 0.0, 0.0)
    out = np.zeros(n, dtype=bool)
    proj = integer_projection(rng, n, k, V)
    proj.G[:, 0] = np.where(proj.G[:, 0] == 0, 3.0, proj.G[:, 0])
    proj.G[:, 1] = proj.G[:, 0]
    proj.G[1, :k] = 0.0  # meets row 10 as inf * 0 = NaN
    Y = exact_bounds(sk, proj)
    assert np.isinf(Y).any() and np.isposinf(Y[:, 10]).all()
    thr = np.quantile(np.where(np.isfinite(Y), Y, 0), 0.99, axis=1).astype(np.float32)
    for o in (out, np.arange(n) == 3):
        proj_o = Projection(proj.G, proj.add, proj.mag, o)
        Yo = exact_bounds(sk, proj_o)
        keep_ref, top_ref, _ = whole_walk(Yo, thr, np.array([0]), None, None)
        for chunk in (4 * n * 7, 1 << 20):
            into = np.empty((n, V), dtype=np.float32)
            keep, top = sk.reach(proj_o, thr, np.array([0]), into, chunk=chunk)
            np.testing.assert_array_equal(keep, keep_ref)
            np.testing.assert_array_equal(top, top_ref)
        assert keep[10] and (keep.all() if o.any() else not keep[30])


def _exact_dot(u: np.ndarray, h: np.ndarray) -> Fraction:
    return sum((Fraction(float(a)) * Fraction(float(b)) for a, b in zip(u, h)), Fraction(0))


@pytest.mark.parametrize("chunk", [4 * 64 * 100, 1 << 21])
def test_rows_left_out_by_reach_are_below_the_cut_and_under_the_largest_bound(chunk: int
                                                                              ) -> None:
    """On a sketch built from a real (random, structured) head: every row j the walk leaves
    out has u_j . h_i < cut_i for every witness (float64 where it is clear, exact rationals
    where it is not), and u_j . h_i <= top_i + add_i."""
    rng = np.random.default_rng(11)
    V, d, n = 3000, 48, 64
    W = rng.standard_normal((V, 8)) @ rng.standard_normal((8, d)) \
        + 0.1 * rng.standard_normal((V, d)) + 0.5
    m = W.mean(axis=0)
    sk = Sketch.build(W, m, principal_basis(np.cov(W.T, bias=True), 8))
    lab = np.arange(100, 100 + n)
    H = W[lab] - m
    Z = H @ W.T  # (n, V) float64
    cut = np.quantile(Z, 0.995, axis=1)  # a few rivals reach it
    proj = sk.project(H)
    into = np.empty((n, V), dtype=np.float32)
    keep, top = sk.reach(proj, down32(cut - proj.add), lab, into, chunk=chunk)
    assert keep[lab].all() and 0 < keep.sum() - n < V // 4
    err = 2 * (d + 2) * 2.0**-53 * np.outer(np.linalg.norm(H, axis=1),
                                            np.linalg.norm(W, axis=1))
    ub = np.minimum(cut, top.astype(np.float64) + proj.add)
    unclear = np.argwhere(~(Z[:, ~keep] + err[:, ~keep] < ub[:, None]))
    left = np.flatnonzero(~keep)
    for i, jj in unclear[:200]:
        j = left[jj]
        exact = _exact_dot(W[j], H[i])
        assert exact < Fraction(float(cut[i]))
        assert exact <= Fraction(float(top[i])) + Fraction(float(proj.add[i]))
    assert len(unclear) <= 200


def _scores_by_whole_matrix(sk: Sketch, W: np.ndarray, b32: np.ndarray, n32: np.ndarray,
                            H: np.ndarray, lab: np.ndarray, add_bias: bool,
                            corr: np.ndarray, cut: np.ndarray,
                            unit_b: np.ndarray | None, s: np.ndarray):
    """Scores.first (and with_bias) through a sketch, written on the whole bounds matrix."""
    V = W.shape[0]
    n = H.shape[0]
    r = np.arange(n)
    Y, add, mag = sk.bounds(H)
    Y[r, lab] = -np.inf
    nu = 2.0**-22 * (mag + 2 * float(np.abs(b32).max())) * (1 + 1e-6) + 2.0**-146
    if add_bias:
        Y = Y + b32[None, :]
        add = add + nu
    thr = down32(cut - add)
    keep = (Y >= thr[:, None]).any(axis=0)
    if unit_b is not None:
        thr1 = down32(cut + unit_b - add - nu)
        keep |= ((Y + b32[None, :]) >= thr1[:, None]).any(axis=0)
    keep[lab] = True
    J = np.flatnonzero(keep)
    assert J.size <= V // 2
    ZJ = (H.astype(np.float32) @ W[J].astype(np.float32).T)
    if add_bias:
        ZJ = ZJ + b32[None, J]
    ZJ = ZJ + corr.astype(np.float32)[:, None] * n32[None, J]
    ZJ[r, np.searchsorted(J, lab)] = -np.inf
    jJ = ZJ.argmax(1)
    Y[:, J] = -np.inf
    zj = np.maximum(ZJ[r, jJ].astype(np.float64), Y.max(axis=1).astype(np.float64) + add)
    if unit_b is None:
        return J, J[jJ], zj, None
    s32 = s.astype(np.float32)[:, None]
    ZJb = ZJ + s32 * b32[None, J]
    jb = ZJb.argmax(1)
    Yb = Y + s32 * b32[None, :]
    zjb = np.maximum(ZJb[r, jb].astype(np.float64),
                     Yb.max(axis=1).astype(np.float64) + add + nu)
    return J, J[jJ], zj, (J[jb], zjb)


@pytest.mark.parametrize("n", [256, 1])
@pytest.mark.parametrize("with_bias", ["none", "added", "unit"])
def test_first_through_a_sketch_is_the_whole_matrix_computation(n: int,
                                                                 with_bias: str) -> None:
    """Scores.first through the sketch (V = 5000 rows: with 256 witnesses the walk takes
    chunks of 2048, the last one short) equals the fast pass written on the whole bounds
    matrix, bit for bit; with the unit form's bias, with_bias too."""
    rng = np.random.default_rng(n + len(with_bias))
    V, k, d = 5000, 12, 16
    sk, W = integer_sketch(rng, V, k, d)
    lab = rng.choice(V, n, replace=False)
    H = W[lab] * 0.5
    norms = np.linalg.norm(W, axis=1)
    b = rng.uniform(-2, 2, size=V).astype(np.float32) if with_bias != "none" \
        else np.zeros(V, dtype=np.float32)
    corr = np.full(n, 1e-5) * np.linalg.norm(H, axis=1)
    cut = np.quantile(H @ W.T, 0.999, axis=1)  # a few rivals reach it
    unit_b = b[lab].astype(np.float64) if with_bias == "unit" else None
    s = rng.uniform(0, 1, size=n)
    J, j, zj, wb = _scores_by_whole_matrix(sk, W, b, norms.astype(np.float32), H, lab,
                                           with_bias == "added", corr, cut, unit_b, s)
    assert J.size > n  # some rows kept by their bound, not only the labels' own
    sc = Scores(W, b, norms.astype(np.float32), sketch=sk)
    got_j, got_zj = sc.first(H, np.arange(n), lab, with_bias == "added", corr, cut, unit_b)
    assert sc.J is not None
    np.testing.assert_array_equal(sc.J, J)
    np.testing.assert_array_equal(got_j, j)
    np.testing.assert_array_equal(got_zj, zj)
    if wb is not None:
        got_jb, got_zjb = sc.with_bias(s)
        np.testing.assert_array_equal(got_jb, wb[0])
        np.testing.assert_array_equal(got_zjb, wb[1])
