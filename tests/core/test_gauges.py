"""Gauges: each transformation keeps every probability (or is refused with the reason)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unembed import (
    Head,
    UnembedError,
    center,
    reparametrize,
    shift_bias,
    shift_in_null_space,
    symmetries,
    translate,
)
from unembed.equivalence import compare_heads

heads = st.builds(
    lambda V, d, bias, f32, seed: (V, d, bias, f32, seed),
    st.integers(2, 200), st.integers(2, 64), st.booleans(), st.booleans(), st.integers(0, 10**6),
)


def _make(V, d, bias, f32, seed, **kw):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((V, d))
    if f32:
        W = W.astype(np.float32)
    return Head(W, b=rng.standard_normal(V) if bias else None, **kw), rng


@settings(max_examples=40, deadline=None)
@given(heads)
def test_translation_keeps_probabilities(spec):
    h, rng = _make(*spec)
    c = rng.standard_normal(h.d) * 3
    new = translate(h, c)
    np.testing.assert_allclose(new.W - h.W, np.broadcast_to(c, h.W.shape), atol=1e-12)
    eq = compare_heads(h, new)
    assert eq.max_abs_dp <= 1e-12, eq.verdict
    assert eq.argmax_agreement == 1.0


@settings(max_examples=25, deadline=None)
@given(heads, st.floats(-50, 50))
def test_bias_shift_keeps_probabilities(spec, beta):
    h, _ = _make(*spec)
    eq = compare_heads(h, shift_bias(h, beta))
    assert eq.max_abs_dp <= 1e-12, eq.verdict


@settings(max_examples=25, deadline=None)
@given(heads)
def test_centering_any_weights_keeps_probabilities_and_zeroes_the_mean(spec):
    h, rng = _make(*spec)
    w = rng.random(h.n_labels)
    w /= w.sum()
    new = center(h, w)
    np.testing.assert_allclose(w @ new.W, 0.0, atol=1e-10)
    assert compare_heads(h, new).max_abs_dp <= 1e-12
    np.testing.assert_allclose(center(h).W.mean(axis=0), 0.0, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(heads, st.sampled_from(["softmax", "sigmoid"]))
def test_reparametrization_keeps_logits(spec, link):
    h, rng = _make(*spec, link=link, reparam=True)
    A = rng.standard_normal((h.d, h.d)) + 3 * np.eye(h.d)
    new, A_out = reparametrize(h, A)
    H = rng.standard_normal((16, h.d))
    np.testing.assert_allclose(new.logits(H @ A_out.T), h.logits(H),
                               atol=1e-9 * (1 + np.abs(h.logits(H)).max()))


def test_sigmoid_refuses_translation_with_reason():
    h, _ = _make(5, 3, True, False, 0, link="sigmoid")
    with pytest.raises(UnembedError, match="translation is not a symmetry.*sigmoid link"):
        translate(h, np.ones(3))
    with pytest.raises(UnembedError, match="bias_shift is not a symmetry"):
        shift_bias(h, 1.0)
    forced = translate(h, np.ones(3), force=True)
    assert forced.equivalent is False and "sigmoid link" in forced.not_equivalent_because
    assert compare_heads(h, forced).max_abs_dp > 1e-3


def test_softcap_refuses_translation_and_shows_why():
    h, rng = _make(6, 3, False, False, 0, softcap=1.0)
    with pytest.raises(UnembedError, match=r"soft-capped \(cap \* tanh"):
        translate(h, np.ones(3))
    forced = translate(h, rng.standard_normal(3) * 5, force=True)
    assert compare_heads(h, forced).max_abs_dp > 1e-3
    assert symmetries(h)["translation"].holds is False


def test_reparametrization_unknown_for_bare_heads():
    h, _ = _make(4, 3, False, False, 0)
    assert symmetries(h)["reparametrization"].holds is None
    with pytest.raises(UnembedError, match="reparametrization is not a symmetry"):
        reparametrize(h, np.eye(3) * 2)
    with pytest.raises(UnembedError, match="must be invertible"):
        reparametrize(h, np.zeros((3, 3)))


def test_null_space_shift_keeps_logits_on_reachable_states():
    rng = np.random.default_rng(0)
    g = rng.random(6) + 0.5
    # after LayerNorm every normalised state n has mean 0, so h = g * n is orthogonal to 1/g
    h = Head(rng.standard_normal((5, 6)), null_space=(1 / g)[:, None])
    n = rng.standard_normal((10, 6))
    n -= n.mean(1, keepdims=True)
    H = n * g
    new = shift_in_null_space(h, rng.standard_normal(5) * 4)
    np.testing.assert_allclose(new.logits(H), h.logits(H), atol=1e-12)
    assert not np.allclose(new.W, h.W)


def test_center_weights_must_sum_to_one():
    h, _ = _make(4, 3, False, False, 0)
    with pytest.raises(UnembedError, match="must sum to 1"):
        center(h, np.ones(4))
