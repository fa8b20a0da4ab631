"""Feasibility: every "yes" is checked by recomputing the head's logits at its witness, every
"no" by recomputing the bound its certificate proves; enumerations are compared with brute
force over random hidden states (which can only find feasible cases) and with known counts."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unembed import Head, UnembedError
from unembed.feasibility import (
    Feasibility,
    argmaxable_all,
    can_be_top_two,
    co_top_matrix,
    enumerate_combinations,
    enumerate_rankings,
    enumerate_top_k_sets,
    is_argmaxable,
    is_feasible_combination,
    is_feasible_ranking,
    is_top_k_set,
)


# ---------------------------------------------------------------------------------- helpers
def planted_head(V: int = 300, d: int = 8, n_planted: int = 10, seed: int = 1,
                 bias: bool = False) -> tuple[Head, list[int]]:
    """Rows on a shifted sphere (every one a vertex of the hull: argmaxable), then some rows
    replaced by convex combinations of others (inside the hull: not argmaxable)."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((V, d))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    W += 3 * rng.standard_normal(d)
    planted = sorted(rng.choice(V, n_planted, replace=False).tolist())
    others = np.setdiff1d(np.arange(V), planted)
    for p in planted:
        k = rng.choice(others, 4, replace=False)
        W[p] = rng.dirichlet(np.ones(4)) @ W[k]
    b = rng.standard_normal(V) * 0.01 if bias else None
    return Head(W, b=b), planted


def margin_at(head: Head, h: np.ndarray, top: list[int], *, bias: bool = True) -> float:
    """min over labels a in ``top`` and k outside of z_a - z_k, in float64 from the head."""
    z = head.W @ h + (head.bias if bias else 0.0)
    rest = np.ones(head.n_labels, dtype=bool)
    rest[top] = False
    return float(z[top].min() - z[rest].max())


def check_certificate(head: Head, r: Feasibility, radius: float | None = None,
                      bias: bool = True) -> None:
    """Recompute, from the head alone, the bound a "no" certificate proves: convex weights lam
    on rows z_p - z_n (and any weights nu on equalities) bound every hidden state's margin by
    R |sum lam (u_p - u_n) + sum nu (...)|_1 + (lam . (b_p - b_n) + nu . (...)), the bias
    term clipped at 0 when the bias is scaled by s in [0, 1] (radius None)."""
    assert r.status == "no" and r.certificate is not None and r.witness is None
    c = r.certificate
    assert np.all(c.weights >= 0) and math.isclose(c.weights.sum(), 1.0, rel_tol=1e-9)
    b = head.bias if bias else np.zeros(head.n_labels)

    def vec(name: str | None) -> tuple[np.ndarray, float]:
        if name is None:
            return np.zeros(head.d), 0.0
        k = head.index(name)
        return head.W[k], float(b[k])

    g = np.zeros(head.d)
    off = 0.0
    for rows, weights in ((c.rows, c.weights), (c.eq_rows, c.eq_weights)):
        for (p, n), w in zip(rows, weights):
            (up, bp), (un, bn) = vec(p), vec(n)
            g += w * (up - un)
            off += w * (bp - bn)
    R = 1.0 if radius is None else radius
    bound = R * np.abs(g).sum() + (max(0.0, off) if radius is None else off)
    assert bound <= r.tol, f"certificate proves only {bound:.3g} > tol {r.tol:.3g}"
    assert math.isclose(bound, c.bound, rel_tol=1e-6, abs_tol=1e-12)


# ---------------------------------------------------------------------------------- argmaxable
def test_interior_point_is_not_argmaxable_with_certificate() -> None:
    W = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [0.3, 0.3]])
    head = Head(W)
    r = is_argmaxable(head, 3)
    check_certificate(head, r)
    lam = dict(zip([p[1] for p in r.certificate.rows], r.certificate.weights))  # type: ignore[union-attr]
    recon = sum(w * W[int(k)] for k, w in lam.items())
    np.testing.assert_allclose(recon, W[3], atol=1e-9)  # u_3 = convex combination of others
    for i in range(3):
        y = is_argmaxable(head, i)
        assert y.feasible and y.witness is not None
        assert int(np.argmax(head.logits(y.witness))) == i
        assert margin_at(head, y.witness, [i]) > y.tol
        assert y.to_dict()["witness"] is not None


def test_bias_can_rescue_an_interior_label_and_radius_bounds_it() -> None:
    W = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [0.3, 0.3]])
    b = np.array([0.0, 0.0, 0.0, 1.0])
    head = Head(W, b=b)
    r = is_argmaxable(head, 3)
    assert r.feasible and int(np.argmax(head.logits(r.witness))) == 3
    no_bias = is_argmaxable(head, 3, bias=False)
    check_certificate(head, no_bias, bias=False)
    # label 0 needs a large h to beat the bias of label 3: impossible in a tiny box
    small = is_argmaxable(head, 0, radius=0.1)
    check_certificate(head, small, radius=0.1)
    big = is_argmaxable(head, 0)
    assert big.feasible and int(np.argmax(head.logits(big.witness))) == 0


def test_planted_unargmaxable_labels_are_exactly_reported() -> None:
    head, planted = planted_head()
    res = argmaxable_all(head, workers=2, n_narrowest=3, narrowest_budget=6)
    assert sorted(head.index(x) for x in res.unargmaxable) == planted
    assert res.undecided == []
    for i in range(head.n_labels):
        if res.status[i] == "yes":
            h = res.witness(i)
            assert h is not None
            assert margin_at(head, h, [i]) > res.tol, f"label {i}: witness fails"
            if res.method[i] == "fast" and i not in res.lp_results:
                # the float32 pass's margin is a proven lower bound of the float64 one
                assert margin_at(head, h, [i]) >= res.margin[i]
        else:
            check_certificate(head, res.lp_results[i])
    d = res.to_dict()
    assert d["unargmaxable"] == [head.labels[i] for i in planted]
    assert len(d["narrowest"]) == 3 and all(x["margin"] > res.tol for x in d["narrowest"])
    # the whole-vocabulary pass agrees with one exact question per label
    for i in [*planted[:3], 0, 1, 2]:
        assert is_argmaxable(head, i).status == res.status[i]


def test_whole_vocabulary_with_bias_and_radius_agrees_with_single_questions() -> None:
    rng = np.random.default_rng(3)
    W = rng.standard_normal((60, 3))
    head = Head(W, b=rng.standard_normal(60))
    for radius in (None, 1.0):
        res = argmaxable_all(head, radius=radius, workers=1, narrowest_budget=2)
        for i in range(head.n_labels):
            one = is_argmaxable(head, i, radius=radius)
            assert one.status == res.status[i], (i, radius)
            h = res.witness(i)
            if res.status[i] == "yes":
                assert h is not None and int(np.argmax(head.logits(h))) == i
                if radius is not None:
                    assert np.abs(h).max() <= radius * (1 + 1e-12)
            else:
                check_certificate(head, res.lp_results[i], radius=radius)


def test_float32_rounding_of_a_hull_row_stays_below_tolerance() -> None:
    head, planted = planted_head(V=80, d=6, n_planted=4, seed=5)
    h32 = Head(head.W.astype(np.float32))
    for p in planted:
        r = is_argmaxable(h32, p)
        assert r.status == "no" and abs(r.margin) <= r.tol


# ---------------------------------------------------------------------------------- top two
def test_a_label_between_two_others_stops_them_leading_together() -> None:
    W = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.8], [-1.0, -1.0]])
    head = Head(W)
    r = can_be_top_two(head, 0, 1)
    check_certificate(head, r)
    y = can_be_top_two(head, 0, 2)
    assert y.feasible
    z = head.logits(y.witness)[0]
    assert abs(z[0] - z[2]) <= y.tol and margin_at(head, y.witness, [0, 2]) > y.tol
    # p_0 = p_2 -> 1/2 along the witness's direction
    p = head.probs(50 * y.witness)[0]
    assert abs(p[0] - 0.5) < 1e-6 and abs(p[2] - 0.5) < 1e-6


def test_co_top_matrix_matches_pairwise_answers() -> None:
    rng = np.random.default_rng(7)
    head = Head(rng.standard_normal((40, 3)), b=rng.standard_normal(40))
    labels = [0, 3, 5, 8, 13]
    m = co_top_matrix(head, labels)
    assert (m.feasible == m.feasible.T).all() and not m.feasible.diagonal().any()
    for (a, b), r in m.results.items():
        assert r.status == can_be_top_two(head, labels[a], labels[b]).status
        if r.feasible:
            z = head.logits(r.witness)[0]
            i, j = labels[a], labels[b]
            assert abs(z[i] - z[j]) <= r.tol * max(1, np.abs(r.witness).max())
            assert margin_at(head, r.witness, [i, j]) > 0
        else:
            check_certificate(head, r)
    assert set(m.to_dict()) >= {"labels", "feasible", "margin"}


# ---------------------------------------------------------------------------------- rankings
def _brute_rankings(head: Head, n: int, seed: int) -> set[tuple[str, ...]]:
    rng = np.random.default_rng(seed)
    H = rng.standard_normal((n, head.d))
    if head.b is not None:
        H *= 10 ** rng.uniform(-2, 2, size=(n, 1))
    Z = head.logits(H)
    return {tuple(head.labels[k] for k in np.argsort(-z)) for z in Z}


@pytest.mark.parametrize("m", [4, 5])
def test_rankings_in_the_plane_have_the_known_count(m: int) -> None:
    # projections of m points onto directions of R^2: 2 * C(m, 2) orderings (generic points)
    rng = np.random.default_rng(m)
    head = Head(rng.standard_normal((m + 3, 2)))
    labels = list(range(m))
    e = enumerate_rankings(head, labels)
    assert e.n_feasible == 2 * math.comb(m, 2)
    assert e.n_feasible + e.n_infeasible == math.factorial(m) and not e.undecided
    sub = head.subset(labels)
    assert _brute_rankings(sub, 20000, seed=99) <= set(e.items)
    for r in e.feasible:
        z = sub.logits(r.witness)[0]
        order = [sub.index(x) for x in r.labels]
        assert np.all(np.diff(z[order]) < 0)
    for r in e.infeasible:
        check_certificate(sub, r)


def test_rankings_with_bias_agree_with_brute_force_and_lp_only() -> None:
    rng = np.random.default_rng(11)
    head = Head(rng.standard_normal((5, 2)), b=rng.standard_normal(5))
    e = enumerate_rankings(head, [0, 1, 2, 3, 4])
    e_lp = enumerate_rankings(head, [0, 1, 2, 3, 4], samples=0)  # every item by an LP
    assert set(e.items) == set(e_lp.items)
    assert _brute_rankings(head, 30000, seed=5) <= set(e.items)
    assert e.n_feasible + e.n_infeasible == 120
    for r in e_lp.infeasible:
        check_certificate(head, r)
    one = e.items[0]
    assert is_feasible_ranking(head, list(one)).feasible


def test_top_k_sets_agree_with_brute_force() -> None:
    rng = np.random.default_rng(2)
    head = Head(rng.standard_normal((6, 2)))
    e = enumerate_top_k_sets(head, list(range(6)), 2)
    H = np.random.default_rng(8).standard_normal((20000, 2))
    brute = {tuple(sorted(head.labels[k] for k in np.argsort(-z)[:2])) for z in head.logits(H)}
    assert brute <= {tuple(sorted(x)) for x in e.items}
    assert e.n_feasible + e.n_infeasible == math.comb(6, 2) and not e.undecided
    for r in e.infeasible:
        check_certificate(head, r)
    for r in e.feasible:
        assert margin_at(head, r.witness, head.indices(list(r.labels))) > r.tol
    assert is_top_k_set(head, list(e.items[0])).feasible


def test_sigmoid_combinations_have_the_known_count_and_match_brute_force() -> None:
    # m lines through the origin of R^2 cut it into 2m cells: 2m sign patterns
    rng = np.random.default_rng(4)
    head = Head(rng.standard_normal((5, 2)), link="sigmoid")
    e = enumerate_combinations(head, list(range(5)))
    assert e.n_feasible == 10 and e.n_feasible + e.n_infeasible == 32
    H = np.random.default_rng(1).standard_normal((20000, 2))
    brute = {tuple(("+" if x > 0 else "-") + head.labels[k] for k, x in enumerate(z))
             for z in head.logits(H)}
    assert brute <= set(e.items)
    for r in e.infeasible:
        check_certificate(head, r)
    on = [x[1:] for x in e.items[0] if x[0] == "+"]
    off = [x[1:] for x in e.items[0] if x[0] == "-"]
    r = is_feasible_combination(head, on, off)
    assert r.feasible
    z = head.logits(r.witness)[0]
    assert all(z[head.index(x)] > 0 for x in on) and all(z[head.index(x)] < 0 for x in off)


def test_sigmoid_combinations_with_bias() -> None:
    rng = np.random.default_rng(6)
    head = Head(rng.standard_normal((4, 2)), b=rng.standard_normal(4), link="sigmoid")
    e = enumerate_combinations(head, [0, 1, 2, 3], samples=0)
    H = np.random.default_rng(2).standard_normal((20000, 2)) * 3
    brute = {tuple(("+" if x > 0 else "-") + head.labels[k] for k, x in enumerate(z))
             for z in head.logits(H)}
    assert brute <= set(e.items)
    assert e.n_feasible + e.n_infeasible == 16 and not e.undecided


# ---------------------------------------------------------------------------------- invariance
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.floats(-50, 50), beta=st.floats(-5, 5))
def test_verdicts_and_margins_are_gauge_invariant(seed: int, shift: float, beta: float) -> None:
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((12, 3))
    b = rng.standard_normal(12)
    head = Head(W, b=b)
    c = shift * rng.standard_normal(3)
    moved = Head(W + c, b=b + beta)
    for i in range(4):
        a, z = is_argmaxable(head, i), is_argmaxable(moved, i)
        assert a.status == z.status
        if z.feasible:
            assert int(np.argmax(moved.logits(z.witness))) == i
    pa, pz = can_be_top_two(head, 0, 1), can_be_top_two(moved, 0, 1)
    assert pa.status == pz.status
    assert math.isclose(pa.tol, pz.tol, rel_tol=1e-9)


def test_softcap_and_logit_scale_change_no_verdict() -> None:
    rng = np.random.default_rng(9)
    W = rng.standard_normal((15, 3))
    plain = Head(W)
    capped = Head(W, softcap=5.0, logit_scale=2.0)
    for i in range(15):
        a, b = is_argmaxable(plain, i), is_argmaxable(capped, i)
        assert a.status == b.status
        if b.feasible:
            assert int(np.argmax(capped.logits(b.witness))) == i


# ---------------------------------------------------------------------------------- errors
def test_bad_input_is_one_line_error() -> None:
    head = Head(np.eye(3))
    with pytest.raises(UnembedError, match="two different labels"):
        can_be_top_two(head, 1, 1)
    with pytest.raises(UnembedError, match="radius"):
        is_argmaxable(head, 0, radius=-1.0)
    with pytest.raises(UnembedError, match="sigmoid"):
        is_feasible_combination(head, [0], [1])
    with pytest.raises(UnembedError, match="at most 8"):
        enumerate_rankings(Head(np.random.default_rng(0).standard_normal((9, 3))), range(9))
    with pytest.raises(UnembedError, match="more than once"):
        is_feasible_ranking(head, [0, 0])
    with pytest.raises(UnembedError, match="Unknown"):
        is_argmaxable(head, "nope")
    with pytest.raises(UnembedError, match="'k'"):
        enumerate_top_k_sets(head, [0, 1, 2], 3)


def test_top_ranking_and_top_k_set_over_whole_head() -> None:
    W = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.8], [-1.0, -1.0]])
    head = Head(W)
    assert is_feasible_ranking(head, [0, 1]).feasible  # others free
    r = is_feasible_ranking(head, [0, 1], top=True)  # 0 > 1 > everything else: 2 is in between
    assert r.status == "no"
    check_certificate(head, r)
    assert not is_top_k_set(head, [0, 1]).feasible
    assert is_top_k_set(head, [0, 2]).feasible
    for k in itertools.combinations(range(4), 2):
        t = is_top_k_set(head, list(k))
        if t.feasible:
            assert margin_at(head, t.witness, list(k)) > t.tol


def test_docstring_examples_run() -> None:
    import doctest

    from unembed.feasibility import questions

    res = doctest.testmod(questions, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted >= 6 and res.failed == 0


def test_row_generation_on_a_large_head_agrees_with_the_full_lp() -> None:
    """Against the LP over all 1299 competitors, formulated independently (scipy directly)."""
    from independent_lp import box_optimum

    rng = np.random.default_rng(12)
    W = rng.standard_normal((1300, 4))  # > 1024 competitors: rows are generated lazily
    W /= np.linalg.norm(W, axis=1, keepdims=True)  # on the sphere: all argmaxable ...
    for p in range(0, 1300, 260):  # ... but these, inside the hull
        W[p] = rng.dirichlet(np.ones(3)) @ W[[p + 1, p + 2, p + 3]]
    head = Head(W)
    seen = set()
    for i in range(0, 1300, 130):
        r = is_argmaxable(head, i)
        full = box_optimum(W, np.zeros(1300), [i], None, False)  # homogeneous: no bias
        assert r.status == ("yes" if full > r.tol else "no")
        seen.add(r.status)
        if r.feasible:
            assert int(np.argmax(head.logits(r.witness))) == i
        else:
            check_certificate(head, r)
            assert r.certificate is not None and len(r.certificate.rows) < 1299
    assert seen == {"yes", "no"}


def test_radius_witnesses_stay_in_the_box() -> None:
    rng = np.random.default_rng(13)
    head = Head(rng.standard_normal((30, 3)), b=5 * rng.standard_normal(30))
    for R in (0.5, 3.0):
        for a, b in [(0, 1), (2, 3), (4, 5)]:
            r = can_be_top_two(head, a, b, radius=R)
            if r.feasible:
                assert np.abs(r.witness).max() <= R * (1 + 1e-9)
        for i in range(10):
            r = is_argmaxable(head, i, radius=R)
            if r.feasible:
                assert np.abs(r.witness).max() <= R * (1 + 1e-9)
                assert int(np.argmax(head.logits(r.witness))) == i


def test_independent_rows_have_every_ranking_without_lps() -> None:
    rng = np.random.default_rng(21)
    head = Head(rng.standard_normal((6, 8)), b=rng.standard_normal(6))
    e = enumerate_rankings(head, list(range(6)), samples=0)
    assert e.n_feasible == 720 and e.lp_solves == 0
    for r in e.feasible[::37]:
        z = head.logits(r.witness)[0]
        assert np.all(np.diff(z[head.indices(list(r.labels))]) < 0)
