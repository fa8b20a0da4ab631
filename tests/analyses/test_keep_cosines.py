"""Same cosines, different behaviour: every construction is checked by an independent LP (the
box LP of tests/independent_lp.py), raw cosines recomputed here in float64, and
sigmoid sign patterns compared across rotations and rescalings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from independent_lp import unit_optimum
from unembed import Head, UnembedError
from unembed.feasibility import enumerate_combinations
from unembed.keep_cosines import not_top_two_keeping_cosines, unargmaxable_keeping_cosines


def cosines(W: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(W, axis=1)
    return (W @ W.T) / np.outer(n, n)


def cone_head(seed: int, bias: bool) -> tuple[Head, int]:
    """Rows on a shifted sphere plus one row = a positive (not convex) combination of three
    others: in their cone, outside their hull, so argmaxable until rescaled."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((12, 4)) + 2.0
    W[0] = 1.7 * (rng.dirichlet(np.ones(3)) @ W[1:4])
    b = 0.01 * rng.standard_normal(12) if bias else None
    if b is not None:
        b[0] = b[1:4].min() - 0.01  # a bias the combination can absorb
    return Head(W, b=b), 0


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_label_made_unargmaxable_with_the_same_cosines(seed: int, bias: bool) -> None:
    head, i = cone_head(seed, bias)
    # the construction makes the label argmaxable almost always, not always (seed 558377:
    # inside the hull of the other random rows): the independent LP says which
    assume(unit_optimum(head.W, head.bias, [i], False) > 1e-3)
    r = unargmaxable_keeping_cosines(head, i)
    assert np.abs(cosines(r.head.W) - cosines(head.W)).max() <= 1e-12
    assert np.all(r.scales > 0) and np.array_equal(r.head.bias, head.bias)
    assert r.before.status == "yes" and r.after.status == "no" and r.changed
    # the independent LP: clearly argmaxable before, not after
    assert unit_optimum(head.W, head.bias, [i], False) > r.before.tol
    assert unit_optimum(r.head.W, r.head.bias, [i], False) <= r.after.tol * (1 + 1e-6)
    # the combination it names is exact: a_i u_i = sum mu_k u_k, weights convex
    mu = np.array(list(r.weights.values()))
    rows = r.head.W[r.head.indices(list(r.weights))]
    assert np.isclose(mu.sum(), 1.0) and np.allclose(mu @ rows, r.head.W[i], atol=1e-8)


def test_outside_the_cone_is_impossible_and_says_why() -> None:
    W = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [3.0, -0.5]])
    head = Head(W[[0, 1, 3]])  # (3, -0.5) is outside the cone of (1, 0), (0, 1)
    with pytest.raises(UnembedError, match="outside the cone"):
        unargmaxable_keeping_cosines(head, 2)


def test_a_bias_that_lifts_the_label_is_named() -> None:
    W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    head = Head(W, b=np.array([0.0, 0.0, 5.0]))
    with pytest.raises(UnembedError, match="bias keeps"):
        unargmaxable_keeping_cosines(head, 2)


def test_pair_made_unable_to_lead_together_with_the_same_cosines() -> None:
    """Row 2 = u_0 + u_1 lies beyond the segment of rows 0 and 1 (they can lead together
    where their logits are negative); doubling both puts it at their midpoint."""
    rng = np.random.default_rng(4)
    W = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, -1.0, -1.0]])
    Q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    head = Head(3.0 * W @ Q)
    r = not_top_two_keeping_cosines(head, 0, 1)
    assert np.abs(cosines(r.head.W) - cosines(head.W)).max() <= 1e-12
    assert r.before.status == "yes" and r.after.status == "no"
    assert unit_optimum(head.W, head.bias, [0, 1], True) > r.before.tol
    assert unit_optimum(r.head.W, r.head.bias, [0, 1], True) <= r.after.tol * (1 + 1e-6)


def test_pair_construction_says_when_it_is_impossible() -> None:
    W = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, -1.0, -1.0]])
    with pytest.raises(UnembedError, match="Impossible"):
        not_top_two_keeping_cosines(Head(W, b=np.ones(4)), 0, 1)
    with pytest.raises(UnembedError, match="Impossible"):
        not_top_two_keeping_cosines(Head(W), 0, 1)  # the others' hull misses the plane


@pytest.mark.parametrize("b2", [0.5, 0.05, -0.05])
def test_pair_made_unable_to_lead_together_with_a_bias_kept(b2: float) -> None:
    """Row 2 = u_0 + u_1 again, now with a bias: on the tie z_0 = z_1 = t, the combination
    z_2 = alpha z_0' + beta z_1' + ... carries b_2 - x b_0 - (1 - x) b_1, which must be >= 0;
    the LPs before and after are checked by the independent box LP."""
    rng = np.random.default_rng(4)
    W = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, -1.0, -1.0]])
    Q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    b = np.array([0.1, -0.2, b2, 0.3])
    head = Head(3.0 * W @ Q, b=b)
    assert unit_optimum(head.W, b, [0, 1], True) > 1e-3  # they lead together before
    r = not_top_two_keeping_cosines(head, 0, 1)
    assert np.abs(cosines(r.head.W) - cosines(head.W)).max() <= 1e-12
    assert np.array_equal(r.head.bias, b) and np.all(r.scales > 0)
    assert r.before.status == "yes" and r.after.status == "no"
    assert r.after.certificate is not None and r.after.certificate.bound <= r.after.tol
    assert unit_optimum(r.head.W, b, [0, 1], True) <= r.after.tol * (1 + 1e-6)
    assert r.weights["bias_slack"] >= 0


def test_pair_with_a_bias_that_holds_the_tie_up_is_impossible() -> None:
    """The only combination on the plane of rows 0 and 1 is row 2 (= u_0 + u_1), whose bias
    is too low whatever the factors: s = b_2 - x b_0 - (1 - x) b_1 < 0 for every x in (0, 1)."""
    W = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, -1.0, -1.0]])
    head = Head(W, b=np.array([0.0, 0.0, -1.0, 0.0]))
    with pytest.raises(UnembedError, match="Impossible by rescaling these two rows with the "
                                           "bias kept"):
        not_top_two_keeping_cosines(head, 0, 1)


# ---------------------------------------------------------------------------------- sigmoid
def patterns(head: Head) -> set[tuple[str, ...]]:
    e = enumerate_combinations(head, list(range(head.n_labels)), samples=500)
    assert not e.undecided
    return set(e.items)


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_sigmoid_patterns_are_fixed_by_the_gram_matrix_and_bias(seed: int, bias: bool) -> None:
    """A rotation keeps the Gram matrix (cosines and norms): the feasible on/off patterns are
    the same, and each witness, rotated, realises its pattern on the rotated head."""
    rng = np.random.default_rng(seed)
    V, d = 5, 3
    W = rng.standard_normal((V, d))
    b = rng.standard_normal(V) if bias else None
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    head = Head(W, b=b, link="sigmoid")
    rot = Head(W @ Q, b=b, link="sigmoid")
    assert np.allclose(rot.W @ rot.W.T, head.W @ head.W.T)
    assert patterns(head) == patterns(rot)
    for r in enumerate_combinations(head, list(range(V)), samples=200).feasible:
        z = rot.W @ (Q.T @ r.witness) + rot.bias
        want = np.array([s.startswith("+") for s in r.labels])
        assert np.array_equal(z > 0, want)


def test_sigmoid_rescaling_keeps_patterns_without_bias_but_not_with_one() -> None:
    """Without a bias positive factors keep every sign of u_k . h: the cosines decide. With a
    bias the norms matter too: rows along one direction with thresholds -b_k / |u_k| reorder."""
    rng = np.random.default_rng(2)
    W = rng.standard_normal((5, 3))
    a = np.exp(rng.standard_normal(5))
    assert patterns(Head(W, link="sigmoid")) == patterns(Head(W * a[:, None], link="sigmoid"))
    U = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])  # every cosine 1
    b = -np.ones(3)
    before = patterns(Head(U, b=b, link="sigmoid"))
    after = patterns(Head(U * np.array([4.0, 1.0, 1.0])[:, None], b=b, link="sigmoid"))
    assert np.allclose(cosines(U * np.array([4.0, 1.0, 1.0])[:, None]), cosines(U))
    assert before != after and ("+0", "-1", "-2") in after
