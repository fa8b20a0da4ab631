"""Every LP verdict of unembed.feasibility against an independent formulation (tests/independent_lp.py).

The library decides in its *unit form* (h in the unit box, the bias scaled by s in [0, 1]).
This file uses another parametrisation, with the full bias and a box of half-width R::

    t(R) = max t   s.t.  (u_a - u_k) . h + b_a - b_k >= t   (a in the top set, k outside)
                         (u_a - u_c) . h + b_a - b_c  = 0   (ties, for the top-two question)
                         |h|_inf <= R

solved with SciPy's HiGHS on its default settings, over a grid of R, plus the limit
R -> inf (the homogeneous problem without bias). The unit-form optimum T is the supremum of
t(R) / max(1, R) over R > 0, and the grid gives a lower bound T_grid <= T. So:

* "yes": the witness, re-checked here in float64 on the logits its ``realises`` names, makes
  the question true (strict margin; ties within tol in the unit form, as documented);
* "no": T_grid <= tol (the certificate proves T <= tol);
* "undecided": T_grid <= CLEAR * tol (only optima close to the tolerance stay undecided);
* T_grid > CLEAR * tol: the answer must be "yes".

Heads are random with biases, row norms spread over 1e-3 .. 1e3, near-duplicate rows and
planted interior rows (convex combinations of others).
"""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from independent_lp import unit_optimum
from unembed import Head
from unembed.feasibility import (
    CLEAR,
    Feasibility,
    argmaxable_all,
    can_be_top_two,
    co_top_matrix,
    is_argmaxable,
)


# ---------------------------------------------------------------------------------- checks
def expected_realises(head: Head, bias: bool) -> str:
    return "W h" if (not bias and np.any(head.bias != 0)) else "W h + b"


def check_against_independent(head: Head, r: Feasibility, top: list[int], *, bias: bool,
                              tie: bool) -> str:
    assert r.realises == expected_realises(head, bias)
    b = head.bias if bias else np.zeros(head.n_labels)
    if r.status == "yes":
        # above tol; or by the span theorem (affinely independent rows) an exact witness with
        # a positive margin at any tolerance, which then says it is below tol
        assert r.witness is not None
        assert r.margin > r.tol or (r.method == "span" and r.margin > 0)
        if r.margin <= r.tol:
            assert "below the tolerance" in r.reason
        z = head.W @ r.witness + (head.bias if r.realises == "W h + b" else 0.0)
        rest = np.ones(head.n_labels, dtype=bool)
        rest[top] = False
        assert z[top].min() > z[rest].max(), "the witness does not realise the answer"
        if tie:  # within tol in the unit form (to rounding where the projection applied)
            k = max(1.0, float(np.abs(r.witness).max()))
            assert abs(z[top[0]] - z[top[1]]) <= r.tol * k, "the tie does not hold"
        return "yes"
    T = unit_optimum(head.W, b, top, tie)
    slack = 1e-6 * r.tol + 1e-9
    if r.status == "no":
        assert T <= r.tol + slack, f"'no' but the independent optimum is {T:.3g} > {r.tol:.3g}"
    else:
        assert T <= CLEAR * r.tol + slack, (
            f"'undecided' with an independent optimum {T:.3g} = {T / r.tol:.3g} tol")
    return str(r.status)


def check_complete(head: Head, r: Feasibility, top: list[int], *, bias: bool, tie: bool
                   ) -> None:
    """A clear optimum is a 'yes' (a regression once: a clear optimum reported undecided)."""
    if r.status != "yes":
        b = head.bias if bias else np.zeros(head.n_labels)
        T = unit_optimum(head.W, b, top, tie)
        assert T <= CLEAR * r.tol * (1 + 1e-6) + 1e-9, (
            f"{r.status!r} for {r.labels} although the optimum is {T / r.tol:.3g} tol")


# ---------------------------------------------------------------------------------- heads
@st.composite
def heads(draw: st.DrawFn) -> Head:
    seed = draw(st.integers(0, 2**32 - 1))
    V = draw(st.integers(5, 8))
    d = draw(st.integers(2, 4))
    spread = draw(st.sampled_from([0.0, 1.0, 3.0]))  # log10 range of row norms
    bias = draw(st.sampled_from(["none", "small", "large"]))
    near = draw(st.booleans())
    planted = draw(st.booleans())
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((V, d)) * 10.0 ** rng.uniform(-spread, spread, size=(V, 1))
    if planted:  # a convex combination of three others: inside their hull
        W[0] = rng.dirichlet(np.ones(3)) @ W[1:4]
    if near:
        W[-1] = W[-2] * (1 + 1e-9 * rng.standard_normal(d))
    b = {"none": None, "small": 1e-3 * rng.standard_normal(V),
         "large": 10.0 ** rng.uniform(-1, 2) * rng.standard_normal(V)}[bias]
    return Head(W, b=b)


QUICK = settings(max_examples=20, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


@QUICK
@given(heads(), st.booleans())
def test_argmaxable_against_independent_lp(head: Head, bias: bool) -> None:
    for i in range(head.n_labels):
        r = is_argmaxable(head, i, bias=bias)
        check_against_independent(head, r, [i], bias=bias, tie=False)
        check_complete(head, r, [i], bias=bias, tie=False)


@QUICK
@given(heads(), st.booleans())
def test_top_two_and_co_top_matrix_against_independent_lp(head: Head, bias: bool) -> None:
    m = co_top_matrix(head, list(range(head.n_labels)), bias=bias)
    for a, c in itertools.combinations(range(head.n_labels), 2):
        r = can_be_top_two(head, a, c, bias=bias)
        check_against_independent(head, r, [a, c], bias=bias, tie=True)
        check_complete(head, r, [a, c], bias=bias, tie=True)
        rm = m.results[(a, c)]
        check_against_independent(head, rm, [a, c], bias=bias, tie=True)
        assert m.feasible[a, c] == (rm.status == "yes")
    assert m.realises == expected_realises(head, bias)


@QUICK
@given(heads())
def test_whole_vocabulary_against_independent_lp(head: Head) -> None:
    res = argmaxable_all(head, workers=1)
    assert res.realises == "W h + b"
    for i in range(head.n_labels):
        if res.status[i] == "yes":
            w = res.witness(i)
            assert w is not None
            z = head.W @ w + head.bias
            assert int(np.argmax(z)) == i and np.sort(z)[-2] < z[i]
        else:
            T = unit_optimum(head.W, head.bias, [i], False)
            limit = res.tol if res.status[i] == "no" else CLEAR * res.tol
            assert T <= limit * (1 + 1e-6) + 1e-9


# ---------------------------------------------------------------------------------- regressions
def wide_norm_head(seed: int) -> Head:
    """The kind of head that once gave 'undecided' pairs: a bias, norms over 6 decades."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((6, 3)) * 10.0 ** rng.uniform(-3, 3, size=(6, 1))
    return Head(W, b=rng.standard_normal(6) * 10.0 ** rng.uniform(-3, 2))


def test_clear_top_two_optimum_at_zero_bias_scale_is_a_yes() -> None:
    found = 0
    for seed in range(6):
        head = wide_norm_head(seed)
        for a, c in itertools.combinations(range(6), 2):
            r = can_be_top_two(head, a, c)
            T = unit_optimum(head.W, head.bias, [a, c], True)
            if T > CLEAR * r.tol:
                found += 1
                assert r.status == "yes", (seed, a, c, r.status, T / r.tol)
            check_against_independent(head, r, [a, c], bias=True, tie=True)
    assert found >= 10


def test_identical_rows_are_never_the_strict_argmax_and_say_why() -> None:
    rng = np.random.default_rng(3)
    W = rng.standard_normal((6, 3))
    W[4] = W[1]
    for b in (None, np.array([0.0, 0.5, 0.0, 0.0, 0.2, 0.0])):
        head = Head(W, b=b, strict=False)
        res = argmaxable_all(head, workers=1)
        loser = [1, 4] if b is None else [4]  # the lower (or equal) bias loses
        for i in loser:
            assert res.status[i] == "no" and res.method[i] == "identical"
            assert "identical" in res.reasons[i]
            assert "identical" in is_argmaxable(head, i).reason
            assert is_argmaxable(head, i).status == "no"
        for i in set(range(6)) - set(loser):
            check_against_independent(head, is_argmaxable(head, i), [i], bias=True,
                                      tie=False)
        r = can_be_top_two(head, 1, 4)
        if b is None:  # identical rows always tie: the pair leads together where both lead
            check_against_independent(head, r, [1, 4], bias=True, tie=True)
        else:
            assert r.status == "no" and "never tie" in r.reason


def test_bias_false_witness_realises_w_h_only() -> None:
    head = Head(np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]), b=np.array([0.0, 100.0, 0.0]))
    r = is_argmaxable(head, 0, bias=False)
    assert r.status == "yes" and r.realises == "W h" and r.to_dict()["realises"] == "W h"
    assert int(np.argmax(head.W @ r.witness)) == 0
    # the bias matters here: the same witness does not make label 0 the argmax of W h + b
    assert int(np.argmax(head.logits(r.witness))) != 0
    with_bias = is_argmaxable(head, 0)
    assert with_bias.realises == "W h + b"
    assert int(np.argmax(head.logits(with_bias.witness))) == 0
    assert argmaxable_all(head, bias=False, workers=1).realises == "W h"


def test_vocabulary_witness_resolves_labels_like_the_head() -> None:
    rng = np.random.default_rng(5)
    head = Head(rng.standard_normal((5, 3)), labels=["a", "b", "c", "d", "e"])
    res = argmaxable_all(head, workers=1)
    ws = [res.witness(x) for x in ("c", 2, np.int64(2), "#2")]
    assert all(w is not None and np.array_equal(w, ws[0]) for w in ws)


# ---------------------------------------------------------------------------------- wide heads
@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(3, 8), st.integers(0, 6),
       st.sampled_from(["none", "large"]))
def test_wide_heads_are_all_argmaxable_by_the_span_theorem(seed: int, V: int, extra: int,
                                                           bias: str) -> None:
    """V - 1 <= d with affinely independent rows (random rows are, almost surely): every label
    argmaxable without an LP; the independent LP agrees and every witness is re-checked."""
    rng = np.random.default_rng(seed)
    d = V - 1 + extra
    W = rng.standard_normal((V, d)) * 10.0 ** rng.uniform(-2, 2, size=(V, 1))
    b = None if bias == "none" else 10.0 * rng.standard_normal(V)
    head = Head(W, b=b)
    res = argmaxable_all(head, workers=1)
    assert list(res.method) == ["span"] * V and res.lp_results == {}
    for i in range(V):
        w = res.witness(i)
        assert w is not None
        z = head.W @ w + head.bias
        assert int(np.argmax(z)) == i and np.sort(z)[-2] < z[i]
        assert unit_optimum(head.W, head.bias, [i], False) > res.tol


def test_wide_head_with_an_interior_row_falls_back_to_the_lps() -> None:
    """Affinely dependent rows (a convex combination of three others) are not settled by the
    theorem: the LPs decide, and the planted row is proven not argmaxable."""
    rng = np.random.default_rng(8)
    W = rng.standard_normal((6, 40))
    W[0] = np.array([0.2, 0.3, 0.5]) @ W[1:4]
    head = Head(W)
    res = argmaxable_all(head, workers=1)
    assert "span" not in set(res.method)
    assert res.status[0] == "no"
    assert unit_optimum(head.W, head.bias, [0], False) <= res.tol
    assert all(res.status[i] == "yes" for i in range(1, 6))


def test_moderately_wide_head_needs_no_lp() -> None:
    rng = np.random.default_rng(9)
    counts = rng.gamma(0.3, 1.0, size=(30, 3000)) + 1e-3
    W = np.log(counts / counts.sum(axis=1, keepdims=True)).astype(np.float16)
    head = Head(W, b=rng.standard_normal(30))
    res = argmaxable_all(head, workers=1)
    assert (res.method == "span").all() and res.to_dict()["span"] == 30
    assert res.notes and not res.narrowest_exact
    for i in (0, 17, 29):
        z = head.logits(res.witness(i))[0]
        assert int(np.argmax(z)) == i


def test_enumerations_say_what_their_witnesses_realise() -> None:
    from unembed.feasibility import enumerate_rankings

    head = Head(np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]), b=np.array([0.0, 50.0, 0.0]))
    for bias, want in ((True, "W h + b"), (False, "W h")):
        e = enumerate_rankings(head, [0, 1, 2], bias=bias)
        assert e.realises == want and e.to_dict()["realises"] == want
        for r in e.feasible:
            assert r.realises == want
            z = head.W @ r.witness + (head.bias if want == "W h + b" else 0.0)
            assert np.all(np.diff(z[head.indices(list(r.labels))]) < 0)


# ---------------------------------------------------------------------------------- wide heads
@st.composite
def wide_heads(draw: st.DrawFn) -> Head:
    """V << d (2 V <= d: the LPs are solved in the rows' span), rows affinely dependent: one
    a convex combination of three others, one an affine (not convex) combination."""
    seed = draw(st.integers(0, 2**32 - 1))
    V = draw(st.integers(5, 8))
    d = draw(st.integers(2 * V, 40))
    bias = draw(st.sampled_from(["none", "large"]))
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((V, d))
    W[0] = rng.dirichlet(np.ones(3)) @ W[1:4]  # inside the hull: never the argmax
    W[-1] = 1.5 * W[1] - 0.5 * W[2]  # on their line, outside the segment
    b = None if bias == "none" else 10.0 ** rng.uniform(-1, 1) * rng.standard_normal(V)
    return Head(W, b=b)


@QUICK
@given(wide_heads(), st.booleans())
def test_wide_heads_lps_in_the_span_agree_with_the_lp_in_r_d(head: Head, bias: bool) -> None:
    seen = set()
    for i in range(head.n_labels):
        r = is_argmaxable(head, i, bias=bias)
        seen.add(r.status)
        check_against_independent(head, r, [i], bias=bias, tie=False)
        check_complete(head, r, [i], bias=bias, tie=False)
        if r.lp_solves:
            assert "span" in r.lp_space
    for a, c in [(0, 1), (1, 2), (2, head.n_labels - 1)]:
        r = can_be_top_two(head, a, c, bias=bias)
        check_against_independent(head, r, [a, c], bias=bias, tie=True)
        check_complete(head, r, [a, c], bias=bias, tie=True)
    if not bias or not np.any(head.bias != 0):
        assert "no" in seen  # the planted row
