"""The fast pass's sketch bounds (unembed.feasibility.sketch), checked independently.

* The bound u_j . h <= Y_ij + add_i is checked in exact rational arithmetic (``fractions``)
  on every pair where float64 cannot tell, on hostile heads: scales from 1e-30 to 1e30, a mean
  a million times the spread, duplicate rows, rows exactly inside a k-dimensional subspace,
  norms over six decades, and bases P that are not orthonormal at all.
* ``argmaxable_all`` with a sketch gives the verdicts of the direct pass, every "yes" with a
  witness re-checked here in float64, every "no" against SciPy's HiGHS on an LP written here.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from sketch_heads import rank_question
from unembed import Head
from unembed.feasibility import argmaxable_all
from unembed.feasibility.sketch import (
    Sketch,
    choose_rank,
    covariance32,
    principal_basis,
    rank_ladder,
)


def _exact_dot(u: np.ndarray, h: np.ndarray) -> Fraction:
    return sum((Fraction(float(a)) * Fraction(float(b)) for a, b in zip(u, h)), Fraction(0))


def check_bound(W: np.ndarray, H: np.ndarray, Y: np.ndarray, add: np.ndarray) -> int:
    """Every u_j . h_i <= Y_ij + add_i; exact arithmetic where float64 is not clear. Returns
    how many pairs needed it."""
    Z = W @ H.T  # (V, n) float64
    err = 2 * (W.shape[1] + 2) * 2.0**-53 * np.outer(np.linalg.norm(W, axis=1),
                                                   np.linalg.norm(H, axis=1))
    ub = Y.T.astype(np.float64) + add[None, :]
    assert not np.any(np.isnan(ub))
    clear = (Z + err < ub * (1 - 2.0**-50) - 1e-300) | (ub == np.inf)
    unclear = np.argwhere(~clear)
    for j, i in unclear[:400]:
        exact_ub = Fraction(float(Y[i, j])) + Fraction(float(add[i]))
        assert _exact_dot(W[j], H[i]) <= exact_ub, (j, i)
    assert len(unclear) <= 400, "too many pairs to check exactly"
    return len(unclear)


@st.composite
def hostile(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    V = draw(st.integers(20, 120))
    d = draw(st.integers(4, 40))
    kind = draw(st.sampled_from(["gauss", "lowrank", "offset", "norms", "dups"]))
    scale = 10.0 ** draw(st.sampled_from([-30, -3, 0, 3, 30]))
    if kind == "lowrank":  # rows exactly in a r-dimensional affine subspace: residual 0
        r = max(1, d // 4)
        W = rng.standard_normal((V, r)) @ rng.standard_normal((r, d)) + rng.standard_normal(d)
    elif kind == "offset":  # the mean dwarfs the spread: cancellation in u_j - m
        W = 1e6 * rng.standard_normal(d) + rng.standard_normal((V, d))
    elif kind == "norms":
        W = rng.standard_normal((V, d)) * 10.0 ** rng.uniform(-3, 3, size=(V, 1))
    elif kind == "dups":
        W = rng.standard_normal((V // 2, d))
        W = np.concatenate([W, W, W[:V - 2 * (V // 2)]])
    else:
        W = rng.standard_normal((V, d))
    W = W * scale
    k = draw(st.integers(1, d))
    basis = draw(st.sampled_from(["pca", "random", "skewed"]))
    if basis == "pca":
        P = principal_basis(np.cov(W.T, bias=True), k)
    else:
        P, _ = np.linalg.qr(rng.standard_normal((d, k)))
        if basis == "skewed":  # not orthonormal at all: the bound must still hold
            P = P * rng.uniform(0.5, 2.0, size=k) + 0.1 * rng.standard_normal((d, k))
    which = draw(st.sampled_from(["centered", "random", "huge"]))
    m = W.mean(axis=0)
    if which == "centered":
        H = W[rng.choice(V, 6)] - m
    elif which == "random":
        H = rng.standard_normal((6, d)) * scale
    else:
        H = rng.standard_normal((6, d)) * 1e20
    return W, P, H


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile())
def test_sketch_bound_holds_in_exact_arithmetic(case) -> None:
    W, P, H = case
    m = W.mean(axis=0)
    Y, add, mag = Sketch.build(W, m, P).bounds(H)
    assert np.all(np.abs(Y) <= mag[:, None])
    check_bound(W, H, Y, add)
    rows = np.arange(0, W.shape[0], 3)  # a sketch of some rows: their bounds, in that order
    Y, add, _ = Sketch.build(W, m, P[:, : max(1, P.shape[1] // 2)], rows).bounds(H)
    check_bound(W[rows], H, Y, add)


def test_sketch_bound_is_tight_where_rows_share_structure() -> None:
    """Not a test that cannot fail: on rows in a 16-dimensional subspace plus small noise,
    with the rank-16 principal basis, the bound of a rival stays within 3% of the witness's
    own logit scale, and most rivals are left out."""
    rng = np.random.default_rng(3)
    W = rng.standard_normal((2000, 16)) @ rng.standard_normal((16, 256)) \
        + 0.05 * rng.standard_normal((2000, 256))
    m = W.mean(axis=0)
    sk = Sketch.build(W, m, principal_basis(np.cov(W.T, bias=True), 16))
    H = W[:64] - m
    Y, add, _ = sk.bounds(H)
    ub = Y.astype(np.float64) + add[:, None]
    exact = H @ W.T
    own = np.einsum("ij,ij->i", H, W[:64])
    check_bound(W, H, Y, add)
    assert np.median((ub - exact) / own[:, None]) < 0.03
    ub[np.arange(64), np.arange(64)] = -np.inf
    assert np.mean(ub >= own[:, None]) < 0.01


def test_covariance32_is_the_covariance() -> None:
    rng = np.random.default_rng(2)
    W = rng.standard_normal((5000, 40)) * rng.uniform(0.1, 3, size=40) + 7.0
    np.testing.assert_allclose(covariance32(W, W.mean(axis=0)), np.cov(W.T, bias=True),
                               rtol=1e-4, atol=1e-5)


def test_rank_ladder_and_choice() -> None:
    assert rank_ladder(128256, 4096, 256) == (256, 512, 1024)
    assert rank_ladder(256000, 3584, 256) == (224, 448, 896, 1024)
    assert rank_ladder(1000, 4096, 256) == ()
    assert rank_ladder(100000, 64, 256) == ()
    rng = np.random.default_rng(0)
    W, m, P, H, own = rank_question(rng, 0.01)
    q, share = choose_rank(W, m, P, (16, 32, 64), H, own, np.arange(64), sample=1000)
    costs = {k: k + 1.1 * u * 256 for k, u in share.items()}
    # the ranks measured: the first ones, up to the first at or above the least cost (no rank
    # left out could cost less than its own width)
    assert list(share) == [16, 32, 64][: len(share)] and q == min(costs, key=costs.__getitem__)
    assert all(k >= costs[q] for k in (16, 32, 64) if k not in share)
    assert costs[q] < 256 and share[64] < 0.5
    # the share is what the bound says, on every row (the sample's estimate within 5%)
    Y, add, _ = Sketch.build(W, m, P[:, :q]).bounds(H)
    ub = Y.astype(np.float64) + add[:, None]
    ub[np.arange(64), np.arange(64)] = -np.inf
    reached = (ub >= own[:, None]).any(axis=0).mean()
    assert abs(reached - share[q]) < 0.05
    # a cut lowered by the tolerance reaches more rows: with tol beyond every margin, all
    _, loose = choose_rank(W, m, P, (16, 32, 64), H, own, np.arange(64), tol=1e9, sample=1000)
    assert all(loose[k] == 1.0 for k in loose)
    _, some = choose_rank(W, m, P, (16, 32, 64), H, own, np.arange(64), tol=float(np.median(
        own)) * 0.05, sample=1000)
    assert all(share[k] <= some[k] <= 1.0 for k in share)
    # isotropic rows whose norms spread over a factor of ~10: the residual bound |r_j| |rho| of
    # a long row reaches the logit of every short row's witness, at any rank tried
    W = rng.standard_normal((3000, 256)) * np.exp(0.6 * rng.standard_normal((3000, 1)))
    m = W.mean(axis=0)
    P = principal_basis(np.cov(W.T, bias=True), 32)
    H = W[:64] - m
    own = np.einsum("ij,ij->i", H, W[:64])
    q, share = choose_rank(W, m, P, (16, 32), H, own, np.arange(64))
    assert q == 0 and share[16] > 0.5


# ------------------------------------------------------------------ the whole fast pass
def homogeneous_optimum(W: np.ndarray, i: int) -> float:
    """max t s.t. (u_i - u_k) . h >= t for all k != i, |h|_inf <= 1 (SciPy HiGHS)."""
    V, d = W.shape
    rest = np.delete(np.arange(V), i)
    A = np.c_[-(W[i] - W[rest]), np.ones(rest.size)]
    res = linprog(np.r_[np.zeros(d), -1.0], A_ub=A, b_ub=np.zeros(rest.size),
                  bounds=[(-1.0, 1.0)] * d + [(None, None)], method="highs")
    assert res.status == 0
    return float(-res.fun)


def structured_head(seed: int, V: int = 900, d: int = 64, bias: bool = False,
                    far: float = 3.0) -> Head:
    """Noise-dominated rows around an offset with a 6-dimensional structure (as LM heads look
    to the sketch), an identical row, eight convex combinations of others, and a row ``far``
    times another."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((V, 6)) @ rng.standard_normal((6, d)) / np.sqrt(6) \
        + rng.standard_normal((V, d)) + 1.5
    W[0] = W[12]  # an identical row
    for i in range(1, 9):  # convex combinations of others: never argmaxable
        W[i] = rng.dirichlet(np.ones(4)) @ W[rng.choice(np.arange(20, V), 4, replace=False)]
    W[9] = W[10] * far
    b = 0.3 * rng.standard_normal(V) if bias else None
    return Head(W, b=b, strict=False)


@pytest.mark.parametrize("bias, radius, far", [(False, None, 3.0), (True, None, 3.0),
                                               (True, 2.0, 3.0), (False, None, 50.0)])
def test_sketched_fast_pass_gives_the_direct_verdicts(bias: bool, radius: float | None,
                                                      far: float) -> None:
    """With far = 50 the far row's residual reaches every witness (more rows computed
    exactly): the same verdicts either way."""
    head = structured_head(7, bias=bias, far=far)
    direct = argmaxable_all(head, radius=radius, sketch=0, block=32, workers=1,
                            narrowest_budget=0)
    sk = argmaxable_all(head, radius=radius, sketch=32, block=32, workers=1,
                        narrowest_budget=0)
    assert sk.sketch.rank == 32 and sk.sketch.chosen == "given"
    assert direct.sketch.rank == 0 and direct.sketch.chosen == "off (sketch=0)"
    assert any("rank-32 sketch" in n for n in sk.notes)
    assert sk.sketch.exact_share is not None and (sk.sketch.exact_share < 0.3 or far > 10)
    assert sk.to_dict()["sketch"]["exact_share"] == sk.sketch.exact_share
    np.testing.assert_array_equal(direct.status, sk.status)
    W, b = head.W, head.bias
    yes = np.flatnonzero(sk.status == "yes")
    assert yes.size > 850
    for i in yes:  # every witness, re-checked here
        h = sk.witness(int(i))
        z = W @ h + b
        if radius is not None:
            assert np.abs(h).max() <= radius * (1 + 1e-12)
        assert int(np.argmax(z)) == i and np.sort(z)[-2] < z[i]
    # a proven lower bound on the witness's margin, in the unit form: never above the truth
    fast = np.flatnonzero(sk.method == "fast")
    for i in fast[:50]:
        h = sk.witness(int(i))
        z = W @ h + b
        true = (z[i] - np.delete(z, i).max()) / (1.0 if radius is not None else
                                                 max(1.0, float(np.abs(h).max())))
        assert sk.margin[i] <= true * (1 + 1e-9) + 1e-12
    if not bias:
        for i in np.flatnonzero(sk.status != "yes"):
            assert homogeneous_optimum(W, int(i)) <= sk.tol * (1 + 1e-6) + 1e-12
        assert set(np.flatnonzero(sk.status == "no")) >= {*range(0, 9), 12}


def test_default_sketch_engages_on_a_large_enough_head() -> None:
    head = structured_head(11, V=2400, d=128)
    res = argmaxable_all(head, workers=1, narrowest_budget=0, block=64)
    assert res.sketch.chosen == "cheapest on a sample block" and res.sketch.rank > 0
    ladder = rank_ladder(2400, 128, 64)
    assert list(res.sketch.tried) == list(ladder[: len(res.sketch.tried)])
    cost = res.sketch.rank + 1.1 * res.sketch.tried[res.sketch.rank] * 128
    assert all(k >= cost for k in ladder if k not in res.sketch.tried)
    direct = argmaxable_all(head, workers=1, narrowest_budget=0, block=64, sketch=0)
    np.testing.assert_array_equal(direct.status, res.status)
    assert not any("sketch" in n for n in direct.notes)
    small = argmaxable_all(structured_head(11, V=300, d=128), workers=1, narrowest_budget=0)
    assert small.sketch.rank == 0 and small.sketch.chosen == "head too small to need one"


def test_rank_is_measured_across_the_vocabulary_not_on_its_first_rows() -> None:
    """A vocabulary whose first 40 rows are a tight cluster near the mean (like BERT's
    [unusedN] tokens): measured on the first rows no rank would pay; measured on runs of
    labels drawn across the vocabulary, one does, and the verdicts are those of the direct
    pass (the cluster's labels, inside the hull, by LPs)."""
    head = structured_head(5, V=2400, d=128)
    W = np.array(head.W)
    rng = np.random.default_rng(9)
    W[:40] = W.mean(axis=0) + 1e-3 * rng.standard_normal((40, 128))
    head = Head(W, strict=False)
    m = W.mean(axis=0)
    P = principal_basis(np.cov(W.T, bias=True), 64)
    first = np.arange(64)
    H = W[first] - m
    q_first, _ = choose_rank(W, m, P, (8, 16, 32, 64), H, np.einsum("ij,ij->i", H, W[first]),
                             first)
    assert q_first == 0
    res = argmaxable_all(head, workers=1, narrowest_budget=0, block=64)
    assert res.sketch.rank > 0 and res.sketch.chosen == "cheapest on a sample block"
    direct = argmaxable_all(head, workers=1, narrowest_budget=0, block=64, sketch=0)
    np.testing.assert_array_equal(direct.status, res.status)
