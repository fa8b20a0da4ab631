"""Head: validation, label lookup, logits and probabilities in float64."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unembed import Head, UnembedError


def _head(V=6, d=4, bias=True, seed=0, **kw):
    rng = np.random.default_rng(seed)
    return Head(rng.standard_normal((V, d)), b=rng.standard_normal(V) if bias else None, **kw)


def test_logits_probs_match_direct_computation():
    h = _head(labels=list("abcdef"))
    H = np.random.default_rng(1).standard_normal((7, 4))
    z = H @ h.W.T + h.b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(h.logits(H), z, rtol=0, atol=1e-12)
    np.testing.assert_allclose(h.probs(H), p, rtol=0, atol=1e-15)
    np.testing.assert_allclose(h.probs(H).sum(1), 1.0, atol=1e-14)
    assert h.logits(H[0]).shape == (1, 6)


def test_sigmoid_and_softcap_and_scale():
    h = _head(link="sigmoid")
    H = np.random.default_rng(2).standard_normal((5, 4))
    z = H @ h.W.T + h.b
    np.testing.assert_allclose(h.probs(H), 1 / (1 + np.exp(-z)), atol=1e-15)
    capped = _head(softcap=2.0, logit_scale=3.0)
    np.testing.assert_allclose(capped.logits(H), 2.0 * np.tanh(3.0 * z / 2.0), atol=1e-12)


def test_weights_are_float64_and_frozen_and_dtype_recorded():
    h = Head(np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32))
    assert h.W.dtype == np.float64 and h.dtype == "float32"
    with pytest.raises(ValueError):
        h.W[0, 0] = 1.0


def test_label_lookup():
    h = _head(labels=["cat", "dog", "car", "cart", "x", "y"])
    assert h.index("dog") == 1 and h.index(2) == 2 and h.index("#3") == 3
    with pytest.raises(UnembedError, match=r"Unknown label 'dgo'.*Did you mean 'dog'"):
        h.index("dgo")
    with pytest.raises(UnembedError, match="index 9 is out of range"):
        h.index(9)


@pytest.mark.parametrize(
    ("W", "kw", "msg"),
    [
        (np.array([[1.0, np.nan], [0.0, 1.0]]), {}, "contains NaN or Inf"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), {}, "contains NaN or Inf"),
        (np.array([[0.0, 0.0], [0.0, 1.0]]), {}, "all-zero row"),
        (np.array([[1.0, 2.0], [1.0, 2.0], [0.0, 1.0]]), {}, "identical rows for labels '0' and '1'"),
        (np.ones((3,)), {}, r"shape \(n_labels, d\)"),
        (np.ones((1, 3)), {}, "at least 2 label rows"),
        (np.eye(3), {"labels": ["a", "a", "b"]}, "'a' appears more than once"),
        (np.eye(3), {"labels": ["a", "b"]}, "must have 3 entries"),
        (np.eye(3), {"b": np.ones(2)}, r"The 'b' must have shape \(3,\)"),
        (np.eye(3), {"link": "relu"}, "'softmax' or 'sigmoid'"),
        (np.eye(3), {"softcap": -1.0}, "positive number"),
        (np.eye(3, dtype=int), {}, "floating-point"),
    ],
)
def test_bad_input_messages(W, kw, msg):
    with pytest.raises(UnembedError, match=msg):
        Head(W, **kw)


def test_non_strict_accepts_degenerate_rows():
    h = Head(np.array([[0.0, 0.0], [1.0, 2.0], [1.0, 2.0]]), strict=False)
    assert h.degenerate == {"zero_rows": ["0"], "identical_rows": [["1", "2"]]}


def test_subset_keeps_rows_and_bias():
    h = _head(labels=list("abcdef"))
    s = h.subset(["d", "a"])
    assert s.labels == ("d", "a")
    np.testing.assert_array_equal(s.W, h.W[[3, 0]])
    np.testing.assert_array_equal(s.b, h.b[[3, 0]])


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 40), st.integers(1, 16), st.integers(0, 10**6))
def test_log_probs_are_normalised(V, d, seed):
    rng = np.random.default_rng(seed)
    h = Head(rng.standard_normal((V, d)) * 10, b=rng.standard_normal(V), strict=False)
    lp = h.log_probs(rng.standard_normal((3, d)) * 10)
    assert np.all(np.isfinite(lp))
    np.testing.assert_allclose(np.exp(lp).sum(1), 1.0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 30), st.integers(1, 5), st.integers(0, 10**6), st.booleans())
def test_identical_rows_found_exactly(V, d, seed, plant):
    from unembed._checks import MatrixScan
    from unembed.row_stats import first_pass, identical_rows
    from unembed.rows import InMemory

    rng = np.random.default_rng(seed)
    W = rng.integers(-1, 2, size=(V, d)).astype(float)  # small alphabet: many ties and repeats
    if plant:
        W[V - 1] = W[0]
    pairs = {(i, j) for i in range(V) for j in range(i + 1, V) if np.array_equal(W[i], W[j])}
    rows = InMemory(W)
    found = identical_rows(rows, first_pass(rows, MatrixScan("W", allow_zero_rows=True)).keys)
    assert (found is None) == (not pairs)
    if found is not None:
        assert found in pairs
