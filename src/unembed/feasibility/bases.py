"""The rows' own factorisations the exact paths solve with, no LP: an orthonormal basis of
the rows' span (:class:`SpanBasis`, where the LPs are solved when 2 V <= d) and the Cholesky
factor of the row differences of an affinely independent head (:class:`Simplex`, which solves
for witnesses directly; :mod:`unembed.feasibility.span`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import solve_triangular

__all__ = ["Simplex", "SpanBasis", "simplex_of", "span_basis"]


@dataclass(frozen=True, eq=False)
class SpanBasis:
    """An orthonormal basis Q = W^T A (d, r) of the rows' span, kept as A (V, r), and the
    rows' coordinates M = W Q (V, r), from the Gram matrix W W^T = U diag(lam) U^T:
    A = U_r diag(lam_r)^{-1/2}, M = U_r diag(lam_r)^{1/2} (eigenvalues below 1e-12 of the
    largest dropped: directions the rows do not span beyond rounding). See the module
    docstring: Q's rounding is harmless, every answer is checked in R^d."""

    W: NDArray[np.float64]
    A: NDArray[np.float64]
    coords: NDArray[np.float64]

    def lift(self, y: NDArray[np.float64]) -> NDArray[np.float64]:
        """The hidden state h = Q y = W^T (A y) (d,) of span coordinates y (r,)."""
        return np.asarray((self.A @ y) @ self.W, dtype=np.float64)


def span_basis(W: NDArray[np.float64]) -> SpanBasis:
    """:class:`SpanBasis` of the rows of W (V, d): one V x V Gram matrix (O(V^2 d)), its
    eigendecomposition, nothing of size (d, r) kept.

    >>> import numpy as np
    >>> W = np.random.default_rng(0).normal(size=(3, 50))
    >>> b = span_basis(W)
    >>> y = np.array([0.5, -1.0, 2.0])
    >>> bool(np.allclose(W @ b.lift(y), b.coords @ y, atol=1e-12))
    True
    """
    G = W @ W.T
    lam, U = np.linalg.eigh(0.5 * (G + G.T))
    keep = lam > 1e-12 * max(float(lam.max(initial=0.0)), 1e-300)
    lam, U = lam[keep], U[:, keep]
    root = np.sqrt(lam)
    return SpanBasis(W, np.ascontiguousarray(U / root), np.ascontiguousarray(U * root))


@dataclass(frozen=True, eq=False)
class Simplex:
    """An affinely independent head's differences D = W[:-1] - W[-1] (V - 1, d), kept as the
    Cholesky factor L of D D^T (never D itself): what solves D h = y for any y."""

    W: NDArray[np.float64]
    L: NDArray[np.float64]

    def solve(self, y: NDArray[np.float64]) -> NDArray[np.float64]:
        """The least-norm h (d,) with D h = y (V - 1,): h = D^T a, (D D^T) a = y, plus one
        step of iterative refinement on the float64 residual y - D h."""
        W = self.W
        h = np.zeros(W.shape[1])
        for _ in range(2):
            r = y - (W[:-1] @ h - W[-1] @ h)
            a = solve_triangular(self.L, solve_triangular(self.L, r, lower=True), trans="T",
                                 lower=True)
            h = h + (a @ W[:-1] - a.sum() * W[-1])
        return h



def simplex_of(W: NDArray[np.float64], radius: float | None) -> Simplex | None:
    """:class:`Simplex` of the head's rows when the span theorem can apply (``radius`` None,
    2 <= V <= d + 1) and D D^T has a Cholesky factor, else None. Affine independence is not
    taken from the factorisation: every witness solved with it is checked on the head
    (:func:`unembed.feasibility.span.exact_answer`)."""
    from unembed._blocks import block_gram

    V, d = W.shape
    if not (radius is None and 2 <= V <= d + 1):
        return None
    G = block_gram(W, np.asarray(W[-1], dtype=np.float64))[:-1, :-1]
    try:
        L = np.asarray(np.linalg.cholesky(0.5 * (G + G.T)), dtype=np.float64)
    except np.linalg.LinAlgError:
        return None
    return Simplex(W, L)
