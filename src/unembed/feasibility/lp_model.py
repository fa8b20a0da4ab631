"""The margin LP kept open across rounds of row generation, so that each round adds its rows
and re-solves from the last optimal basis (HiGHS's dual simplex, warm) instead of building and
solving the LP again from nothing.

The LP is the one of :func:`unembed.feasibility.lp.solve_lp` in R^d, scaled the same way
(columns by the box r, rows by tol / rtol):

    maximise t   subject to   G_r h' + g_r s >= t  (rows added so far),  E h' + e s = 0,
                              |h'_j| <= 1,  s in [0, 1] (unit form) or s = 1 (a box),

with h = h' r. Adding rows only shrinks the feasible set, so the previous optimal basis stays
dual feasible and the dual simplex starts from it. The solver only proposes: every witness
and every certificate is checked on the head in float64 by the caller, as for a cold solve.

HiGHS is reached through SciPy's own binding of it (``scipy.optimize._highspy``, the one
``linprog(method="highs")`` uses). Where that binding is missing (another SciPy), or for LPs
solved in the rows' span, :func:`open_lp` returns a model that re-solves each round with
:func:`~unembed.feasibility.lp.solve_lp`: the same answers, without the warm start.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed.feasibility.lp import _HIGHS, LPResult, row_matrix, solve_lp
from unembed.feasibility.space import Space


def _highs() -> Any:
    """SciPy's HiGHS binding module, or None where this SciPy has none."""
    try:
        from scipy.optimize._highspy import _core
    except ImportError:  # pragma: no cover - other SciPy versions
        return None
    return _core if hasattr(_core, "_Highs") else None


class ColdLP:
    """Rows accumulated; every solve a fresh :func:`solve_lp` on all of them."""

    def __init__(self, sp: Space, EP: NDArray[np.int64], EN: NDArray[np.int64]) -> None:
        self.sp, self.EP, self.EN = sp, EP, EN
        self.P = np.zeros(0, dtype=np.int64)
        self.N = np.zeros(0, dtype=np.int64)

    @property
    def n_rows(self) -> int:
        return int(self.P.size)

    def add(self, P: NDArray[np.int64], N: NDArray[np.int64]) -> None:
        self.P = np.concatenate([self.P, P])
        self.N = np.concatenate([self.N, N])

    def solve(self) -> LPResult:
        return solve_lp(self.sp, self.P, self.N, self.EP, self.EN)


class WarmLP:
    """The LP held in one HiGHS model; rows appended, each solve warm from the last basis."""

    def __init__(self, core: Any, sp: Space, EP: NDArray[np.int64],
                 EN: NDArray[np.int64]) -> None:
        self.core, self.sp = core, sp
        d = sp.W.shape[1]
        self.d = d
        self.scale = max(sp.tol / sp.rtol, 1e-300)
        self.R = sp.r
        h = core._Highs()
        h.setOptionValue("output_flag", False)
        for k, v in _HIGHS.items():
            h.setOptionValue(k, v)
        inf = core.kHighsInf
        s_lo, s_hi = (0.0, 1.0) if sp.radius is None else (1.0, 1.0)
        h.addVars(d + 2, np.r_[-np.ones(d), s_lo, -inf], np.r_[np.ones(d), s_hi, inf])
        cost = np.zeros(d + 2)
        cost[-1] = -1.0
        h.changeColsCost(d + 2, np.arange(d + 2, dtype=np.int32), cost)
        self.h = h
        self.n_eq = int(EP.size)
        if self.n_eq:
            E, e = row_matrix(sp, EP, EN)
            self._rows(np.hstack([E * (self.R / self.scale), (e / self.scale)[:, None],
                                  np.zeros((E.shape[0], 1))]), 0.0, 0.0)
        self.n_rows = 0

    def _rows(self, A: NDArray[np.float64], lo: float, hi: float) -> None:
        k, w = A.shape
        self.h.addRows(k, np.full(k, lo), np.full(k, hi), k * w,
                       np.arange(0, k * w, w, dtype=np.int32),
                       np.tile(np.arange(w, dtype=np.int32), k), np.ascontiguousarray(A).ravel())

    def add(self, P: NDArray[np.int64], N: NDArray[np.int64]) -> None:
        """Append the rows z_P - z_N >= t (as t - G h' - g s <= 0)."""
        if not P.size:
            return
        G, g = row_matrix(self.sp, P, N)
        self._rows(np.hstack([-G * (self.R / self.scale), -(g / self.scale)[:, None],
                              np.ones((G.shape[0], 1))]), -self.core.kHighsInf, 0.0)
        self.n_rows += int(P.size)

    def solve(self) -> LPResult:
        d = self.d
        self.h.run()
        if self.h.getModelStatus() != self.core.HighsModelStatus.kOptimal:
            return LPResult(np.nan, np.zeros(d), 1.0, np.zeros(self.n_rows),
                            np.zeros(self.n_eq), False)
        sol = self.h.getSolution()
        x = np.asarray(sol.col_value, dtype=np.float64)
        dual = np.asarray(sol.row_dual, dtype=np.float64)
        h = np.clip(x[:d], -1.0, 1.0) * self.R  # exactly in the box (bounds hold to ~1e-10)
        return LPResult(float(x[-1]) * self.scale + 0.0, h, float(x[d]), -dual[self.n_eq:],
                        dual[:self.n_eq], True)


def open_lp(sp: Space, EP: NDArray[np.int64], EN: NDArray[np.int64]) -> WarmLP | ColdLP:
    """The margin LP of ``sp`` with the equalities EP = EN and no inequality row yet: warm
    (one HiGHS model) where it can be, cold otherwise (module docstring)."""
    core = _highs()
    if core is None or sp.span is not None:
        return ColdLP(sp, EP, EN)
    return WarmLP(core, sp, EP, EN)


__all__ = ["ColdLP", "WarmLP", "open_lp"]
