"""Every row's exact top-k cosines from half a float32 product: checked against the full
float64 cosine matrix sorted by Python's sort (ties by index), for blocks of any size, rows
without direction, ties and near-duplicates below float32's resolution."""

from __future__ import annotations

import numpy as np
import pytest

from unembed.top_cosines import rounding_bound, top_cosines


def _unit(W: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(W, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        U = W / n[:, None]
    U[n == 0] = np.nan
    return U


def _brute(U: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """For each row: the other rows with a direction, sorted by (-cosine, index) in Python."""
    good = [j for j in range(len(U)) if not np.isnan(U[j]).any()]
    out = []
    for i in range(len(U)):
        if i not in good:
            out.append([])
            continue
        pairs = sorted((-float(np.dot(U[i], U[j])), j) for j in good if j != i)
        out.append([(j, -v) for v, j in pairs[:k]])
    return out


def _check(U: np.ndarray, k: int, block: int | None, atol: float = 1e-12) -> None:
    bi, bv = top_cosines(U, k, block=block)
    for i, want in enumerate(_brute(U, k)):
        assert bi[i][:len(want)].tolist() == [j for j, _ in want], i
        np.testing.assert_allclose(bv[i][:len(want)], [c for _, c in want], atol=atol)
        assert (bi[i][len(want):] == -1).all() and np.isnan(bv[i][len(want):]).all()


@pytest.mark.parametrize("block", [1, 3, 7, 16, None])
@pytest.mark.parametrize("k", [1, 4, 39])
def test_every_row_matches_the_full_float64_matrix(block, k):
    rng = np.random.default_rng(3)
    _check(_unit(rng.standard_normal((40, 6)) + 0.3), k, block)


@pytest.mark.parametrize("block", [2, 5, None])
def test_ties_are_broken_by_index_and_rows_without_direction_are_skipped(block):
    W = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0], [0.0, -1.0], [0.0, 3.0], [1.0, 1.0],
                  [-1.0, 0.0], [2.0, 0.0]])
    U = _unit(W)
    bi, _ = top_cosines(U, 3, block=block)
    assert bi[0].tolist() == [7, 5, 1]  # 7 (cos 1), 5, then 1 before 3 and 4 (all cos 0)
    assert bi[2].tolist() == [-1, -1, -1] and 2 not in bi.ravel().tolist()
    _check(U, 3, block)


@pytest.mark.parametrize("block", [4, 9, None])
def test_order_below_float32_resolution_comes_from_float64(block):
    """Rows within 1e-6 of one direction: their cosines differ by about 1e-12, far below the
    rounding bound (about 1e-6 at d = 16), so only the float64 re-score can order them."""
    rng = np.random.default_rng(7)
    base = rng.standard_normal(16)
    W = np.vstack([base, base + 1e-6 * rng.standard_normal((30, 16)),
                   rng.standard_normal((20, 16))])
    assert rounding_bound(16) > 1e-6
    _check(_unit(W), 12, block, atol=1e-15)


def test_too_few_rows_leave_the_rest_empty():
    U = _unit(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
    bi, bv = top_cosines(U, 5)
    assert bi[0].tolist() == [1, -1, -1, -1, -1] and np.isnan(bv[0][1:]).all()
    assert (bi[2] == -1).all()
