"""The LP points' logits found through float32 (unembed.feasibility.top_logits): every label
among the k largest logits of the others, and each column's own label, carries its float64
logit; a label reported -inf is not among them. Checked against the float64 product of the
whole matrix, sorted here."""

from __future__ import annotations

import numpy as np
import pytest

from unembed import Head
from unembed.feasibility._core import make_space
from unembed.feasibility.top_logits import Rows32, logits, top_logits


def _rows(rng: np.random.Generator, V: int, d: int) -> np.ndarray:
    """Rows of norms 1e-3 to 10, and 300 rows of norm about 350 within 3e-5 of one another,
    at the top at the first point below: their logits differ by about as much as a float32
    product's rounding."""
    W = rng.standard_normal((V, d)) * np.logspace(-3, 1, V)[rng.permutation(V), None]
    base = rng.standard_normal(d)
    W[:300] = 50 * base + 3e-5 * rng.standard_normal((300, d))
    return W


@pytest.mark.parametrize("bias", [False, True])
def test_the_strongest_rivals_carry_their_float64_logits(bias):
    rng = np.random.default_rng(7)
    V, d, keep = 3000, 48, 64
    W = _rows(rng, V, d)
    b = 0.1 * rng.standard_normal(V) if bias else None
    head = Head(W, b=b, strict=False)
    sp = make_space(head, bias=bias, radius=None, rtol=None, func="test")
    H = np.column_stack([W[0] / np.linalg.norm(W[0]), rng.standard_normal(d),
                         W[1500] - W.mean(axis=0)])
    s = np.array([1.0, 0.5, 0.0])
    own = np.array([0, 7, 1500])
    rows = Rows32.of(sp.W)
    assert rows is not None
    got = top_logits(sp, rows, H, s, own, keep)
    want = W @ H + (0 if b is None else np.outer(sp.b, s))
    for c in range(H.shape[1]):
        z = want[:, c].copy()
        assert got[own[c], c] == pytest.approx(z[own[c]], rel=1e-14, abs=1e-300)
        z[own[c]] = -np.inf
        top = np.argsort(-z, kind="stable")[:keep]
        np.testing.assert_allclose(got[top, c], want[top, c], rtol=1e-14, atol=0)
        # -inf only where the label is not among the keep largest (ties at the keep-th: kept)
        out = np.flatnonzero(got[:, c] == -np.inf)
        assert (want[out, c] < z[top[-1]]).all()
        finite = np.isfinite(got[:, c])
        np.testing.assert_allclose(got[finite, c], want[finite, c], rtol=1e-14, atol=0)
    # and the float64 product itself where no float32 value is finite
    W2 = W.copy()
    W2[5] = 1e39
    sp2 = make_space(Head(W2, strict=False), bias=False, radius=None, rtol=None, func="test")
    rows2 = Rows32.of(sp2.W)
    assert rows2 is not None
    z2 = top_logits(sp2, rows2, H, s, own, keep)
    np.testing.assert_array_equal(z2, logits(sp2, H, s))


def test_float32_reorders_these_rows():
    """The near-tied rows above are ordered differently by a float32 product (else the test
    above would test nothing)."""
    rng = np.random.default_rng(7)
    W = _rows(rng, 3000, 48)
    h = W[0] / np.linalg.norm(W[0])
    z64 = W[:300] @ h
    z32 = (W[:300].astype(np.float32) @ h.astype(np.float32)).astype(np.float64)
    assert not np.array_equal(np.argsort(-z64, kind="stable")[:64],
                              np.argsort(-z32, kind="stable")[:64])
