"""The margin LP itself, solved with HiGHS (through SciPy): the rows G h + s g >= t of a
problem, its point and duals, and the bound a dual vector proves (:func:`certify`). The
formulation is in :mod:`unembed.feasibility._core`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from unembed.feasibility.space import Space

if TYPE_CHECKING:
    from unembed.feasibility.bases import SpanBasis

_HIGHS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}


def _term(x: NDArray[np.float64], idx: NDArray[np.int64]) -> NDArray[Any]:
    """x[idx] with x[-1] read as zero (works for vectors and row matrices)."""
    out = x[np.maximum(idx, 0)]
    mask = idx < 0
    if mask.any():
        out = out.copy()
        out[mask] = 0
    return out


def row_matrix(sp: Space, P: NDArray[np.int64], N: NDArray[np.int64]
               ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """G (m, d) and g (m,) of rows ``z_P - z_N``."""
    return _term(sp.W, P) - _term(sp.W, N), _term(sp.b, P) - _term(sp.b, N)


@dataclass
class LPResult:
    t: float
    h: NDArray[np.float64]
    s: float
    lam: NDArray[np.float64]
    nu: NDArray[np.float64]
    ok: bool


def solve_lp(sp: Space, P: NDArray[np.int64], N: NDArray[np.int64], EP: NDArray[np.int64],
             EN: NDArray[np.int64]) -> LPResult:
    """Solve the margin LP on the given rows with HiGHS (rows scaled to O(1) first).

    When the Space has a ``span`` (wide heads, ``radius=None``) the LP is solved over the
    coordinates y of h in the rows' span (dimension r <= V) and its point is lifted back to
    R^d, h = Q y scaled into the unit box; the duals are those of the rows, as in R^d. Every
    witness and certificate is then checked on the head in R^d as always (the reduction only
    proposes; :mod:`unembed.feasibility.span` proves why nothing is lost)."""
    basis = sp.span
    if basis is not None:
        return _solve_in_span(sp, basis, P, N, EP, EN)
    d = sp.W.shape[1]
    G, g = row_matrix(sp, P, N)
    E, e = row_matrix(sp, EP, EN)
    scale = max(sp.tol / sp.rtol, 1e-300)
    R = sp.r[None, :]
    s_bounds = (0.0, 1.0) if sp.radius is None else (1.0, 1.0)
    out = _margin_lp(G * (R / scale), g / scale, E * (R / scale), e / scale, s_bounds)
    if out is None:
        return LPResult(np.nan, np.zeros(d), 1.0, np.zeros(G.shape[0]), np.zeros(E.shape[0]),
                        False)
    x, lam, nu = out
    h = np.clip(x[:d], -1.0, 1.0) * sp.r  # exactly in the box (HiGHS bounds hold to ~1e-10)
    return LPResult(float(x[-1]) * scale + 0.0, h, float(x[d]), lam, nu, True)


def _margin_lp(G: NDArray[np.float64], g: NDArray[np.float64], E: NDArray[np.float64],
               e: NDArray[np.float64], s_bounds: tuple[float, float]
               ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]] | None:
    """The margin LP in x = [y (n), s, t], already scaled: maximise t subject to
    G y + g s >= t on every row, E y + e s = 0, |y|_inf <= 1, s in ``s_bounds``. Returns
    (x, lam, nu), lam the rows' duals (>= 0) and nu the equalities', or None when HiGHS finds
    no optimum."""
    from scipy.optimize import linprog

    n = G.shape[1]
    c = np.zeros(n + 2)
    c[-1] = -1.0
    A_ub = np.hstack([-G, -g[:, None], np.ones((G.shape[0], 1))])
    A_eq = np.hstack([E, e[:, None], np.zeros((E.shape[0], 1))]) if E.shape[0] else None
    bounds = [(-1.0, 1.0)] * n + [s_bounds, (None, None)]
    res = linprog(c, A_ub=A_ub, b_ub=np.zeros(G.shape[0]), A_eq=A_eq,
                  b_eq=np.zeros(E.shape[0]) if A_eq is not None else None, bounds=bounds,
                  method="highs", options=_HIGHS)
    if res.status != 0 or res.x is None:
        return None
    lam = -np.asarray(res.ineqlin.marginals, dtype=np.float64)
    nu = (np.asarray(res.eqlin.marginals, dtype=np.float64) if A_eq is not None
          else np.zeros(0))
    return np.asarray(res.x, dtype=np.float64), lam, nu


def _solve_in_span(sp: Space, basis: SpanBasis, P: NDArray[np.int64], N: NDArray[np.int64],
                   EP: NDArray[np.int64], EN: NDArray[np.int64]) -> LPResult:
    """The margin LP over y in R^r (|y|_inf <= 1), rows M[p] - M[n] with M = W Q the rows'
    coordinates; its point lifted to (h, s) = (Q y, s) / max(1, |Q y|_inf), a point of the
    R^d LP with margin t / max(1, |Q y|_inf)."""
    M = basis.coords
    r = M.shape[1]
    G, g = _term(M, P) - _term(M, N), _term(sp.b, P) - _term(sp.b, N)
    E, e = _term(M, EP) - _term(M, EN), _term(sp.b, EP) - _term(sp.b, EN)
    scale = max(2 * float(np.abs(M - M.mean(axis=0)).sum(axis=1).max(initial=0.0))
                + 2 * float(np.abs(sp.b - sp.b.mean()).max(initial=0.0)), 1e-300)
    out = _margin_lp(G / scale, g / scale, E / scale, e / scale, (0.0, 1.0))
    d = sp.W.shape[1]
    if out is None:
        return LPResult(np.nan, np.zeros(d), 1.0, np.zeros(G.shape[0]), np.zeros(E.shape[0]),
                        False)
    x, lam, nu = out
    h = basis.lift(np.clip(x[:r], -1.0, 1.0))
    k = max(1.0, float(np.abs(h).max(initial=0.0)))
    return LPResult(float(x[-1]) * scale / k + 0.0, h / k, float(x[r]) / k, lam, nu, True)


def certify(sp: Space, P: NDArray[np.int64], N: NDArray[np.int64], EP: NDArray[np.int64],
            EN: NDArray[np.int64], lam: NDArray[np.float64], nu: NDArray[np.float64]
            ) -> tuple[float, float, NDArray[np.float64], NDArray[np.float64]]:
    """Recompute the bound a dual vector proves: (bound, residual, lam, nu), lam normalised."""
    lam = np.clip(lam, 0.0, None)
    total = lam.sum()
    if not np.isfinite(total) or total <= 0:
        return np.inf, np.inf, lam, nu
    lam = lam / total
    nu = nu / total
    G, g = row_matrix(sp, P, N)
    E, e = row_matrix(sp, EP, EN)
    best = (np.inf, np.inf, nu)
    for sign in (1.0, -1.0):  # any nu is valid; the solver's sign convention does not matter
        v = G.T @ lam + (E.T @ (sign * nu) if E.shape[0] else 0.0)
        resid = float(sp.r @ np.abs(v))
        off = float(lam @ g + ((sign * nu) @ e if E.shape[0] else 0.0))
        bound = resid + (max(0.0, off) if sp.radius is None else off)
        if bound < best[0]:
            best = (bound, resid, sign * nu)
    return best[0], best[1], lam, best[2]
