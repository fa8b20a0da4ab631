"""The independent LP the feasibility tests hold unembed's verdicts to (the formulation is
stated in tests/feasibility/test_feasibility_independent.py's docstring)::

    t(R) = max t   s.t.  (u_a - u_k) . h + b_a - b_k >= t   (a in the top set, k outside)
                         (u_a - u_c) . h + b_a - b_c  = 0   (ties, for the top-two question)
                         |h|_inf <= R

solved with SciPy's HiGHS on its default settings, over a grid of R, plus the limit R -> inf.
Shared by the feasibility, keep-cosines and command-line tests.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

GRID = (1e-2, 1.0, 1e2, 1e4, 1e6)


# ---------------------------------------------------------------------------------- the other LP
def box_optimum(W: np.ndarray, b: np.ndarray, top: list[int], R: float | None,
                tie: bool) -> float:
    """t(R) / max(1, R) of the module docstring (R None: the homogeneous limit, no bias)."""
    V, d = W.shape
    rest = [k for k in range(V) if k not in top]
    scale = 1.0 if R is None else R
    bias = np.zeros(V) if R is None else b / max(1.0, scale)
    gain = 1.0 if R is None else scale / max(1.0, scale)
    # variables y = h / scale in [-1, 1]^d and t
    A = [np.r_[-(W[a] - W[k]) * gain, 1.0] for a in top for k in rest]
    rhs = [bias[a] - bias[k] for a in top for k in rest]
    A_eq = b_eq = None
    if tie:
        A_eq = np.array([np.r_[(W[top[0]] - W[top[1]]) * gain, 0.0]])
        b_eq = np.array([-(bias[top[0]] - bias[top[1]])])
    res = linprog(np.r_[np.zeros(d), -1.0], A_ub=np.array(A), b_ub=np.array(rhs), A_eq=A_eq,
                  b_eq=b_eq, bounds=[(-1.0, 1.0)] * d + [(None, None)], method="highs")
    return float(-res.fun) if res.status == 0 else -np.inf


def unit_optimum(W: np.ndarray, b: np.ndarray, top: list[int], tie: bool) -> float:
    """T_grid: the best of t(R) / max(1, R) over the grid and the limit R -> inf."""
    return max([box_optimum(W, b, top, R, tie) for R in GRID]
               + [box_optimum(W, b, top, None, tie)])
