"""The streaming kernels against direct float64 computations: the blocked top-k (every branch:
small V, the striped candidates with a tail, ties across stripes) and the torch kernel (run on
the CPU here; the same code runs on an accelerator) against the numpy one."""

from __future__ import annotations

import numpy as np
import pytest

from unembed.accumulators import LabelTally
from unembed.head import logits_to_log_probs
from unembed.kernels import summarise_numpy, summarise_torch, top_k_rows


def _direct_top(z: np.ndarray, k: int) -> list[list[float]]:
    """The k largest values of each row, sorted (values: ties make index sets ambiguous)."""
    return [sorted(r)[-k:] for r in z.astype(np.float64).tolist()]


@pytest.mark.parametrize("v", [7, 300, 4096, 5000, 50257])
@pytest.mark.parametrize("k", [1, 5, 20])
def test_top_k_rows_are_the_k_largest(v: int, k: int) -> None:
    rng = np.random.default_rng(v + k)
    z = (rng.standard_normal((9, v)) * 3).astype(np.float32)
    top, best = top_k_rows(z, k)
    kk = min(k, v)
    assert top.shape == (9, kk)
    assert all(len(set(r)) == kk for r in top.tolist())
    vals = np.take_along_axis(z, top, axis=1).astype(np.float64)
    assert [sorted(r) for r in vals.tolist()] == _direct_top(z, kk)
    np.testing.assert_array_equal(best, z.argmax(axis=1))


def test_top_k_rows_with_ties_and_infinities() -> None:
    v = 8192
    z = np.zeros((4, v), dtype=np.float32)
    z[0, [5, 900, 4000, 8191]] = 3.0  # the maximum tied across four stripes and the tail
    z[1, :] = -np.inf
    z[1, [17, 18]] = [1.0, 2.0]  # fewer finite values than k
    z[2, ::256] = 1.0  # one whole stripe ties at the top: more candidates than k
    z[3] = np.arange(v)[::-1]
    top, best = top_k_rows(z, 5)
    vals = np.take_along_axis(z, top, axis=1).astype(np.float64)
    assert [sorted(r) for r in vals.tolist()] == _direct_top(z, 5)
    assert all(len(set(r)) == 5 for r in top.tolist())
    # an argmax: the lowest index among the maxima in the top k
    assert best.tolist()[:2] == [5, 18] and best[3] == 0
    assert all(z[r, best[r]] == z[r].max() and best[r] in top[r] for r in range(4))
    assert best[2] == min(i for i in top[2] if z[2, i] == 1.0)


@pytest.mark.parametrize("link", ["softmax", "sigmoid"])
@pytest.mark.parametrize("shift", [0.0, 700.0])
def test_torch_kernel_equals_the_numpy_kernel(link: str, shift: float) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    z = (rng.standard_normal((40, 5000)) * 4 + shift).astype(np.float32)
    tn, tt = LabelTally.empty(5000), LabelTally.empty(5000)
    top_n, ln_n = summarise_numpy(z, link, 5, tn)
    top_t, ln_t = summarise_torch(torch.from_numpy(z), link, 5, tt)
    assert [sorted(r) for r in top_n.tolist()] == [sorted(r) for r in top_t.tolist()]
    np.testing.assert_array_equal(tn.argmax_count, tt.argmax_count)
    np.testing.assert_allclose(ln_n, ln_t, rtol=1e-14)
    lp = logits_to_log_probs(z.astype(np.float64), link)  # type: ignore[arg-type]
    np.testing.assert_allclose(tt.sum_p, np.exp(lp).sum(axis=0), rtol=1e-11, atol=1e-300)
    np.testing.assert_allclose(tn.sum_p, tt.sum_p, rtol=1e-11, atol=1e-300)


def test_unshifted_exp_with_far_negative_logits_equals_the_direct_softmax() -> None:
    rng = np.random.default_rng(5)
    z = rng.standard_normal((6, 5000)) * 3
    z[:, :50] = -900.0  # exp underflows; so does the probability (row maxima >= 0)
    z[:, 60] = np.abs(z[:, 60]) + 1.0
    z32 = z.astype(np.float32)
    tally = LabelTally.empty(5000)
    _, ln = summarise_numpy(z32, "softmax", 5, tally)
    lp = logits_to_log_probs(z32.astype(np.float64), "softmax")
    np.testing.assert_allclose(ln, z32.astype(np.float64)[:, 0] - lp[:, 0], rtol=1e-14)
    np.testing.assert_allclose(tally.sum_p, np.exp(lp).sum(axis=0), rtol=1e-12, atol=1e-300)
