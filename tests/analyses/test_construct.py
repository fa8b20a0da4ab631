"""Equivalent heads with chosen cosines: targets reached exactly, probabilities unchanged."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from unembed import Head, UnembedError
from unembed.construct import (
    translation_for_all_pairs,
    translation_for_cosine,
    translation_for_cosines,
)
from unembed.equivalence import compare_heads, random_hidden

targets = st.one_of(st.sampled_from([-1.0, 1.0, 0.0, -0.999999, 0.999999]), st.floats(-1, 1))


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 300), st.integers(2, 64), st.booleans(), st.booleans(),
       st.integers(0, 10**6), targets)
def test_every_target_is_reached_and_probabilities_agree(V, d, bias, f32, seed, target):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((V, d)) * rng.uniform(0.1, 10)
    if f32:
        W = W.astype(np.float32)
    h = Head(W, b=rng.standard_normal(V) if bias else None)
    i, j = rng.choice(V, 2, replace=False)
    res = translation_for_cosine(h, int(i), int(j), target)
    u, v = res.head.W[i], res.head.W[j]
    recomputed = u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
    assert abs(recomputed - target) <= 1e-9
    assert res.reached
    # Check independently of the construction's own report, on fresh hidden states.
    eq = compare_heads(h, res.head, random_hidden(h, 128, seed=seed + 1))
    assert eq.max_abs_dp <= 1e-12, eq.verdict
    np.testing.assert_allclose(res.head.W - h.W, np.broadcast_to(res.c, h.W.shape), atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10**6), st.floats(-0.99, 0.99))
def test_least_norm_beats_the_plain_closed_form(seed, target):
    rng = np.random.default_rng(seed)
    h = Head(rng.standard_normal((5, 6)))
    ui, uj = h.W[0], h.W[1]
    delta = ui - uj
    e = rng.standard_normal(6)
    e -= (e @ delta) / (delta @ delta) * delta
    e /= np.linalg.norm(e)
    t = np.linalg.norm(delta) / 2 * np.sqrt((1 + target) / (1 - target))
    plain = 0.5 * delta + t * e - ui
    res = translation_for_cosine(h, 0, 1, target)
    assume(res.method.startswith("least-norm translation (closed"))
    assert np.linalg.norm(res.c) <= np.linalg.norm(plain) + 1e-9


def test_minus_one_uses_the_least_norm_translation_when_it_exists():
    h = Head(np.array([[1.0, 1.0], [-1.0, 1.0], [0.0, 3.0]]))
    res = translation_for_cosine(h, 0, 1, -1.0)
    np.testing.assert_allclose(res.c, [0.0, -1.0], atol=1e-12)  # the rows become (1,0), (-1,0)


@pytest.mark.parametrize(
    ("kw", "W", "args", "msg"),
    [
        ({}, np.array([[1.0, 2.0], [1.0, 2.0], [0.0, 1.0]]), (0, 1, 0.5), "identical rows"),
        ({}, np.array([[1.0], [2.0], [3.0]]), (0, 1, 0.5), "needs d >= 2"),
        ({}, np.eye(3), (0, 1, 1.5), r"'target' argument of translation_for_cosine must be in "
                                     r"\[-1, 1\]. Got 1.5 instead"),
        ({"link": "sigmoid"}, np.eye(3), (0, 1, 0.5), "sigmoid link"),
        ({"softcap": 30.0}, np.eye(3), (0, 1, 0.5), "soft-capped"),
        ({}, np.eye(3), (0, 0, 0.5), "two different labels"),
        ({}, np.eye(3), (0, "zebra", 0.5), r"Unknown label 'zebra' \(argument b\): not among"),
    ],
)
def test_errors(kw, W, args, msg):
    h = Head(W, strict=False, **kw)
    with pytest.raises(UnembedError, match=msg):
        translation_for_cosine(h, *args)


def test_d1_heads_still_reach_plus_and_minus_one():
    h = Head(np.array([[1.0], [2.0], [3.0]]))
    assert translation_for_cosine(h, 0, 1, -1.0).cosine_after == pytest.approx(-1.0)
    assert translation_for_cosine(h, 0, 1, 1.0).cosine_after == pytest.approx(1.0)


@settings(max_examples=20, deadline=None)
@given(st.integers(2, 300), st.integers(2, 32), st.integers(0, 10**6),
       st.sampled_from([1e-1, 1e-3, 1e-6]))
def test_all_pairs_above_one_minus_eps(V, d, seed, eps):
    rng = np.random.default_rng(seed)
    h = Head(rng.standard_normal((V, d)), b=rng.standard_normal(V))
    res = translation_for_all_pairs(h, eps)
    U = res.head.W / np.linalg.norm(res.head.W, axis=1, keepdims=True)
    S = U @ U.T
    assert S.min() >= 1 - eps - 1e-12
    assert S.min() >= res.min_cosine_bound - 1e-12
    assert res.equivalence.max_abs_dp <= 1e-10, res.equivalence.verdict


def test_several_pairs_reached_where_possible_and_reported_honestly():
    rng = np.random.default_rng(0)
    h = Head(rng.standard_normal((8, 6)))
    # Two targets that one translation can meet (cosines of pairs sharing nothing, mild values).
    res = translation_for_cosines(h, {(0, 1): 0.2, (2, 3): -0.3})
    assert res.max_error < 1e-8
    for p in res.pairs:
        i, j = (h.index(x) for x in p.labels)
        u, v = res.head.W[i], res.head.W[j]
        assert abs(u @ v / np.linalg.norm(u) / np.linalg.norm(v) - p.cosine_after) < 1e-12
        assert p.reached == (abs(p.cosine_after - p.target) <= 1e-9)
    assert res.equivalence is not None and res.equivalence.max_abs_dp <= 1e-12
    # Three labels pairwise at -1 is impossible in any geometry: reported, never claimed.
    bad = translation_for_cosines(h, {(0, 1): -1.0, (1, 2): -1.0, (0, 2): -1.0}, restarts=2)
    assert bad.max_error > 0.4
    assert all(p.cosine_after > -0.51 for p in bad.pairs)
    assert not all(p.reached for p in bad.pairs)


def test_several_pairs_with_reparametrization():
    rng = np.random.default_rng(1)
    h = Head(rng.standard_normal((6, 4)), reparam=True)
    res = translation_for_cosines(h, {(0, 1): 0.9, (2, 3): 0.9, (0, 2): -0.5},
                                  reparametrize=True, restarts=2, maxiter=400)
    assert res.A is not None
    assert res.max_error < 1e-4
    assert res.equivalence is not None and res.equivalence.max_abs_dp < 1e-9
    with pytest.raises(UnembedError, match="reparametrization is not known"):
        translation_for_cosines(Head(h.W), {(0, 1): 0.5}, reparametrize=True)
