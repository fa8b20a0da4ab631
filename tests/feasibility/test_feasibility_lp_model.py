"""The margin LP kept open across rounds (rows appended, re-solved warm from the last basis):
the same optimum, point and certificate bound as SciPy's ``linprog`` solving all the rows at
once from nothing, round after round; and the decisions made with it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

from unembed import Head
from unembed.feasibility import is_argmaxable
from unembed.feasibility._core import certify, make_space, row_matrix
from unembed.feasibility.lp_model import ColdLP, WarmLP, open_lp


def _linprog_optimum(sp, P, N) -> float:
    """max t s.t. (u_p - u_n) . h + s (b_p - b_n) >= t, |h_j| <= r_j, s as the space says,
    in plain linprog, unscaled."""
    G, g = row_matrix(sp, P, N)
    d = G.shape[1]
    c = np.zeros(d + 2)
    c[-1] = -1.0
    A = np.hstack([-G, -g[:, None], np.ones((G.shape[0], 1))])
    s_b = (0.0, 1.0) if sp.radius is None else (1.0, 1.0)
    res = linprog(c, A_ub=A, b_ub=np.zeros(G.shape[0]),
                  bounds=[(-r, r) for r in sp.r] + [s_b, (None, None)], method="highs")
    assert res.status == 0
    return float(-res.fun)


@pytest.mark.parametrize("radius", [None, 2.0])
def test_warm_rounds_match_a_cold_solve_of_all_rows(radius):
    rng = np.random.default_rng(8)
    W = rng.standard_normal((60, 12))
    head = Head(W, b=0.3 * rng.standard_normal(60))
    sp = make_space(head, bias=True, radius=radius, rtol=None, func="test")
    model = open_lp(sp, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    assert isinstance(model, WarmLP)
    i = 5
    others = np.array([j for j in range(60) if j != i])
    P_all = np.zeros(0, dtype=np.int64)
    N_all = np.zeros(0, dtype=np.int64)
    for chunk in np.array_split(others, 4):  # four rounds of generated rows
        P, N = np.full(chunk.size, i), chunk.astype(np.int64)
        model.add(P, N)
        P_all, N_all = np.r_[P_all, P], np.r_[N_all, N]
        lp = model.solve()
        want = _linprog_optimum(sp, P_all, N_all)
        assert lp.ok and lp.t == pytest.approx(want, rel=1e-7, abs=1e-9 * sp.tol / sp.rtol)
        # the point: every row's value at (h, s) is at least the optimum (to HiGHS's tolerance)
        G, g = row_matrix(sp, P_all, N_all)
        assert (G @ lp.h + lp.s * g).min() >= lp.t - 1e-7 * max(1.0, abs(lp.t))
        assert np.all(np.abs(lp.h) <= sp.r)
        cold = ColdLP(sp, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        cold.add(P_all, N_all)
        ref = cold.solve()
        assert ref.t == pytest.approx(lp.t, rel=1e-7, abs=1e-9 * sp.tol / sp.rtol)
        # the duals prove the same bound, recomputed independently of either solver
        b_warm = certify(sp, P_all, N_all, np.zeros(0, dtype=np.int64),
                         np.zeros(0, dtype=np.int64), lp.lam, lp.nu)[0]
        b_cold = certify(sp, P_all, N_all, np.zeros(0, dtype=np.int64),
                         np.zeros(0, dtype=np.int64), ref.lam, ref.nu)[0]
        assert b_warm == pytest.approx(b_cold, rel=1e-6, abs=1e-9)


def test_interior_label_gets_a_no_with_a_checked_certificate():
    # a label at the mean of three others is never the strict argmax
    rng = np.random.default_rng(2)
    W = rng.standard_normal((30, 4))
    W[7] = W[[1, 2, 3]].mean(axis=0)
    r = is_argmaxable(Head(W), 7)
    assert r.status == "no" and r.certificate is not None and r.certificate.bound <= r.tol
    lam = r.certificate.weights
    rows = r.certificate.rows
    names = [str(i) for i in range(30)]
    G = np.array([W[names.index(p)] - W[names.index(n)] for p, n in rows])
    assert np.abs(G.T @ lam).sum() <= 1e-8  # the rows' weighted sum cancels
