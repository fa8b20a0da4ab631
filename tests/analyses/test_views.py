"""Views: which are translation-invariant, and the documented special cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unembed import Head, UnembedError, translate
from unembed.moments import HiddenMoments
from unembed.views import (
    TRANSLATION_INVARIANT,
    VIEWS,
    causal_rank,
    cosine,
    difference_cosine,
    similarity_matrix,
)


@settings(max_examples=30, deadline=None)
@given(st.integers(3, 60), st.integers(2, 24), st.integers(0, 10**6), st.floats(0.1, 20))
def test_invariant_views_do_not_move_under_translation(V, d, seed, scale):
    rng = np.random.default_rng(seed)
    h = Head(rng.standard_normal((V, d)))
    moved = translate(h, rng.standard_normal(d) * scale)
    labels = list(range(min(V, 8)))
    data = HiddenMoments.from_states(rng.standard_normal((50, d)), source="random")
    for view in TRANSLATION_INVARIANT:
        a = similarity_matrix(h, labels, view, data=data)
        b = similarity_matrix(moved, labels, view, data=data)
        np.testing.assert_allclose(a, b, atol=1e-7, err_msg=view)


def test_raw_view_moves_under_translation():
    rng = np.random.default_rng(0)
    h = Head(rng.standard_normal((10, 5)))
    assert abs(cosine(h, 0, 1, "raw") - cosine(translate(h, np.full(5, 7.0)), 0, 1, "raw")) > 0.1


def test_matrix_agrees_with_pairwise_cosine_and_is_symmetric():
    rng = np.random.default_rng(1)
    h = Head(rng.standard_normal((12, 6)), labels=[f"l{i}" for i in range(12)])
    for view in VIEWS:
        S = similarity_matrix(h, None, view, reference="all")
        np.testing.assert_allclose(S, S.T, atol=1e-15)
        assert np.all(np.diag(S) == 1.0)
        assert abs(S[2, 7] - cosine(h, "l2", "l7", view)) < 1e-12, view


def test_centered_view_depends_on_weights():
    rng = np.random.default_rng(2)
    h = Head(rng.standard_normal((6, 4)))
    w = np.array([0.5, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert abs(cosine(h, 0, 1, "centered") - cosine(h, 0, 1, "centered", weights=w)) > 1e-3


def test_causal_view_is_equiangular_when_V_le_d():
    rng = np.random.default_rng(3)
    h = Head(rng.standard_normal((5, 9)))
    assert causal_rank(h) == 4
    S = similarity_matrix(h, None, "causal")
    off = S[~np.eye(5, dtype=bool)]
    np.testing.assert_allclose(off, -1 / 4, atol=1e-10)


def test_causal_view_whitens_the_rows():
    rng = np.random.default_rng(4)
    W = rng.standard_normal((200, 6)) @ np.diag([10, 5, 1, 1, 0.5, 0.1])
    h = Head(W)
    from unembed.views import view_rows

    G = view_rows(h, "causal")
    np.testing.assert_allclose(G.T @ G / 200, np.eye(6), atol=1e-10)


def test_differences_view_sees_a_label_in_between():
    # label 2 sits between 0 and 1 on a line: they can never both beat it.
    W = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 0.0], [0.0, 3.0]])
    h = Head(W, strict=False)
    assert cosine(h, 0, 1, "differences") == pytest.approx(-1.0)
    assert difference_cosine(h, (0, 2), (1, 2)) == pytest.approx(-1.0)


def test_unknown_view_message():
    h = Head(np.eye(3))
    with pytest.raises(UnembedError, match="'view' argument of cosine must be one of raw"):
        cosine(h, 0, 1, "angular")


def test_cosine_and_neighbours_default_to_the_centered_view():
    from unembed.neighbours import neighbours

    rng = np.random.default_rng(4)
    W = rng.standard_normal((7, 5))
    h = Head(W, labels=[f"l{i}" for i in range(7)])
    C = W - W.mean(axis=0)  # independent: rows less their mean
    want = C[1] @ C[4] / (np.linalg.norm(C[1]) * np.linalg.norm(C[4]))
    moved = translate(h, np.full(5, 9.0))
    assert cosine(h, 1, 4) == pytest.approx(want, abs=1e-12)
    assert cosine(moved, 1, 4) == pytest.approx(want, abs=1e-12)
    U = C / np.linalg.norm(C, axis=1, keepdims=True)
    sims = U @ U[1]
    sims[1] = -np.inf
    assert neighbours(h, ["l1"], k=1)["l1"][0].label == f"l{int(np.argmax(sims))}"
