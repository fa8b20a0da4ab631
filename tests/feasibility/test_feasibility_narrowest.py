"""The narrowest-margin LPs solved in lockstep (unembed.feasibility.narrowest.optimal_margins)
against an LP on every row at once, written here without unembed's code:

    T = max t   s.t.  (u_i - u_k) . h + s (b_i - b_k) >= t   for every k != i,
                      |h_j| <= R,  s in [0, 1] (R = 1, no radius) or s = 1 (radius R),

SciPy's HiGHS on its default settings, no row generation; and against unembed's own
one-label-at-a-time path (decide with optimal=True), which must give the same verdicts and
optima. Heads have more than 1024 labels (so rows are generated over several rounds), a bias,
planted rows inside the hull of others (unargmaxable), and float16 storage.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

from unembed import Head
from unembed.feasibility import argmaxable_all
from unembed.feasibility._core import decide, make_problem, make_space
from unembed.feasibility.narrowest import optimal_margins


def full_lp(W: np.ndarray, b: np.ndarray, i: int, radius: float | None) -> float:
    """T above, every row at once, in the head's own units."""
    V, d = W.shape
    R = 1.0 if radius is None else radius
    rest = np.array([k for k in range(V) if k != i])
    A = np.hstack([-(W[i] - W[rest]), -(b[i] - b[rest])[:, None], np.ones((rest.size, 1))])
    s = (0.0, 1.0) if radius is None else (1.0, 1.0)
    res = linprog(np.r_[np.zeros(d + 1), -1.0], A_ub=A, b_ub=np.zeros(rest.size),
                  bounds=[(-R, R)] * d + [s, (None, None)], method="highs")
    assert res.status == 0
    return float(-res.fun)


def planted_head(seed: int, V: int = 1500, d: int = 10, dtype: type = np.float64,
                 bias: bool = True, sphere: bool = False) -> tuple[Head, list[int]]:
    """Random rows (on the unit sphere: every row a vertex of the hull) and three rows
    replaced by convex combinations of four others."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((V, d)) * (1.0 / np.sqrt(1 + np.arange(d)))
    if sphere:
        W /= np.linalg.norm(W, axis=1, keepdims=True)
    planted = [3, V // 2, V - 100]
    for p in planted:
        src = rng.choice([k for k in range(V) if k not in planted], 4, replace=False)
        W[p] = rng.dirichlet(np.ones(4)) @ W[src]
    W = W.astype(dtype)
    b = 0.1 * rng.standard_normal(V) if bias else None
    return Head(W, b=b, strict=False), planted


@pytest.mark.parametrize("radius", [None, 2.0])
@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_lockstep_optima_equal_the_lp_on_every_row(radius, dtype):
    head, planted = planted_head(1, dtype=dtype)
    sp = make_space(head, bias=True, radius=radius, rtol=None, func="test")
    W, b = head.W, head.bias
    labels = [*planted, 5, 17, 901, 1234]
    mean = W.mean(axis=0)
    tasks = [(i, W[i] - mean) for i in labels]
    got = optimal_margins(head, sp, tasks, threads=2)
    assert sorted(got) == sorted(labels)
    scale = 1.0  # the unit form is the LP above with R = 1 (no radius) or R (radius)
    for i in labels:
        r = got[i]
        want = full_lp(W, b, i, radius) * scale
        if r.status == "yes":
            # the optimum over every row, and a witness re-checked here in float64
            assert r.lp_optimum == pytest.approx(want, rel=1e-6, abs=1e-9)
            z = W @ r.witness + b
            assert int(np.argmax(z)) == i
            assert r.margin > r.tol
        elif r.status == "no":
            assert want <= r.tol
            assert r.certificate is not None and r.certificate.bound <= r.tol
        else:
            assert want <= 4 * r.tol
        # the same verdict and optimum as one label at a time
        one = decide(head, sp, make_problem(groups=[[i]]), question="argmaxable",
                     labels=(head.labels[i],), starts=[W[i] - mean], optimal=True)
        assert one.status == r.status
        if r.status == "yes":
            assert one.lp_optimum == pytest.approx(r.lp_optimum, rel=1e-7, abs=1e-9)
    if dtype is np.float64:
        assert all(got[p].status == "no" for p in planted)


def test_lockstep_without_starts_and_without_bias():
    head, planted = planted_head(2, bias=False)
    sp = make_space(head, bias=True, radius=None, rtol=None, func="test")
    far = np.argsort(-np.linalg.norm(head.W, axis=1))[:2]  # vertices of the hull
    labels = [planted[0], *far.tolist()]
    got = optimal_margins(head, sp, [(i, None) for i in labels], threads=1)
    for i in labels:
        want = full_lp(head.W, np.zeros(head.n_labels), i, None)
        r = got[i]
        assert r.hidden_bound is not None and r.lp_solves >= 1
        if i == planted[0]:
            assert r.status == "no" and want <= r.tol
        else:
            assert r.status == "yes" and r.lp_optimum == pytest.approx(want, rel=1e-6)
            assert int(np.argmax(head.W @ r.witness)) == i


def test_narrowest_list_is_the_smallest_exact_optima():
    # every label's optimum by the LP on every row: the list argmaxable_all reports holds the
    # smallest of them when it says it is exact, each with the optimum over every row
    head, planted = planted_head(3, V=1030, d=6, bias=False, sphere=True)
    res = argmaxable_all(head, workers=2, n_narrowest=4, narrowest_budget=2000)
    assert sorted(head.index(x) for x in res.unargmaxable) == planted
    W, b = head.W, np.zeros(head.n_labels)
    opt = {i: full_lp(W, b, i, None) for i in range(head.n_labels) if i not in planted}
    listed = [head.index(r.labels[0]) for r in res.narrowest]
    assert len(listed) == 4
    for i, r in zip(listed, res.narrowest):
        assert r.lp_optimum == pytest.approx(opt[i], rel=1e-6, abs=1e-12)
        assert r.margin == pytest.approx(opt[i], rel=1e-6, abs=1e-12)  # witness's own
    assert res.narrowest_exact  # the LPs refined every label the bounds left open
    smallest = sorted(opt, key=opt.__getitem__)[:4]
    assert [opt[i] for i in listed] == pytest.approx([opt[i] for i in smallest], rel=1e-6)
