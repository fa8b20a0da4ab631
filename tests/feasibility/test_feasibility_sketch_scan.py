"""The fast pass's chunked, threaded scan of the sketch's bounds (``Scores._scan``) against
the whole bound matrix Y = G A^T formed at once here, and the subspace-iteration basis against
LAPACK's full eigendecomposition.

The scan's entries are exact here (small integers: every float32 product and sum is exact, so
no order of summation can change a bit), so the rows kept, each witness's largest bound left
out and the stored bounds must agree exactly."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from unembed.feasibility.fast_pass import Scores
from unembed.feasibility.sketch import Sketch, choose_rank, principal_basis, subspace_basis


def _whole(G, A, b, r, lab, add_bias, thr, thr1):
    """keep, top and Y^T from the whole (n, V) matrix, as one product."""
    Y = (G.astype(np.float64) @ A.T.astype(np.float64)).astype(np.float32)
    Y[r, lab] = -np.inf
    if add_bias:
        Y = Y + b[None, :]
    keep = (Y >= thr[:, None]).any(axis=0)
    if thr1 is not None:
        keep |= ((Y + b[None, :]) >= thr1[:, None]).any(axis=0)
    keep[lab] = True
    Y[:, keep] = -np.inf
    return keep, Y.max(axis=1), Y.T


@pytest.mark.parametrize("add_bias, unit", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("scan_rows", [7, 64, 5000])
def test_scan_matches_the_whole_bound_matrix(add_bias: bool, unit: bool,
                                             scan_rows: int) -> None:
    rng = np.random.default_rng(scan_rows + 3 * add_bias + 5 * unit)
    V, d, k, n = 1000, 12, 9, 17
    A = rng.integers(-8, 9, size=(V, k + 1)).astype(np.float32)
    G = rng.integers(-8, 9, size=(n, k + 1)).astype(np.float32)
    b = rng.integers(-4, 5, size=V).astype(np.float32)
    W = rng.standard_normal((V, d))
    sk = Sketch(np.eye(d)[:, :k], A, None, np.zeros(d), 0.0, 1.0, 1.0, 0.0)
    scores = Scores(W, b, np.ones(V, dtype=np.float32), None, sk)
    scores.scan_rows = scan_rows
    lab = rng.choice(V, n, replace=False)
    r = np.arange(n)
    thr = rng.integers(180, 260, size=n).astype(np.float32)
    thr1 = rng.integers(180, 260, size=n).astype(np.float32) if unit else None
    keep, top, Yt = scores._scan(G, r, lab, add_bias, thr, thr1)
    keep0, top0, Yt0 = _whole(G, A, b, r, lab, add_bias, thr, thr1)
    assert 0 < (keep0 & ~np.isin(np.arange(V), lab)).sum() < V // 2  # not a vacuous case
    np.testing.assert_array_equal(keep, keep0)
    np.testing.assert_array_equal(top, top0)
    if unit:
        assert Yt is not None
        np.testing.assert_array_equal(Yt, Yt0)
    else:
        assert Yt is None
    # a second block through the same scores (buffers reused) gives the same again
    keep2, top2, _ = scores._scan(G, r, lab, add_bias, thr, thr1)
    np.testing.assert_array_equal(keep2, keep0)
    np.testing.assert_array_equal(top2, top0)


def _covariance(d: int, seed: int) -> np.ndarray:
    """A covariance with a decaying spectrum like an LM head's (a few large directions, then
    a slow tail), well separated at every index."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = 1.0 / (1.0 + np.arange(d)) ** 0.8 + 1e-3 * rng.uniform(size=d)
    return (Q * lam) @ Q.T


def test_subspace_basis_finds_the_top_eigenvectors() -> None:
    d, k = 600, 48
    C = _covariance(d, 1)
    w, v = scipy.linalg.eigh(C)  # full, ascending: the independent reference
    top = v[:, ::-1][:, :k]
    P = subspace_basis(C, k)
    assert P.shape == (d, k)
    assert np.linalg.norm(P.T @ P - np.eye(k)) < 1e-12  # orthonormal to rounding
    # the leading directions to high accuracy; the captured variance of the first quarter
    # almost all of the top quarter's, of all k most of the top k's
    for j in range(8):
        assert abs(float(P[:, j] @ top[:, j])) > 1 - 1e-4
    q = k // 4
    assert np.trace(P[:, :q].T @ C @ P[:, :q]) >= 0.9999 * w[::-1][:q].sum()
    assert np.trace(P.T @ C @ P) >= 0.99 * w[::-1][:k].sum()
    # a random basis captures far less: the test can tell a basis that is not the top one
    R, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((d, k)))
    assert np.trace(R.T @ C @ R) < 0.5 * w[::-1][:k].sum()


def test_principal_basis_uses_subspace_iteration_only_when_wide() -> None:
    C = _covariance(1100, 3)
    P = principal_basis(C, 200)  # d >= 1024, 3 k <= d: subspace iteration
    np.testing.assert_array_equal(P, subspace_basis(C, 200))
    small = _covariance(200, 4)
    _, v = scipy.linalg.eigh(small)
    Ps = principal_basis(small, 10)  # LAPACK for the top 10 only: the eigenvectors themselves
    np.testing.assert_allclose(np.abs(np.sum(Ps * v[:, ::-1][:, :10], axis=0)), 1.0,
                               atol=1e-9)


def test_choose_rank_widens_the_basis_only_when_a_wider_rank_could_pay() -> None:
    rng = np.random.default_rng(0)
    W = rng.standard_normal((3000, 8)) @ rng.standard_normal((8, 256)) \
        + 0.3 * rng.standard_normal((3000, 256))
    m = W.mean(axis=0)
    P = principal_basis(np.cov(W.T, bias=True), 64)
    H = W[:64] - m
    own = np.einsum("ij,ij->i", H, W[:64])
    asked: list[int] = []

    def wider(q: int) -> np.ndarray:
        asked.append(q)
        return P

    for tol in (0.0, float(np.median(own)) * 0.3):
        asked.clear()
        whole = choose_rank(W, m, P, (16, 32, 64), H, own, np.arange(64), tol=tol, sample=1000)
        lazy = choose_rank(W, m, P[:, :16], (16, 32, 64), H, own, np.arange(64), tol=tol,
                           sample=1000, wider=wider)
        assert lazy == whole
        _, share = whole
        cost16 = 16 + 1.1 * share[16] * 256
        # the wider basis asked for exactly when the second rank could cost less
        assert asked == ([32] if cost16 > 32 else [])
    assert asked, "neither tolerance made a wider rank worth measuring: the test is vacuous"
    with pytest.raises(ValueError, match="wider than the basis"):
        choose_rank(W, m, P[:, :16], (16, 32, 64), H, own, np.arange(64),
                    tol=float(np.median(own)) * 0.3, sample=1000)
