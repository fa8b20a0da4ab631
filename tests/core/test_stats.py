"""No number without meaning: constancy up to float64 rounding, rank correlations that refuse,
and the causal view's equiangular case, decided both ways."""

from __future__ import annotations

import numpy as np
import pytest

from unembed._stats import constant_reason, rounding_tolerance, spearman
from unembed.audit import audit
from unembed.behaviour import ArrayInputs
from unembed.head import Head
from unembed.sources.base import HeadModel
from unembed.views import causal_rank, similarity_matrix


def _equiangular(G: np.ndarray) -> bool:
    """Independent check: whitened rows from an SVD of the centered rows, written out."""
    C = G - G.mean(axis=0)
    u, s, _ = np.linalg.svd(C, full_matrices=False)
    keep = s > 1e-8 * s.max()
    R = u[:, keep]  # C's range, orthonormal: the whitened rows up to a common scale
    R = R / np.linalg.norm(R, axis=1, keepdims=True)
    cos = R @ R.T
    off = cos[~np.eye(len(G), dtype=bool)]
    return bool(np.ptp(off) < 1e-9)


def test_causal_view_equiangular_exactly_when_rank_is_v_minus_1() -> None:
    rng = np.random.default_rng(0)
    V, d = 6, 10
    full = rng.normal(size=(V, d))
    # V <= d but the rows lie on a 2-dimensional affine plane: rank of C is 2 < V - 1
    low = rng.normal(size=(V, 2)) @ rng.normal(size=(2, d)) + rng.normal(size=d)
    for W, want in ((full, True), (low, False)):
        h = Head(W)
        S = similarity_matrix(h, None, "causal")
        off = S[~np.eye(V, dtype=bool)]
        assert _equiangular(W) is want
        assert (causal_rank(h) == V - 1) is want
        if want:
            np.testing.assert_allclose(off, -1 / (V - 1), atol=1e-12)
        else:
            assert np.ptp(off) > 0.1
    # and the audit: undefined for the full-rank head, a statistic for the low-rank one
    x = rng.normal(size=(300, d))
    for W, undefined in ((full, True), (low, False)):
        res = audit(_Identity(Head(W * 0.5)), ArrayInputs(x), progress=False, likely=0.05)
        assert ("causal" in res.undefined_views) is undefined
        rs = [r for r in res.correlations if r.view == "causal"]
        assert all((r.rho is None) is undefined for r in rs)


class _Identity(HeadModel):
    kind = "test"

    def __init__(self, head: Head) -> None:
        self.head = head

    def hidden_states(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)


def test_constant_reason_scales_with_rounding() -> None:
    x = np.full(45, -1 / 9)
    noisy = x + np.random.default_rng(0).normal(size=45) * 1e-15
    assert constant_reason(noisy, what="c", terms=64, scale=1.0) is not None
    assert constant_reason(noisy, what="c", terms=1, scale=1.0) is None  # 1e-15 > 16 eps
    assert constant_reason(x + np.linspace(0, 1e-6, 45), what="c", terms=64, scale=1.0) is None
    # relative to the quantity's own size when no scale is given
    tiny = np.linspace(1e-30, 2e-30, 10)
    assert constant_reason(tiny, what="m") is None
    assert rounding_tolerance(tiny) == pytest.approx(16 * np.finfo(float).eps * 2e-30)
    assert "no finite value" in (constant_reason(np.full(3, np.nan), what="m") or "")


def test_spearman_refuses_short_and_constant() -> None:
    a = np.arange(10.0)
    assert spearman(a, a**3, what_x="x", what_y="y").rho == pytest.approx(1.0)
    st = spearman(a[:2], a[:2], what_x="x", what_y="y")
    assert st.rho is None and st.p_value is None and "2 pairs" in (st.reason or "")
    st = spearman(a, np.full(10, 0.3), what_x="x", what_y="the measure y")
    assert st.rho is None and "the measure y is constant" in (st.reason or "")
    # NaN pairs are left out before counting
    b = a.copy()
    b[3:] = np.nan
    assert spearman(a, b, what_x="x", what_y="y").n_pairs == 3
