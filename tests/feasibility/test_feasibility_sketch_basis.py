"""The sketch's basis, rank and bounds' buffer: the block Krylov basis against LAPACK's full
eigendecomposition, the rank chosen with the basis widened only when needed against the rank
chosen on the whole basis, and the bounds written into a caller's buffer against fresh ones."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from sketch_heads import rank_question
from unembed.feasibility.sketch import Sketch, choose_rank, krylov_basis, principal_basis


def _covariance(d: int, seed: int) -> np.ndarray:
    """A covariance with a decaying spectrum like an LM head's (a few large directions, then
    a slow tail), well separated at every index."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = 1.0 / (1.0 + np.arange(d)) ** 0.8 + 1e-3 * rng.uniform(size=d)
    return (Q * lam) @ Q.T


def test_krylov_basis_finds_the_top_eigenvectors() -> None:
    d, k = 600, 48
    C = _covariance(d, 1)
    w, v = scipy.linalg.eigh(C)  # full, ascending: the independent reference
    top = v[:, ::-1][:, :k]
    P = krylov_basis(C, k)
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


def test_principal_basis_uses_block_krylov_only_when_wide() -> None:
    C = _covariance(1100, 3)
    P = principal_basis(C, 128)  # d >= 1024, 8 k <= d: block Krylov iteration
    np.testing.assert_array_equal(P, krylov_basis(C, 128))
    small = _covariance(200, 4)
    _, v = scipy.linalg.eigh(small)
    Ps = principal_basis(small, 10)  # LAPACK for the top 10 only: the eigenvectors themselves
    np.testing.assert_allclose(np.abs(np.sum(Ps * v[:, ::-1][:, :10], axis=0)), 1.0,
                               atol=1e-9)


def test_choose_rank_widens_the_basis_only_when_a_wider_rank_could_pay() -> None:
    rng = np.random.default_rng(0)
    W, m, P, H, own = rank_question(rng, 0.3)
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


def test_bounds_written_into_a_buffer_are_the_fresh_bounds() -> None:
    rng = np.random.default_rng(5)
    W = rng.standard_normal((700, 40)) @ rng.standard_normal((40, 40))
    m = W.mean(axis=0)
    sk = Sketch.build(W, m, principal_basis(np.cov(W.T, bias=True), 8))
    H = W[:9] - m
    Y, add, mag = sk.bounds(H)
    buf = np.full(9 * 700 + 5, np.nan, dtype=np.float32)
    Yb, add_b, mag_b = sk.bounds(H, into=buf[: 9 * 700].reshape(9, 700))
    assert np.shares_memory(Yb, buf)
    np.testing.assert_array_equal(Yb, Y)
    np.testing.assert_array_equal(add_b, add)
    np.testing.assert_array_equal(mag_b, mag)
    assert np.all(W @ H.T <= Yb.T + add_b)  # the bound itself, in float64 (clear margins here)
