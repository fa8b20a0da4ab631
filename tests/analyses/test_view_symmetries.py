"""Every view's invariance claim, checked both ways against every symmetry of the head.

For a head whose symmetries all hold (softmax, a known null space, a reparametrisable trunk),
each symmetry in ``symmetries(head)`` is applied for real; the transformed head is first shown
to keep every probability (so it is a symmetry), then each view's cosines are compared: equal
where ``invariance(head, view)`` claims invariance, and shown to move where it does not.
"""

from __future__ import annotations

import numpy as np
import pytest

from unembed import Head
from unembed.equivalence import compare_heads
from unembed.gauges import reparametrize, shift_bias, shift_in_null_space, symmetries, translate
from unembed.moments import HiddenMoments
from unembed.views import (
    ALL_VIEWS,
    INVARIANT_UNDER,
    difference_cosine,
    invariance,
    similarity_matrix,
)


def _head(V: int, d: int, seed: int) -> Head:
    rng = np.random.default_rng(seed)
    g = rng.uniform(0.5, 2.0, d)
    N = (1.0 / g)[:, None]  # LayerNorm with gain g: every h is orthogonal to 1/g
    return Head(rng.standard_normal((V, d)) + 0.7, b=rng.standard_normal(V), reparam=True,
                null_space=N, null_space_reason="LayerNorm")


def _apply(head: Head, name: str, rng: np.random.Generator) -> tuple[Head, np.ndarray | None]:
    if name == "translation":
        return translate(head, 3 * rng.standard_normal(head.d)), None
    if name == "bias_shift":
        return shift_bias(head, 2.5), None
    if name == "reparametrization":
        A = np.eye(head.d) + 0.6 * rng.standard_normal((head.d, head.d))
        new, A = reparametrize(head, A)
        return new, A
    if name == "null_space":
        return shift_in_null_space(head, 4 * rng.standard_normal((head.n_labels, 1))), None
    raise AssertionError(name)


@pytest.mark.parametrize("V,d", [(30, 6), (5, 12)])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_view_claim_holds_both_ways(V, d, seed):
    head = _head(V, d, seed)
    rng = np.random.default_rng(seed + 100)
    syms = symmetries(head)
    assert all(s.holds for s in syms.values())
    labels = list(range(min(V, 8)))
    # hidden states the model can reach: orthogonal to the null space
    H = rng.standard_normal((64, d))
    H -= (H @ head.null_space) @ head.null_space.T
    for name in syms:
        new, A = _apply(head, name, rng)
        eq = compare_heads(head, new, H, h2=None if A is None else H @ A.T)
        assert eq.max_abs_dp < 1e-12, f"{name} is not a symmetry here: {eq.verdict}"
        # the logit view's data: the same inputs' hidden states, for each model
        data = HiddenMoments.from_states(H, source="H")
        data_new = HiddenMoments.from_states(H if A is None else H @ A.T, source="H")
        for view in ALL_VIEWS:
            if view == "causal" and V <= d:
                continue  # equiangular whatever the head: nothing to move (tested elsewhere)
            a = similarity_matrix(head, labels, view, data=data)
            b = similarity_matrix(new, labels, view, data=data_new)
            moved = float(np.nanmax(np.abs(a - b)))
            if name in invariance(head, view).invariant_under:
                assert moved < 1e-7, f"{view} moved by {moved:.3g} under {name}"
            else:
                assert name in invariance(head, view).not_invariant_under
                assert moved > 1e-3, f"{view} claimed to move under {name}, moved {moved:.3g}"


def test_soft_capped_head_says_no_symmetry_stands_behind_centering():
    rng = np.random.default_rng(3)
    capped = Head(rng.standard_normal((6, 3)), softcap=30.0)
    for view in ALL_VIEWS:
        inv = invariance(capped, view)
        assert "translation" not in inv.invariant_under
        if view == "raw":
            assert inv.note is None
        else:
            assert inv.note is not None and "soft-capped" in inv.note
    assert set(INVARIANT_UNDER) == set(ALL_VIEWS)


def test_rows_are_identified_before_any_view():
    """A null-space shift (no logit changes) leaves every non-raw view unchanged; the centered
    view equals the centered cosine of rows projected off the null space, computed directly."""
    head = _head(12, 5, 7)
    N = head.null_space
    P = np.eye(5) - N @ N.T
    C = (head.W - head.W.mean(axis=0)) @ P
    U = C / np.linalg.norm(C, axis=1, keepdims=True)
    np.testing.assert_allclose(similarity_matrix(head, None, "centered"), U @ U.T, atol=1e-12)


def test_difference_cosine_under_each_row_view_is_translation_invariant():
    head = _head(10, 4, 2)
    moved = translate(head, np.array([5.0, -3.0, 1.0, 2.0]))
    data = HiddenMoments.from_states(np.random.default_rng(4).standard_normal((40, 4)))
    for view in ("raw", "centered", "normalized", "causal", "logit"):
        a = difference_cosine(head, (0, 1), (2, 3), view, data=data)
        b = difference_cosine(moved, (0, 1), (2, 3), view, data=data)
        assert abs(a - b) < 1e-9, view
    # under the causal view it is Park et al.'s whitened concept-direction cosine
    C = head.W - head.W.mean(axis=0)
    N = head.null_space
    C = C - (C @ N) @ N.T
    ev, vec = np.linalg.eigh(C.T @ C / 10)
    keep = ev > 1e-10 * ev.max()
    Wh = C @ vec[:, keep] / np.sqrt(ev[keep])
    x, y = Wh[0] - Wh[1], Wh[2] - Wh[3]
    want = x @ y / np.linalg.norm(x) / np.linalg.norm(y)
    assert abs(difference_cosine(head, (0, 1), (2, 3), "causal") - want) < 1e-9
