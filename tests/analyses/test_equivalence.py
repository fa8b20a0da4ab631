"""Equivalence figures against direct computation, and the dtype-following tolerance."""

import numpy as np
import pytest

from unembed import Head, UnembedError
from unembed.equivalence import TOLERANCE, compare_heads, compare_logits


def test_figures_match_direct_computation():
    rng = np.random.default_rng(0)
    z1 = rng.standard_normal((50, 7))
    z2 = z1 + rng.standard_normal((50, 7)) * 0.1
    eq = compare_logits(z1, z2)
    p = np.exp(z1) / np.exp(z1).sum(1, keepdims=True)
    q = np.exp(z2) / np.exp(z2).sum(1, keepdims=True)
    assert eq.max_abs_dp == pytest.approx(np.abs(p - q).max(), abs=1e-15)
    assert eq.max_abs_dlogp == pytest.approx(np.abs(np.log(p) - np.log(q)).max(), abs=1e-12)
    assert eq.mean_kl == pytest.approx(np.mean(np.sum(p * np.log(p / q), 1)), abs=1e-12)
    assert eq.argmax_agreement == np.mean(z1.argmax(1) == z2.argmax(1))
    assert not eq.equivalent and "NOT EQUIVALENT" in eq.verdict


def test_uniform_shift_is_equivalent_for_softmax_not_sigmoid():
    z = np.random.default_rng(1).standard_normal((20, 5))
    assert compare_logits(z, z + 3.0).equivalent
    sig = compare_logits(z, z + 3.0, "sigmoid")
    assert not sig.equivalent and sig.mean_kl > 0


def test_tolerance_follows_the_coarsest_dtype():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((10, 4))
    h64 = Head(W)
    h32 = Head((W + 1.0).astype(np.float32))
    eq = compare_heads(h64, h32)
    assert eq.dtype == "float32" and eq.tolerance == TOLERANCE["float32"]
    assert eq.equivalent


def test_shape_mismatch_is_an_error():
    with pytest.raises(UnembedError, match="same shape"):
        compare_logits(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(UnembedError, match="10 and 11 labels"):
        compare_heads(Head(np.eye(10)), Head(np.eye(11)))


def test_chunked_comparison_equals_one_pass():
    rng = np.random.default_rng(3)
    h1 = Head(rng.standard_normal((9, 4)))
    h2 = Head(h1.W + rng.standard_normal((9, 4)) * 1e-3)
    H = rng.standard_normal((300, 4))
    whole = compare_logits(h1.logits(H), h2.logits(H))
    from unembed.equivalence import merge_equivalences

    parts = merge_equivalences([compare_logits(h1.logits(H[a:a + 70]), h2.logits(H[a:a + 70]))
                                for a in range(0, 300, 70)])
    assert parts.max_abs_dp == whole.max_abs_dp and parts.n_inputs == 300
    assert parts.mean_kl == pytest.approx(whole.mean_kl, rel=1e-12)
    assert parts.argmax_agreement == pytest.approx(whole.argmax_agreement, rel=1e-12)


def test_several_heads_in_one_pass_equal_one_call_each():
    from unembed.equivalence import StoredRows, compare_head_rows, compare_head_rows_many

    rng = np.random.default_rng(4)
    W = rng.standard_normal((9, 5))
    head = Head(W, b=rng.standard_normal(9))
    shifted = W + rng.standard_normal(5)
    other = W.copy()
    other[2] += 0.3
    H = rng.standard_normal((40, 5))
    both = compare_head_rows_many(head, [StoredRows(lambda s, e: shifted[s:e], "float64"),
                                         StoredRows(lambda s, e: other[s:e].astype(np.float32),
                                                    "float32")], H)
    assert both[0] == compare_head_rows(head, lambda s, e: shifted[s:e], "float64", H)
    assert both[1] == compare_head_rows(head, lambda s, e: other[s:e].astype(np.float32),
                                        "float32", H)
    # and against the plain comparison of the full logits
    assert both[1] == compare_logits(H @ W.T + head.b, H @ other.astype(np.float32).T.astype(
        np.float64) + head.b, dtype="float32", tolerance=both[1].tolerance)
    assert both[0].equivalent and not both[1].equivalent
