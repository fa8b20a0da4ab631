"""Which labels of a whole vocabulary are argmaxable: a fast pass, then exact LPs.

1. Fast pass (no LP). For every label i the start h = u_i - m (the centered row) and up to
   ``steps`` reflections across the hyperplane (u_i - u_j) . h = 0 of whichever label j beats i.
   All starts of a block of labels are tested against all V labels with one float32 matrix
   product; a label is settled only when its float32 margin minus a rigorous bound on the
   rounding error of that product,

       |fl32(u_k . h) - u_k . h| <= (gamma_d + 2 eps32) |u_k|_2 |h|_2,
       gamma_d = d eps32 / (1 - d eps32),  eps32 = 2^-24,

   (the rounding of W and h to float32 included), still exceeds tol. So a settled label's
   margin is a proven lower bound on the float64 margin of its witness.
2. Exact LPs (see :mod:`unembed.feasibility._core`) for the labels left, with lazily
   generated rows (start from the strongest competitors at the fast-pass point, add violated
   labels, the witness checked against all labels), in parallel across processes.
3. The narrowest argmaxable labels: LPs to optimality on the smallest fast-pass bounds until
   the n narrowest exact margins lie below every remaining bound (so the list is exact), or a
   budget runs out (``narrowest_exact`` says which).

With a bias (``radius=None``): the fast pass works on directions and then picks s (the unit
form's bias weight) as large as the direction's margin allows; LPs use the exact formulation.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import fail
from unembed._progress import Bars, progress_bars
from unembed.feasibility._core import (
    RTOL,
    Certificate,
    Feasibility,
    Radius,
    Realises,
    Space,
    certify,
    decide,
    make_problem,
    make_space,
    with_bound,
)
from unembed.feasibility.questions import _scaled, identical_reason
from unembed.head import Head, LabelRef, owned

_EPS32 = 2.0**-24


@dataclass(frozen=True, eq=False)
class VocabularyResult:
    """Every label of a head, argmaxable or not.

    Attributes
    ----------
    labels : tuple of str, length V
    status : ndarray of str, shape (V,)
        "yes", "no" or "undecided" per label.
    margin : ndarray of float64, shape (V,)
        Unit-form margin: a proven lower bound (fast pass), the LP's value (LP), or the exact
        optimum (labels in ``narrowest`` and every "no").
    method : ndarray of str, shape (V,)
        "fast", "lp" or "identical" (see ``reasons``).
    tol : float
    formulation : str
    lp_results : dict label index -> Feasibility
        Every label decided by an LP, with its witness or certificate.
    narrowest : list of Feasibility
        The argmaxable labels with the smallest exact margins.
    narrowest_exact : bool
        True when no other label can have a smaller margin than the last one listed.
    hidden_bound : dict
        The bound on h used: "kind" ("unbounded" or "box"), "source" ("none", "caller" or
        "architecture"), "radius", "radii" (per-coordinate), "reason" and "meaning" (what a
        "yes" and a "no" then prove about the model).
    realises : {"W h + b", "W h"}
        The logits on which every witness makes its label the strict argmax (``"W h"`` only
        for ``bias=False`` on a head with a bias).
    reasons : dict label index -> str
        Labels decided without an LP, with why: a row identical to another label's whose bias
        is at least as large (method "identical"; such a label is never the strict argmax).
    """

    labels: tuple[str, ...]
    status: NDArray[np.str_]
    margin: NDArray[np.float64]
    method: NDArray[np.str_]
    tol: float
    formulation: str
    lp_results: dict[int, Feasibility]
    narrowest: list[Feasibility]
    narrowest_exact: bool
    hidden_bound: dict[str, Any] = field(default_factory=dict)
    realises: Realises = "W h + b"
    reasons: dict[int, str] = field(default_factory=dict)
    _recipes: dict[int, tuple[NDArray[np.int64], NDArray[np.float64], float]] = field(
        repr=False, default_factory=dict)
    _head: Head | None = field(repr=False, default=None)

    @property
    def unargmaxable(self) -> list[str]:
        """Labels proven not argmaxable (margin at most tol for every hidden state)."""
        return [self.labels[i] for i in np.flatnonzero(self.status == "no")]

    @property
    def undecided(self) -> list[str]:
        return [self.labels[i] for i in np.flatnonzero(self.status == "undecided")]

    def witness(self, label: LabelRef) -> NDArray[np.float64] | None:
        """A hidden state (d,) that makes the label the strict argmax of the logits named by
        ``realises`` (None unless "yes"). ``label`` is resolved like :meth:`Head.index`: a
        label string, an integer (numpy integers too) or "#N"."""
        if self._head is None:
            raise fail("This VocabularyResult holds no head to rebuild witnesses from.")
        i = self._head.index(label)
        if i in self.lp_results:
            return self.lp_results[i].witness
        if i not in self._recipes:
            return None
        return _rebuild(self._head.W, i, self._recipes[i])

    def to_dict(self) -> dict[str, Any]:
        counts = {k: int((self.status == k).sum()) for k in ("yes", "no", "undecided")}
        return {
            "n_labels": len(self.labels),
            "counts": counts,
            "unargmaxable": self.unargmaxable,
            "undecided": self.undecided,
            "tol": self.tol,
            "formulation": self.formulation,
            "hidden_bound": self.hidden_bound,
            "realises": self.realises,
            "reasons": {self.labels[i]: why for i, why in self.reasons.items()},
            "fast_pass": int((self.method == "fast").sum()),
            "lp": int((self.method == "lp").sum()),
            "narrowest": [{"label": r.labels[0], "margin": _optimum(r),
                           "witness_margin": r.margin} for r in self.narrowest],
            "narrowest_exact": self.narrowest_exact,
            "certificates": {self.labels[i]: r.certificate.to_dict()
                             for i, r in self.lp_results.items()
                             if r.status == "no" and r.certificate is not None},
        }


# ---------------------------------------------------------------------------------- fast pass
def _fast_block(W32: NDArray[np.floating], W: NDArray[np.float64], norms: NDArray[np.float64],
                sp: Space, idx: NDArray[np.int64], steps: int, m: NDArray[np.float64]
                ) -> tuple[NDArray[np.float64], list[list[tuple[int, float]]],
                           NDArray[np.float64], NDArray[np.int64]]:
    """Starts + reflections for a block of labels. Returns (margin lower bounds, reflection
    recipes, scale factors to the unit box, the strongest competitor of each)."""
    d = W.shape[1]
    gamma = d * _EPS32 / (1 - d * _EPS32) + 2 * _EPS32
    H = W[idx] - m
    recipes: list[list[tuple[int, float]]] = [[] for _ in idx]
    lower = np.full(idx.size, -np.inf)
    scale = np.ones(idx.size)
    rival = np.zeros(idx.size, dtype=np.int64)
    todo = np.arange(idx.size)
    rows = np.arange(idx.size)
    biased = bool(np.any(sp.b != 0))
    bmax = float(np.abs(sp.b).max(initial=0.0))
    b32 = sp.b.astype(np.float32)
    n32 = norms.astype(np.float32)
    nmax = float(norms.max())
    for step in range(steps + 1):
        if todo.size == 0:
            break
        Hs = H[todo]
        inf = np.abs(Hs).max(axis=1)
        k = (1.0 / sp.box_factor(Hs)) if sp.radius is not None else (1.0 / inf)
        Hs = Hs * k[:, None]
        lab = idx[todo]
        r = rows[: todo.size]
        hn = np.linalg.norm(Hs, axis=1)
        # all in float32, in place; every rounding is covered by `slack` and `ei` below
        Z = _times_rows32(Hs.astype(np.float32), W32)  # (n, V) in float32
        zi = Z[r, lab].astype(np.float64)
        ei = gamma * norms[lab] * hn
        slack = 2 * _EPS32 * (hn * nmax * (1 + gamma) + 2 * bmax) + 4 * _EPS32 * bmax
        if sp.radius is not None and biased:
            Z += b32[None, :]
            zi = zi + sp.b[lab]
        Z += (gamma * (1 + 1e-5) * hn).astype(np.float32)[:, None] * n32[None, :]
        Z[r, lab] = -np.inf
        j = np.argmax(Z, axis=1)
        low = (zi - ei) - (Z[r, j].astype(np.float64) + slack)
        if sp.radius is None and biased:
            # unit form (Hs, s): pick s so that the bias costs at most a quarter of the
            # direction's margin per competitor, then recompute the bound with the bias in.
            s = np.clip(low / (4 * bmax), 0.0, 1.0)
            Z += s.astype(np.float32)[:, None] * b32[None, :]
            jb = np.argmax(Z, axis=1)
            low = (zi - ei + s * sp.b[lab]) - (Z[r, jb].astype(np.float64) + slack)
            k = k / np.where(s > 0, s, 1.0)
        lower[todo] = low
        scale[todo] = k
        rival[todo] = j
        left = low <= sp.tol
        if step == steps:
            break
        # reflect the ones still failing across the hyperplane of their strongest rival
        for t in np.flatnonzero(left):
            a = todo[t]
            i, jj = int(idx[a]), int(j[t])
            delta = W[i] - W[jj]
            dd = float(delta @ delta)
            if dd == 0:  # an identical row: no hyperplane to reflect across (LP decides)
                continue
            gap = float(delta @ H[a])
            beta = -2 * gap / dd if gap <= 0 else 1.0 / dd
            H[a] = H[a] + beta * delta
            recipes[a].append((jj, beta))
        todo = todo[left]
    return lower, recipes, scale, rival


def _times_rows32(H32: NDArray[np.float32], W: NDArray[np.floating]) -> NDArray[np.float32]:
    """H32 @ fl32(W)^T (n, V) in float32, W converted to float32 one row block at a time."""
    from unembed._blocks import row_blocks

    if W.dtype == np.float32:
        return np.asarray(H32 @ W.T)
    Z = np.empty((H32.shape[0], W.shape[0]), dtype=np.float32)
    for s, e in row_blocks(W.shape[0], W.shape[1], 1 << 23):
        np.matmul(H32, W[s:e].astype(np.float32).T, out=Z[:, s:e])
    return Z


# ---------------------------------------------------------------------------------- LP workers
_WORKER: dict[str, Any] = {}


def _init_worker(W: NDArray[np.float64], b: NDArray[np.float64], radius: float | None,
                 rtol: float, labels: tuple[str, ...], centered: bool,
                 box: NDArray[np.float64] | None = None,
                 bound: dict[str, Any] | None = None) -> None:
    # owned(W): the head shares the caller's read-only rows (in a forked worker, the parent's
    # pages), never a second copy of them.
    head = Head(owned(W), b=b if np.any(b != 0) else None, labels=labels, strict=False)
    _WORKER["head"] = head
    _WORKER["space"] = Space(head.W, b, radius, rtol, centered=centered, box=box,
                             bound=bound or {})


def _lp_label(task: tuple[int, NDArray[np.float64] | None, bool]) -> Feasibility:
    i, start, optimal = task
    head: Head = _WORKER["head"]
    sp: Space = _WORKER["space"]
    starts = [] if start is None else _scaled(start, sp)
    return decide(head, sp, make_problem(groups=[[i]]), question="argmaxable",
                  labels=(head.labels[i],), starts=starts, optimal=optimal)


class _Runner:
    """Runs label LPs in this process or in one pool of worker processes (made on first use,
    each worker given the head once)."""

    def __init__(self, head: Head, sp: Space, workers: int) -> None:
        self.head, self.sp, self.workers = head, sp, workers
        self.ex: ProcessPoolExecutor | None = None
        self.local = False

    def run(self, tasks: list[tuple[int, NDArray[np.float64] | None, bool]],
            tick: Callable[[], None]) -> dict[int, Feasibility]:
        out: dict[int, Feasibility] = {}
        if not tasks:
            return out
        if self.workers <= 1 or (len(tasks) == 1 and self.ex is None):
            if not self.local:
                _init_worker(self.head.W, self.sp.b, self.sp.radius, self.sp.rtol,
                             self.head.labels, self.sp.centered, self.sp.box, self.sp.bound)
                self.local = True
            for t in tasks:
                out[t[0]] = _lp_label(t)
                tick()
            return out
        if self.ex is None:
            self.ex = ProcessPoolExecutor(
                max_workers=self.workers, initializer=_init_worker,
                initargs=(self.head.W, self.sp.b, self.sp.radius, self.sp.rtol,
                          self.head.labels, self.sp.centered, self.sp.box, self.sp.bound))
        for t, r in zip(tasks, self.ex.map(_lp_label, tasks, chunksize=1)):
            out[t[0]] = r
            tick()
        return out

    def close(self) -> None:
        if self.ex is not None:
            self.ex.shutdown()
        _WORKER.clear()


# ---------------------------------------------------------------------------------- driver
def argmaxable_all(
    head: Head,
    *,
    bias: bool = True,
    radius: Radius = None,
    rtol: float = RTOL,
    steps: int = 6,
    block: int = 256,
    workers: int | None = None,
    n_narrowest: int = 10,
    narrowest_budget: int = 20,
    progress: bool = False,
) -> VocabularyResult:
    """Decide for every label of ``head`` whether it is argmaxable (see the module docstring).

    Parameters
    ----------
    head : Head
        Any link; (V, d) weights, bias used unless ``bias=False``.
    radius : None, float, array of shape (d,) or "architecture"
        None: some h in R^d (exact). A number R: |h|_inf <= R with the bias; an array r:
        |h_j| <= r_j; "architecture": the box recorded by the head's source in
        ``head.hidden_bound`` (a relaxation of what the model can reach: a "no" is
        proven for the model, a "yes" is a witness in the box). ``hidden_bound`` in the
        result says which.
    steps : int
        Reflection steps of the fast pass.
    block : int
        Labels per float32 matrix product (memory: block x V x 12 bytes).
    workers : int, optional
        Processes for the LPs (default: the CPU count, at most 8).
    n_narrowest : int
        How many of the narrowest argmaxable labels to report with exact margins.
    progress : bool
        Show rich progress bars on stderr.

    Returns
    -------
    VocabularyResult
        ``unargmaxable`` lists the labels proven not argmaxable, each with a certificate in
        ``lp_results``; ``witness(label)`` rebuilds the hidden state of any "yes".
    """
    sp = make_space(head, bias=bias, radius=radius, rtol=rtol, func="argmaxable_all")
    V = head.n_labels
    W = head.W
    workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    # The fast pass multiplies in float32, converting W block by block (no float32 copy of
    # the head: the conversion costs 1/block of the product).
    W32: NDArray[np.floating] = W
    norms = head.stats.norms()
    m = head.stats.mean()
    lower = np.full(V, -np.inf)
    scale = np.ones(V)
    recipes: dict[int, tuple[NDArray[np.int64], NDArray[np.float64], float]] = {}
    with progress_bars(progress, transient=False) as bar:
        task = bar.add("fast pass (float32 blocks)", V)
        for start in range(0, V, block):
            idx = np.arange(start, min(V, start + block))
            low, rec, sc, _ = _fast_block(W32, W, norms, sp, idx, steps, m)
            lower[idx] = low
            scale[idx] = sc
            for a, i in enumerate(idx.tolist()):
                recipes[i] = (np.array([x[0] for x in rec[a]], dtype=np.int64),
                              np.array([x[1] for x in rec[a]]), float(sc[a]))
            bar.advance(task, idx.size)
        settled = lower > sp.tol
        identical = _identical(head, sp)
        settled[list(identical)] = False
        left = np.setdiff1d(np.flatnonzero(~settled), list(identical))
        task = bar.add(f"exact LPs ({workers} workers)", int(left.size))
        tasks: list[tuple[int, NDArray[np.float64] | None, bool]] = [
            (int(i), _rebuild(W, int(i), recipes[int(i)], m), True) for i in left]
        runner = _Runner(head, sp, workers)
        try:
            lp_results = runner.run(tasks, lambda: bar.advance(task, 1))
            exact, narrow_exact = _narrowest(runner, bar, W, lower, settled, recipes,
                                             lp_results, n_narrowest, narrowest_budget, m)
        finally:
            runner.close()
    status = np.where(settled, "yes", "undecided").astype("<U9")
    method = np.where(settled, "fast", "lp").astype("<U9")
    margin = lower.copy()
    reasons: dict[int, str] = {}
    for i, r in identical.items():
        lp_results[i] = r
        method[i] = "identical"
        reasons[i] = str(r.extra["reason"])
    for i, r in lp_results.items():
        status[i] = r.status
        margin[i] = r.margin
        if not settled[i] and i not in identical:
            method[i] = "lp"
    narrow_idx = sorted(exact, key=lambda i: exact[i])[:n_narrowest]
    narrowest = [lp_results[i] for i in narrow_idx]
    keep = {i: rc for i, rc in recipes.items() if settled[i]}
    return VocabularyResult(head.labels, status, margin, method, sp.tol, sp.formulation,
                            lp_results, narrowest, narrow_exact, sp.bound, sp.realises,
                            reasons, keep, head)


def _identical(head: Head, sp: Space) -> dict[int, Feasibility]:
    """Labels whose row equals another label's with a bias at least as large, each with its
    "no": the single row z_i - z_j (weight 1) certifies margin <= s (b_i - b_j) <= 0."""
    W = head.W
    key = W @ np.random.default_rng(0x1D).standard_normal(head.d)
    order = np.argsort(key, kind="stable")
    ks = key[order]
    out: dict[int, Feasibility] = {}
    for t in np.flatnonzero(ks[1:] == ks[:-1]):
        run = order[ks == ks[t]]
        for i in run.tolist():
            if i in out:
                continue
            same = run[np.all(W[run] == W[i], axis=1) & (run != i) & (sp.b[run] >= sp.b[i])]
            if not same.size:
                continue
            j = int(same[0])
            P, N = np.array([i]), np.array([j])
            E = np.zeros(0, dtype=np.int64)
            bound, resid, lam, nu = certify(sp, P, N, E, E, np.ones(1), np.zeros(0))
            cert = Certificate(((head.labels[i], head.labels[j]),), lam, (), nu, bound, resid)
            out[i] = with_bound(Feasibility(
                "argmaxable", (head.labels[i],), "no", float(sp.b[i] - sp.b[j]) if
                sp.radius is not None else min(0.0, float(sp.b[i] - sp.b[j])), sp.tol, None,
                cert, sp.formulation, "identical", 0,
                {"reason": identical_reason(head.labels[j])}), sp)
    return out


def _optimum(r: Feasibility) -> float:
    """The LP's optimum (the exact margin, a supremum when only reached as |h| -> inf)."""
    return float(r.extra.get("lp_optimum", r.margin))


def _narrowest(runner: _Runner, bar: Bars, W: NDArray[np.float64], lower: NDArray[np.float64],
               settled: NDArray[np.bool_],
               recipes: dict[int, tuple[NDArray[np.int64], NDArray[np.float64], float]],
               lp_results: dict[int, Feasibility], n: int, budget: int,
               m: NDArray[np.float64]) -> tuple[dict[int, float], bool]:
    """Refine the smallest fast-pass bounds with LPs to optimality until the n smallest exact
    margins lie below every bound not refined (exact list), or the budget runs out."""
    exact = {i: _optimum(r) for i, r in lp_results.items() if r.status == "yes"}
    pool = [int(i) for i in np.flatnonzero(settled)[np.argsort(lower[settled])]]
    task = bar.add("narrowest margins", budget)
    spent = 0
    while True:
        kth = sorted(exact.values())[n - 1] if len(exact) >= n else np.inf
        if not pool or lower[pool[0]] >= kth:
            return exact, True
        if spent >= budget:
            return exact, False
        batch = pool[: max(1, runner.workers)]
        pool = pool[len(batch):]
        got = runner.run([(i, _rebuild(W, i, recipes[i], m), True) for i in batch],
                         lambda: bar.advance(task, 1))
        spent += len(batch)
        for i, r in got.items():
            if r.status == "yes":
                exact[i] = _optimum(r)
                lp_results[i] = r


def _rebuild(W: NDArray[np.float64], i: int,
             recipe: tuple[NDArray[np.int64], NDArray[np.float64], float],
             m: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    js, betas, sc = recipe
    h = W[i] - (W.mean(axis=0) if m is None else m)
    for j, beta in zip(js.tolist(), betas.tolist()):
        h = h + beta * (W[i] - W[j])
    return h * sc


__all__ = ["VocabularyResult", "argmaxable_all"]
