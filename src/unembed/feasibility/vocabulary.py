"""Which labels of a whole vocabulary are argmaxable: a fast pass, then exact LPs.

0. Wide heads (V - 1 <= d, ``radius=None``): when the rows are affinely independent every
   label is argmaxable, with a witness from one QR factorisation and no LP (the theorem and
   its proof are in :mod:`unembed.feasibility.span`); each witness is re-checked in float64
   and labels it does not settle go on to step 1.
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
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed._progress import Bars, progress_bars
from unembed.device import resolve_device
from unembed.feasibility._core import (
    Certificate,
    Feasibility,
    Radius,
    Realises,
    Space,
    certify,
    make_space,
    with_bound,
)
from unembed.feasibility.fast_pass import Scores, fast_block, fast_unit, rebuild
from unembed.feasibility.lp_workers import Runner
from unembed.feasibility.narrowest import optimal_margins
from unembed.feasibility.questions import identical_reason
from unembed.feasibility.result import Rtol, SearchBound
from unembed.feasibility.sketch import (
    Sketch,
    choose_rank,
    covariance32,
    principal_basis,
    rank_ladder,
)
from unembed.feasibility.space import MEANING
from unembed.feasibility.span import SpanWitnesses, span_note, span_witnesses
from unembed.head import Head, LabelRef

if TYPE_CHECKING:  # pragma: no cover
    from unembed.engine import RayEngine





@dataclass(frozen=True)
class SketchInfo:
    """How the fast pass bounded each label's rivals (:mod:`unembed.feasibility.sketch`).

    Attributes
    ----------
    rank : int
        The sketch's rank; 0 when every rival was computed (no sketch).
    chosen : str
        Why that rank: "given", "cheapest on a sample block", "no rank paid on a sample
        block", "head too small to need one", "off on this device", "off (sketch=0)".
    tried : dict rank -> float
        Per rank tried on a block of labels drawn across the vocabulary: the share of a
        sample of rows whose bound reached some label's cut (each such row is computed
        exactly).
    exact_share : float or None
        The share of all (label, rival) logits computed exactly in the fast pass (None when
        its blocks ran on Ray workers, which do not report it).
    """

    rank: int
    chosen: str
    tried: dict[int, float] = field(default_factory=dict)
    exact_share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "chosen": self.chosen,
                "tried": {str(k): v for k, v in self.tried.items()},
                "exact_share": self.exact_share}


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
        "fast", "span" (V - 1 <= d and affinely independent rows: see
        :mod:`unembed.feasibility.span`), "lp" or "identical" (see ``reasons``).
    tol : float
        ``rtol`` times the largest value a row can take (see ``rtol``).
    formulation : str
    lp_results : dict label index -> Feasibility
        Every label decided by an LP, with its witness or certificate.
    narrowest : list of Feasibility
        The argmaxable labels with the smallest exact margins.
    narrowest_exact : bool
        True when no other label can have a smaller margin than the last one listed.
    hidden_bound : SearchBound
        The bound on h used: its ``kind`` ("unbounded" or "box"), ``source`` ("none",
        "caller" or "architecture"), ``radius``, ``radii`` (per-coordinate), ``reason`` and
        ``meaning`` (what a "yes" and a "no" then prove about the model).
    realises : {"W h + b", "W h"}
        The logits on which every witness makes its label the strict argmax (``"W h"`` only
        for ``bias=False`` on a head with a bias).
    reasons : dict label index -> str
        Labels decided without an LP, with why: a row identical to another label's whose bias
        is at least as large (method "identical"; such a label is never the strict argmax).
    notes : tuple of str
        What else the reader needs to know (e.g. labels settled by the span theorem).
    rtol : Rtol
        The value and where it came from ("given" or "default for storage dtype D"): by
        default the
        relative tolerance follows the head's storage dtype (:mod:`unembed._tolerance`).
    sketch : SketchInfo
        How the fast pass bounded the rivals. With a sketch, the margin of a "fast" label is
        a proven lower bound that can lie well below its witness's own margin (a rival left
        out counts with its bound), so the narrowest list ranks labels by those bounds.
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
    hidden_bound: SearchBound = field(
        default_factory=lambda: SearchBound("none", MEANING["unbounded"]))
    realises: Realises = "W h + b"
    reasons: dict[int, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    _recipes: dict[int, tuple[NDArray[np.int64], NDArray[np.float64], float]] = field(
        repr=False, default_factory=dict)
    _span: SpanWitnesses | None = field(repr=False, default=None)
    _head: Head | None = field(repr=False, default=None)
    rtol: Rtol | None = None
    sketch: SketchInfo = field(default_factory=lambda: SketchInfo(0, "not run"))

    def __repr__(self) -> str:
        """One line: how many labels are argmaxable or not, how each was decided, the
        narrowest list (the fields hold every label: ``to_frame()`` shows them)."""
        n = {k: int((self.status == k).sum()) for k in ("yes", "no", "undecided")}
        how = {k: int((self.method == k).sum()) for k in ("fast", "span", "lp", "identical")}
        no = ", ".join(repr(x) for x in self.unargmaxable[:3])
        no += ", …" if n["no"] > 3 else ""
        return (f"VocabularyResult(V={len(self.labels)}: {n['yes']} yes, {n['no']} no"
                f"{f' ({no})' if no else ''}, {n['undecided']} undecided; fast pass "
                f"{how['fast']}, span {how['span']}, LP {how['lp']}, identical "
                f"{how['identical']}; narrowest {len(self.narrowest)} "
                f"{'exact' if self.narrowest_exact else 'not proven exact'}; tol {self.tol:.2g})")

    def _repr_html_(self) -> str:
        from unembed._display import html

        return html("vocabulary", self)

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
            raise UnembedError("This VocabularyResult holds no head to rebuild witnesses from.")
        i = self._head.index(label)
        if self.method[i] == "span" and self._span is not None:
            return self._span.witness(self._head.W, i)
        if i in self.lp_results:
            return self.lp_results[i].witness
        if i not in self._recipes:
            return None
        return rebuild(self._head.W, self._head.stats.mean(), i, self._recipes[i])


    def to_dict(self) -> dict[str, Any]:
        counts = {k: int((self.status == k).sum()) for k in ("yes", "no", "undecided")}
        return {
            "n_labels": len(self.labels),
            "counts": counts,
            "unargmaxable": self.unargmaxable,
            "undecided": self.undecided,
            "tol": self.tol,
            "rtol": None if self.rtol is None else self.rtol.to_dict(),
            "formulation": self.formulation,
            "hidden_bound": self.hidden_bound.to_dict(),
            "realises": self.realises,
            "reasons": {self.labels[i]: why for i, why in self.reasons.items()},
            "notes": list(self.notes),
            "span": int((self.method == "span").sum()),
            "fast_pass": int((self.method == "fast").sum()),
            "lp": int((self.method == "lp").sum()),
            "narrowest": [{"label": r.labels[0], "margin": _optimum(r),
                           "witness_margin": r.margin} for r in self.narrowest],
            "narrowest_exact": self.narrowest_exact,
            "sketch": self.sketch.to_dict(),
            "certificates": {self.labels[i]: r.certificate.to_dict()
                             for i, r in self.lp_results.items()
                             if r.status == "no" and r.certificate is not None},
        }


# ---------------------------------------------------------------------------------- driver
def argmaxable_all(
    head: Head,
    *,
    bias: bool = True,
    radius: Radius = None,
    rtol: float | None = None,
    steps: int = 6,
    block: int = 256,
    workers: int | None = None,
    n_narrowest: int = 10,
    narrowest_budget: int = 20,
    progress: bool = False,
    engine: RayEngine | None = None,
    device: str | None = None,
    sketch: int | None = None,
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
    rtol : float, optional
        Margins below rtol times the largest row value count as no; default by the head's
        storage dtype (:func:`unembed.feasibility._core.default_rtol`), said in ``rtol``.
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
    engine : RayEngine, optional
        Run the fast pass's blocks and the LPs as units on Ray (:mod:`unembed.engine`):
        the same verdicts; every LP witness is checked again in this process.
    device : str, optional
        Run the fast pass's float32 products on this torch device ("cpu", "cuda", ...; see
        :mod:`unembed.device`) instead of numpy: the same float32 arithmetic and the same
        proven bound. The LPs run on the CPU.
    sketch : int, optional
        The fast pass on the host bounds rivals through a rank-k sketch of the rows
        (:mod:`unembed.feasibility.sketch`) and computes exactly only those whose bound
        reaches the label's cut. None: k chosen on a block of labels drawn across the
        vocabulary by measured cost
        among :func:`~unembed.feasibility.sketch.rank_ladder` (no sketch on small heads or
        when none pays); 0: no sketch (every rival computed, V^2 d work); k > 0: that rank.
        The verdicts are proven either way.

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
    # cached, computed in blocks; no float32 copy of W either (see fast_pass.Scores)
    mean, norms = head.stats.mean(), head.stats.norms()
    lower = np.full(V, -np.inf)
    scale = np.ones(V)
    recipes: dict[int, tuple[NDArray[np.int64], NDArray[np.float64], float]] = {}
    span = span_witnesses(sp)
    by_span = span.settled if span is not None else np.zeros(V, dtype=bool)
    if span is not None:
        lower[by_span] = span.margin[by_span]
    fast = np.flatnonzero(~by_span)
    notes: list[str] = []
    scores: Scores | None = None
    with progress_bars(progress, transient=False) as bar:
        blocks = [fast[start:start + block] for start in range(0, fast.size, block)]
        sk = None
        info = SketchInfo(0, "off on this device" if device is not None else
                          "off (sketch=0)" if sketch == 0 else "no fast pass")
        if device is None and blocks and sketch != 0:
            # the rank is measured on runs of labels drawn across the vocabulary: the first
            # rows of a real vocabulary are often special or unused tokens, unlike the rest
            probe = _probe(fast, block)
            sk, info = _choose_sketch(head, sp.tol, probe, block, sketch, bar)
        task = bar.add("fast pass (float32 blocks)", int(fast.size))
        done: Iterable[tuple[NDArray[np.float64], list[list[tuple[int, float]]],
                             NDArray[np.float64], NDArray[np.int64]]]
        if engine is not None:
            done = engine.map(fast_unit, (W, mean, norms, sp, steps, sk), blocks)
        else:
            dev = None if device is None else resolve_device(device)
            scores = Scores(W, sp.b.astype(np.float32), norms.astype(np.float32), dev, sk)
            done = (fast_block(scores, W, mean, norms, sp, idx, steps) for idx in blocks)
        for idx, (low, rec, sc, _) in zip(blocks, done):
            lower[idx] = low
            scale[idx] = sc
            for a, i in enumerate(idx.tolist()):
                recipes[i] = (np.array([x[0] for x in rec[a]], dtype=np.int64),
                              np.array([x[1] for x in rec[a]]), float(sc[a]))
            bar.advance(task, idx.size)
        settled = (lower > sp.tol) | by_span  # span margins: proven > 0, any tolerance
        identical = _identical(head, sp)
        settled[list(identical)] = False
        left = np.setdiff1d(np.flatnonzero(~settled), list(identical))
        # the narrowest-margin LPs refine fast-pass labels only (labels settled by the span
        # theorem have V - 1 <= d: an LP in R^d for each would cost what the theorem saves)
        refine = settled & ~by_span
        if engine is not None:
            workers = engine.workers
        task = bar.add(f"exact LPs ({workers} workers)", int(left.size))
        tasks: list[tuple[int, NDArray[np.float64] | None, bool]] = [
            (int(i), rebuild(W, mean, int(i), recipes[int(i)]), True) for i in left]
        runner = Runner(head, sp, workers, engine)
        try:
            lp_results = runner.run(tasks, lambda: bar.advance(task, 1))
            exact, narrow_exact = _narrowest(runner, bar, W, mean, lower, refine, recipes,
                                             lp_results, n_narrowest, narrowest_budget)
        finally:
            runner.close()
    status = np.where(settled, "yes", "undecided").astype("<U9")
    method = np.where(settled, "fast", "lp").astype("<U9")
    method[by_span] = "span"
    if info.rank:
        share = (scores.pairs[0] / scores.pairs[1] if scores is not None and scores.pairs[1]
                 else None)
        info = SketchInfo(info.rank, info.chosen, info.tried, share)
        notes.append(
            f"fast pass: rivals bounded through a rank-{info.rank} sketch of the rows' top "
            "principal directions ("
            + (f"{100 * share:.3g}% of the rival logits computed exactly" if share is not None
               else "blocks on Ray workers") + "); a fast-pass margin is then a proven lower "
            "bound that may lie well below its witness's own margin, and the narrowest list "
            "ranks labels by those bounds (--sketch 0 for witnesses' own margins)")
    if by_span.any():
        narrow_exact = False
        assert span is not None
        notes.append(span_note(span, sp.tol))
    if narrow_exact and exact and sp.span is not None:
        narrow_exact = False
        notes.append("LPs solved in the rows' span (2 V <= d): their margins are the lifted "
                     "witnesses' margins in R^d, lower bounds on the R^d optima, so the "
                     "narrowest list is not called exact")
    margin = lower.copy()
    reasons: dict[int, str] = {}
    for i, r in identical.items():
        lp_results[i] = r
        method[i] = "identical"
        reasons[i] = str(r.reason)
    for i, r in lp_results.items():
        status[i] = r.status
        margin[i] = r.margin
        if not settled[i] and i not in identical:
            method[i] = "lp"
    narrow_idx = sorted(exact, key=lambda i: exact[i])[:n_narrowest]
    keep = {i: rc for i, rc in recipes.items() if settled[i] and not by_span[i]}
    rtol_info = Rtol(sp.rtol, sp.rtol_from)
    # LPs in worker processes knew the value, not its origin
    lp_results = {i: replace(r, rtol=rtol_info) for i, r in lp_results.items()}
    narrowest = [lp_results[i] for i in narrow_idx]
    return VocabularyResult(head.labels, status, margin, method, sp.tol, sp.formulation,
                            lp_results, narrowest, narrow_exact, sp.bound, sp.realises,
                            reasons, tuple(notes), keep, span, head, rtol=rtol_info,
                            sketch=info)


_PROBE_RUNS = 4


def _probe(fast: NDArray[np.int64], block: int) -> NDArray[np.int64]:
    """:data:`_PROBE_RUNS` runs of block / 4 consecutive labels of ``fast`` at random places
    (seeded): what the sketch's rank is measured on (a block's cost is its run's union)."""
    run = max(1, block // _PROBE_RUNS)
    if fast.size <= run * _PROBE_RUNS:
        return fast
    starts = np.sort(np.random.default_rng(0x5C).choice(fast.size - run + 1, _PROBE_RUNS,
                                                        replace=False))
    return np.concatenate([fast[s:s + run] for s in starts])


def _choose_sketch(head: Head, tol: float, first: NDArray[np.int64], block: int,
                   rank: int | None, bar: Bars) -> tuple[Sketch | None, SketchInfo]:
    """The fast pass's sketch (:mod:`unembed.feasibility.sketch`): the rows' top principal
    directions (from the head's covariance when cached, else a float32 one), then the rank:
    ``rank`` when given, else the cheapest of the ladder, measured on one block of witnesses
    (``first``: labels drawn across the vocabulary) against a sample of the rows (no sketch
    when no rank pays, or on heads too small to need one); then the coefficients of every row
    at that rank."""
    V, d = head.W.shape
    ranks = rank_ladder(V, d, block) if rank is None else (int(rank),)
    if not ranks:
        return None, SketchInfo(0, "head too small to need one")
    task = bar.add("fast pass: sketch (covariance, basis, rank, coefficients)", 4)
    W, mean = head.W, head.stats.mean()
    cov = head.stats.cached_covariance()
    if cov is None:
        cov = covariance32(W, mean)
    bar.advance(task, 1)
    if rank is not None:
        P = principal_basis(cov, max(ranks))
        bar.advance(task, 1)
        q, info = P.shape[1], SketchInfo(P.shape[1], "given")
    else:
        # the basis for the smallest rank first: wider ones only when one could pay
        # (choose_rank stops at the first rank at or above the least cost so far)
        bases = [principal_basis(cov, min(ranks))]
        bar.advance(task, 1)
        H = W[first] - mean
        H /= np.maximum(np.abs(H).max(axis=1), 1e-300)[:, None]
        own = np.einsum("ij,ij->i", H, W[first])

        def wider(_: int) -> NDArray[np.float64]:
            bases.append(principal_basis(cov, max(ranks)))
            return bases[-1]

        q, share = choose_rank(W, mean, bases[0], ranks, H, own, first, tol,
                               groups=_PROBE_RUNS, wider=wider)
        if not q:
            return None, SketchInfo(0, "no rank paid on a sample block", share)
        info = SketchInfo(q, "cheapest on a sample block", share)
        P = bases[-1]
    bar.advance(task, 1)
    sk = Sketch.build(W, mean, P[:, :q])
    bar.advance(task, 1)
    return sk, info


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
                reason=identical_reason(head.labels[j])), sp)
    return out


def _optimum(r: Feasibility) -> float:
    """The LP's optimum (the exact margin, a supremum when only reached as |h| -> inf)."""
    return r.margin if r.lp_optimum is None else float(r.lp_optimum)


def _narrowest(runner: Runner, bar: Bars, W: NDArray[np.float64], mean: NDArray[np.float64],
               lower: NDArray[np.float64], settled: NDArray[np.bool_],
               recipes: dict[int, tuple[NDArray[np.int64], NDArray[np.float64], float]],
               lp_results: dict[int, Feasibility], n: int, budget: int
               ) -> tuple[dict[int, float], bool]:
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
        if runner.engine is not None:
            batch = pool[: max(1, runner.workers)]
        else:
            # in lockstep (feasibility.narrowest): every label whose bound lies below the
            # n-th exact margin so far needs its LP unless a smaller margin turns up first;
            # these are a prefix of the pool, so the labels refined are those refined one
            # batch at a time (and a list proven exact is the same list)
            size = (max(n - len(exact), runner.workers, 1) if kth == np.inf else
                    max(1, sum(1 for i in pool if lower[i] < kth)))
            # at most _LOCKSTEP open LP models at once: each holds its rows densely, and
            # HiGHS's own copies of them (about 0.14 GB each on a 4096-wide head)
            batch = pool[: min(budget - spent, size, max(_LOCKSTEP, runner.workers))]
        pool = pool[len(batch):]
        tasks = [(i, rebuild(W, mean, i, recipes[i])) for i in batch]
        if runner.engine is not None:
            got = runner.run([(i, h, True) for i, h in tasks], lambda: bar.advance(task, 1))
        else:
            got = optimal_margins(runner.head, runner.sp, tasks, threads=runner.workers,
                                  tick=lambda: bar.advance(task, 1))
        spent += len(batch)
        for i, r in got.items():
            if r.status == "yes":
                exact[i] = _optimum(r)
                lp_results[i] = r


#: How many narrowest-margin LPs advance in lockstep at most (their HiGHS models are open at
#: once: the peak memory of the command on a large head).
_LOCKSTEP = 4

__all__ = ["SketchInfo", "VocabularyResult", "argmaxable_all"]
