"""Exact margins of many argmaxable labels at once: the narrowest-margin LPs of
:func:`unembed.feasibility.vocabulary.argmaxable_all` (its step 3), solved in lockstep.

For label i the margin is the optimum of the LP of :mod:`unembed.feasibility._core`,

    maximise t   subject to   (u_i - u_k) . h + s (b_i - b_k) >= t   for every k != i,
                              |h_j| <= r_j,  s in [0, 1] (unit form) or s = 1 (a box),

whose dual is min over convex weights lam of sum_j r_j |sum_k lam_k (u_i - u_k)_j| (plus the
bias term): in the unit form without a bias, the l1 distance from u_i to the convex hull of
the other rows. Only a few hundred of the V - 1 rows are ever active, so the rows are generated
as in :func:`unembed.feasibility._core.decide` with ``optimal=True``: start from the 64
strongest rivals at the fast pass's witness, solve, add the most violated rivals at the
LP's point (64 a round), until the LP's point is as good over all V rows as over the rows it
has (then its optimum is the optimum over all rows). Each label's LP is kept open in HiGHS
across rounds (:mod:`unembed.feasibility.lp_model`: rows appended, the dual simplex warm from
the last basis).

What costs the time on a large head is not the LPs but finding the violated rows: every round
of every label needs the logits W h over all V labels at the LP's point, one pass over the
(V, d) float64 rows (0.5 s on a 128256 x 4096 head, memory-bound). Done per label that pass is
most of a label's cost; here the labels of a batch advance round by round together, so one
pass W X over the rows serves every label still open (X: their points as columns), and their
LPs are solved side by side in threads (HiGHS runs without the GIL).

Nothing else changes: the same decisions are taken on the same float64 numbers as in
:func:`~unembed.feasibility._core.decide` (each witness's margin recomputed over all V rows
from the head at the witness itself, an optimum accepted only when the LP's own point is as
good over all rows), so each label gets the same verdict and the same optimum; only the
rows generated on the way (64 a round instead of 32) and so the witness among the optimal
points may differ.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from unembed.feasibility._core import (
    _FULL_GROUP,
    _START_GROUP,
    Certificate,
    Feasibility,
    LPResult,
    Space,
    _group_rows,
    _names,
    certify,
    finite_s,
    unit_form,
    with_bound,
    witness_of,
)
from unembed.feasibility.lp_model import ColdLP, WarmLP, open_lp
from unembed.feasibility.questions import scaled_starts
from unembed.head import Head

_NONE = np.zeros(0, dtype=np.int64)
#: Most violated rivals added per label and round: twice decide's 32, which on a 128256 x 4096
#: head takes 7 rounds instead of 10 to the same optimum with fewer simplex iterations in all
#: (3163 instead of 3751 for its narrowest label), and each round costs a pass over the rows.
_ADD_GROUP = 64


@dataclass
class _Label:
    """One label's LP between rounds."""

    i: int
    model: WarmLP | ColdLP
    order: list[tuple[int, int]] = field(default_factory=list)
    active: set[tuple[int, int]] = field(default_factory=set)
    solves: int = 0
    lp: LPResult | None = None
    result: Feasibility | None = None

    def rows(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """The (label, rival) pairs of the rows generated so far, in order, as two arrays."""
        return (np.array([r[0] for r in self.order], dtype=np.int64),
                np.array([r[1] for r in self.order], dtype=np.int64))

    def method(self, V: int) -> str:
        return "lp" if len(self.order) >= V - 1 else "lp+generation"


def _margins(Z: NDArray[np.float64], labels: NDArray[np.int64]) -> NDArray[np.float64]:
    """z_i - max_{k != i} z_k for each column of Z (V, n) and its label i (n,)."""
    cols = np.arange(labels.size)
    own = Z[labels, cols]
    Z = Z.copy()
    Z[labels, cols] = -np.inf
    return np.asarray(own - Z.max(axis=0), dtype=np.float64)


def _logits(sp: Space, H: NDArray[np.float64], s: NDArray[np.float64]) -> NDArray[np.float64]:
    """z = W h + s b for every column: (V, n), in float64, one pass over the rows."""
    Z = np.asarray(sp.W @ H, dtype=np.float64)
    if np.any(sp.b != 0):
        Z += sp.b[:, None] * s[None, :]
    return Z


def optimal_margins(head: Head, sp: Space,
                    tasks: Sequence[tuple[int, NDArray[np.float64] | None]], threads: int = 1,
                    tick: Callable[[], None] | None = None, max_rounds: int = 60
                    ) -> dict[int, Feasibility]:
    """For each (label i, fast-pass witness or None) of ``tasks``: "is i argmaxable", decided
    by its LP solved to optimality over all V rows (module docstring), as
    :func:`~unembed.feasibility._core.decide` with ``optimal=True`` would, the labels in
    lockstep. ``threads``: LPs solved side by side."""
    tol = sp.tol
    V = sp.W.shape[0]
    labs = [_Label(int(i), open_lp(sp, _NONE, _NONE)) for i, _ in tasks]
    # the starts (the fast pass's direction, scaled as decide scales it): the rows at the
    # best of them are the first rows
    cols: list[NDArray[np.float64]] = []
    svals: list[float] = []
    owner: list[int] = []
    for a, (_, h0) in enumerate(tasks):
        for h in ([] if h0 is None else scaled_starts(h0, sp)):
            hu, su = unit_form(np.asarray(h, dtype=np.float64), sp)
            cols.append(hu)
            svals.append(su)
            owner.append(a)
    zs: list[NDArray[np.float64]] = [sp.b.copy() for _ in labs]
    if cols:
        Z = _logits(sp, np.stack(cols, axis=1), np.array(svals))
        own = np.array(owner)
        m = _margins(Z, np.array([labs[a].i for a in owner], dtype=np.int64))
        for a in range(len(labs)):
            mine = np.flatnonzero(own == a)
            if mine.size and np.max(m[mine]) > -np.inf:  # the first of the largest margin,
                zs[a] = Z[:, mine[int(np.argmax(m[mine]))]].copy()  # as decide keeps it
    k = V - 1 if V - 1 <= _FULL_GROUP else _START_GROUP
    for lab, z in zip(labs, zs):
        new = _group_rows(sp, np.array([lab.i]), z, k, lab.active)
        lab.active.update(new)
        lab.order.extend(new)
    open_ = list(labs)
    pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None
    try:
        for _ in range(max_rounds):
            if not open_:
                break
            for lab in open_:
                P, N = lab.rows()
                lab.model.add(P[lab.model.n_rows:], N[lab.model.n_rows:])
            solved = (list(pool.map(lambda x: x.model.solve(), open_)) if pool is not None
                      else [x.model.solve() for x in open_])
            for lab, lp in zip(open_, solved):
                lab.lp, lab.solves = lp, lab.solves + 1
            open_ = _round(head, sp, open_, tol, tick)
    finally:
        if pool is not None:
            pool.shutdown()
    out: dict[int, Feasibility] = {}
    for lab in labs:
        if lab.result is None:
            t = np.nan if lab.lp is None or not lab.lp.ok else lab.lp.t
            lab.result = Feasibility("argmaxable", (head.labels[lab.i],), "undecided", t, tol,
                                     None, None, sp.formulation, "lp", lab.solves,
                                     lp_optimum=t)
            if tick is not None:
                tick()
        out[lab.i] = with_bound(lab.result, sp)
    return out


def _round(head: Head, sp: Space, open_: list[_Label], tol: float,
           tick: Callable[[], None] | None) -> list[_Label]:
    """Decide or grow every open label after its LP was solved; the labels still open."""
    V = sp.W.shape[0]
    live: list[_Label] = []
    for lab in open_:
        lp = lab.lp
        assert lp is not None
        if not lp.ok:
            continue  # undecided (decided at the end)
        if lp.t <= tol:
            P, N = lab.rows()
            bound, resid, lam, nu = certify(sp, P, N, _NONE, _NONE, lp.lam, lp.nu)
            cert = Certificate(_names(head, P, N), lam, (), nu, bound, resid)
            lab.result = Feasibility("argmaxable", (head.labels[lab.i],),
                                     "no" if bound <= tol else "undecided", lp.t, tol, None,
                                     cert, sp.formulation, lab.method(V), lab.solves,
                                     lp_optimum=lp.t)
            if tick is not None:
                tick()
            continue
        live.append(lab)
    if not live:
        return []
    # the witness each LP point stands for (decide's lp_witness without ties: s raised to
    # finite_s, h' = h / s, scaled into the unit form) and the LP's own point
    wit: list[NDArray[np.float64]] = []
    H: list[NDArray[np.float64]] = []
    S: list[float] = []
    at: list[tuple[int, int]] = []  # the columns of each label's witness and LP point
    for lab in live:
        lp = lab.lp
        assert lp is not None
        w = witness_of(lp.h, finite_s(sp, lp.s, lp.t), sp)
        hu, su = unit_form(w, sp)
        wit.append(w)
        H.append(hu)
        S.append(su)
        if su == lp.s and np.array_equal(hu, lp.h):  # no bias: the LP's point itself
            at.append((len(H) - 1, len(H) - 1))
        else:
            H.append(lp.h)
            S.append(lp.s)
            at.append((len(H) - 2, len(H) - 1))
    Z = _logits(sp, np.stack(H, axis=1), np.array(S))
    owner = np.zeros(len(H), dtype=np.int64)
    for lab, (c0, c1) in zip(live, at):
        owner[[c0, c1]] = lab.i
    m = _margins(Z, owner)
    still: list[_Label] = []
    for a, lab in enumerate(live):
        lp = lab.lp
        assert lp is not None
        c0, c1 = at[a]
        mw, m_opt, z = float(m[c0]), float(m[c1]), Z[:, c0]
        if not (mw > tol and m_opt >= lp.t - 1e-9 * tol / sp.rtol):  # not proven optimal
            new = _group_rows(sp, np.array([lab.i]), z, _ADD_GROUP, lab.active)
            new = [rc for rc in new if z[rc[0]] - z[rc[1]] < lp.t]
            if new:
                lab.active.update(new)
                lab.order.extend(new)
                still.append(lab)
                continue
            if not mw > tol:
                continue  # undecided (decided at the end)
            # else the LP could not close the gap: a witness all the same
        lab.result = Feasibility("argmaxable", (head.labels[lab.i],), "yes", mw, tol, wit[a],
                                 None, sp.formulation, lab.method(V), lab.solves,
                                 lp_optimum=lp.t)
        if tick is not None:
            tick()
    return still


__all__ = ["optimal_margins"]
