"""Single questions (argmaxable, top two, ranking, top-k set, sigmoid combination), the
enumerations over small label sets, and the co-top matrix of a label set.

All answers are :class:`~unembed.feasibility.Feasibility` objects decided as described in
:mod:`unembed.feasibility._core`: "yes" with a witness hidden state, "no" with a dual
certificate, margins in the unit form.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import fail
from unembed.feasibility._core import (
    RTOL,
    Feasibility,
    Radius,
    Realises,
    Space,
    decide,
    make_problem,
    make_space,
    unit_form,
    with_bound,
)
from unembed.head import Head, LabelRef

_MAX_ENUM = 8


# ---------------------------------------------------------------------------------- starts
def _scaled(h: NDArray[np.float64], sp: Space) -> list[NDArray[np.float64]]:
    """Candidate hidden states along direction h: the box edge, or growing sizes when the
    bias is used without a radius (the bias stops mattering as |h| grows)."""
    n = float(np.abs(h).max(initial=0.0))
    if n == 0 or not np.isfinite(n):
        return []
    u = h / n
    if sp.radius is not None:
        return [h / float(sp.box_factor(h))]
    if not np.any(sp.b != 0):
        return [u]
    return [u * k for k in (1.0, 1e2, 1e4, 1e7)]


def argmax_start(W: NDArray[np.float64], i: int, steps: int = 8) -> NDArray[np.float64]:
    """The centered row u_i - m, then up to ``steps`` reflections across the hyperplane
    (u_i - u_j) . h = 0 of whichever label j beats i (bias ignored: a direction)."""
    h = W[i] - W.mean(axis=0)
    for _ in range(steps):
        z = W @ h
        zi = z[i]
        z[i] = -np.inf
        j = int(np.argmax(z))
        gap = zi - z[j]
        delta = W[i] - W[j]
        dd = float(delta @ delta)
        if gap > 0 or dd == 0:  # dd = 0: an identical row, no hyperplane to reflect across
            break
        h = h - 2 * gap / dd * delta
    return h


def _weighted_start(W: NDArray[np.float64], idx: Sequence[int],
                    weights: Sequence[float]) -> NDArray[np.float64]:
    m = W.mean(axis=0)
    return np.sum([w * (W[i] - m) for i, w in zip(idx, weights)], axis=0)


# ---------------------------------------------------------------------------------- questions
def is_argmaxable(
    head: Head, label: LabelRef, *, bias: bool = True, radius: Radius = None,
    rtol: float = RTOL,
) -> Feasibility:
    """Is ``label`` the strict argmax of the logits for some hidden state?

    LP: maximise t s.t. z_i - z_k >= t for every k != i, with h in the unit box and the bias
    scaled by s in [0, 1] (``radius=None``: exact for every h in R^d), or h in a box with the
    full bias (for trunks that bound h). ``bias=False`` drops the bias (the answer as
    |h| -> inf). Rows are generated lazily for large heads; the witness is checked against
    every label. See :mod:`unembed.feasibility._core` for the decision rule. The other
    questions take ``bias``, ``radius`` and ``rtol`` with the same meaning.

    Parameters
    ----------
    head : Head
        Any link; a soft-cap or logit scale does not change the answer (both are increasing).
    label : str or int
        The label ("#N" or an int for row N).
    radius : None, float, array of shape (d,) or "architecture"
        None: any h in R^d (exact). R: |h|_inf <= R. r (d,): |h_j| <= r_j. "architecture":
        the box the head's source recorded in ``head.hidden_bound`` (e.g. from a
        final RMSNorm: |h_j| <= |g_j| sqrt(d)); it contains every hidden state the model can
        produce but is a relaxation, so a "no" is a proof for the model and a "yes" a witness
        in the box that the model may not reach (``extra["claim"]`` says which).

    Returns
    -------
    Feasibility
        ``witness`` (d,) float64 makes ``label`` the strict argmax of the logits named by
        ``realises``: ``W h + b`` (the order of ``head.logits``), or ``W h`` for
        ``bias=False`` on a head with a bias. For a "no", ``certificate.weights`` are convex
        weights with u_label ~ sum_k w_k u_k; a row identical to another label's (with a bias
        at most as large) is named in ``extra["reason"]``.

    Examples
    --------
    >>> import numpy as np
    >>> from unembed import Head
    >>> W = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [0.3, 0.3]])
    >>> is_argmaxable(Head(W), 3).status    # row 3 lies inside the triangle of the others
    'no'
    >>> r = is_argmaxable(Head(W), 0)
    >>> r.status, int(np.argmax(Head(W).logits(r.witness)))
    ('yes', 0)
    """
    sp = make_space(head, bias=bias, radius=radius, rtol=rtol, func="is_argmaxable")
    i = head.index(label)
    pb = make_problem(groups=[[i]])
    r = decide(head, sp, pb, question="argmaxable", labels=(head.labels[i],),
               starts=_scaled(argmax_start(head.W, i), sp))
    same = np.flatnonzero(np.all(head.W == head.W[i], axis=1) & (sp.b >= sp.b[i]))
    same = same[same != i]
    if same.size:
        r.extra["reason"] = identical_reason(head.labels[int(same[0])])
    return r


def identical_reason(other: str) -> str:
    """Why a label whose row equals ``other``'s (with a bias at most as large) is never the
    strict argmax."""
    return (f"its row is identical to that of {other!r}, whose bias is at least as large: "
            f"z_label <= z_{other} at every hidden state, so it is never the strict argmax")


def can_be_top_two(
    head: Head, a: LabelRef, b: LabelRef, *, bias: bool = True, radius: Radius = None,
    rtol: float = RTOL,
) -> Feasibility:
    """Can labels ``a`` and ``b`` be the top two together: z_a = z_b > z_k + t for all others?

    Then scaling the witness's direction drives p_a = p_b -> 1/2 (softmax, no soft-cap; a
    soft-cap bounds the logits, so the limit is then smaller). The tie is an equality row of
    the LP; the witness is projected onto it, so z_a = z_b holds on the logits it
    ``realises`` to float64 rounding (and within tol in the unit form). An LP optimum above
    ``CLEAR * tol`` is always a "yes" (see :mod:`unembed.feasibility._core`), also when it
    is only reached as |h| -> inf. Identical rows u_a = u_b with different biases never tie:
    "no", with the reason in ``extra["reason"]``. Everything else as in
    :func:`is_argmaxable`.

    Examples
    --------
    >>> import numpy as np
    >>> from unembed import Head
    >>> W = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.8], [-1.0, -1.0]])
    >>> # row 2 lies between rows 0 and 1 in direction: 0 and 1 never lead together
    >>> can_be_top_two(Head(W), 0, 1).status, can_be_top_two(Head(W), 0, 2).status
    ('no', 'yes')
    """
    sp = make_space(head, bias=bias, radius=radius, rtol=rtol, func="can_be_top_two")
    i, j = head.index(a, argument="a"), head.index(b, argument="b")
    if i == j:
        raise fail(f"The 'a' and 'b' arguments of can_be_top_two must be two different labels. "
                   f"Got {head.labels[i]!r} twice.")
    return _top_two(head, sp, i, j)


def _top_two(head: Head, sp: Space, i: int, j: int) -> Feasibility:
    labels = (head.labels[i], head.labels[j])
    if sp.b[i] != sp.b[j] and np.array_equal(head.W[i], head.W[j]):
        gap = float(sp.b[i] - sp.b[j])
        return with_bound(Feasibility(
            "top_two", labels, "no", -abs(gap), sp.tol, None, None, sp.formulation,
            "identical rows", 0, {"reason": f"the rows of {labels[0]!r} and {labels[1]!r} "
                                  f"are identical, so z_a - z_b = b_a - b_b = {gap:.6g} at "
                                  f"every hidden state: they never tie"}), sp)
    pb = make_problem(eq=[(i, j)], groups=[[i, j]])
    return decide(head, sp, pb, question="top_two", labels=labels,
                  starts=_top_two_starts(head, sp, i, j))


def top_two_start(W: NDArray[np.float64], i: int, j: int, steps: int = 8
                  ) -> NDArray[np.float64]:
    """A direction with z_i = z_j (bias ignored): the centered mid-row projected onto
    (u_i - u_j) . h = 0, then up to ``steps`` reflections across the hyperplane
    (u_i + u_j) / 2 . h = u_k . h of whichever label k beats the pair, taken within that
    projection (so the tie is kept)."""
    delta = W[i] - W[j]
    dd = float(delta @ delta)

    def proj(x: NDArray[np.float64]) -> NDArray[np.float64]:
        return x - (delta @ x) / dd * delta if dd > 0 else x  # identical rows always tie

    mid = 0.5 * (W[i] + W[j])
    h = proj(mid - W.mean(axis=0))
    for _ in range(steps):
        z = W @ h
        zi = 0.5 * (z[i] + z[j])
        z[[i, j]] = -np.inf
        k = int(np.argmax(z))
        gap = zi - z[k]
        if gap > 0:
            break
        a = proj(mid - W[k])
        aa = float(a @ a)
        if aa == 0:
            break
        h = h - 2 * gap / aa * a
    return h


def _top_two_starts(head: Head, sp: Space, i: int, j: int) -> list[NDArray[np.float64]]:
    W = head.W
    delta = W[i] - W[j]
    dd = float(delta @ delta)
    h = top_two_start(W, i, j)
    h0 = -(sp.b[i] - sp.b[j]) / dd * delta if dd > 0 else np.zeros_like(delta)
    return [x + h0 for x in _scaled(h, sp)]


def is_feasible_ranking(
    head: Head, labels: Sequence[LabelRef], *, top: bool = False, bias: bool = True,
    radius: Radius = None, rtol: float = RTOL,
) -> Feasibility:
    """Is z_{l1} > z_{l2} > ... > z_{lm} for some hidden state (other labels free)?

    ``top=True`` also puts the listed labels above every other label of the head.
    """
    sp = make_space(head, bias=bias, radius=radius, rtol=rtol, func="is_feasible_ranking")
    idx = _distinct(head, labels, "labels", "is_feasible_ranking", 2)
    rows = list(itertools.pairwise(idx))
    pb = make_problem(rows=rows, groups=[idx] if top else [])
    m = len(idx)
    start = _weighted_start(head.W, idx, [float(m - r) for r in range(m)])
    return decide(head, sp, pb, question="ranking", labels=tuple(head.labels[i] for i in idx),
                  starts=_scaled(start, sp))


def is_top_k_set(
    head: Head, labels: Sequence[LabelRef], *, bias: bool = True, radius: Radius = None,
    rtol: float = RTOL,
) -> Feasibility:
    """Are these k labels, in some order, the top k of all labels for some hidden state?"""
    sp = make_space(head, bias=bias, radius=radius, rtol=rtol, func="is_top_k_set")
    idx = _distinct(head, labels, "labels", "is_top_k_set", 1)
    pb = make_problem(groups=[idx])
    start = _weighted_start(head.W, idx, [1.0] * len(idx))
    return decide(head, sp, pb, question="top_k_set",
                  labels=tuple(head.labels[i] for i in idx), starts=_scaled(start, sp))


def is_feasible_combination(
    head: Head, on: Sequence[LabelRef] = (), off: Sequence[LabelRef] = (), *, bias: bool = True,
    radius: Radius = None, rtol: float = RTOL,
) -> Feasibility:
    """Sigmoid heads: can the labels ``on`` all have z > 0 (p > 1/2) while ``off`` all have
    z < 0, for some hidden state? Other labels are free (each sigmoid label is on its own)."""
    func = "is_feasible_combination"
    if head.link != "sigmoid":
        raise fail(f"{func} is about sigmoid heads (labels on and off independently); this "
                   f"head's link is {head.link!r}. Use is_feasible_ranking or is_top_k_set.")
    sp = make_space(head, bias=bias, radius=radius, rtol=rtol, func=func)
    ion = head.indices(on, argument="on")
    ioff = head.indices(off, argument="off")
    if not ion and not ioff:
        raise fail(f"The 'on' and 'off' arguments of {func} must name at least one label.")
    if set(ion) & set(ioff):
        k = sorted(set(ion) & set(ioff))[0]
        raise fail(f"The label {head.labels[k]!r} is in both 'on' and 'off' of {func}.")
    pb = make_problem(rows=[(i, -1) for i in ion] + [(-1, i) for i in ioff])
    start = _weighted_start(head.W, ion + ioff, [1.0] * len(ion) + [-1.0] * len(ioff))
    names = tuple("+" + head.labels[i] for i in ion) + tuple("-" + head.labels[i] for i in ioff)
    return decide(head, sp, pb, question="combination", labels=names,
                  starts=_scaled(start, sp))


def _distinct(head: Head, labels: Sequence[LabelRef], arg: str, func: str, least: int
              ) -> list[int]:
    if isinstance(labels, (str, bytes)):
        raise fail(f"The {arg!r} argument of {func} must be a list of labels. Got a string.")
    idx = head.indices(list(labels), argument=arg)
    if len(idx) < least:
        raise fail(f"The {arg!r} argument of {func} must name at least {least} label(s). "
                   f"Got {len(idx)}.")
    if len(set(idx)) != len(idx):
        dup = next(i for i in idx if idx.count(i) > 1)
        raise fail(f"The {arg!r} argument of {func} names {head.labels[dup]!r} more than once.")
    return idx


# ---------------------------------------------------------------------------------- co-top
@dataclass(frozen=True, eq=False)
class CoTopMatrix:
    """Per pair of a label set: can the pair be the top two of the whole head together?

    Attributes
    ----------
    labels : tuple of str, length n
    feasible : ndarray of bool, shape (n, n)
        Symmetric; the diagonal is False (a label with itself is not a pair).
    margin : ndarray of float64, shape (n, n)
        Unit-form margins (NaN on the diagonal).
    results : dict (i, j) -> Feasibility, for i < j
    hidden_bound : dict
        The bound on h the pairs were decided under (see ``Feasibility.extra``).
    realises : {"W h + b", "W h"}
        The logits every witness realises (see ``Feasibility.realises``).
    """

    labels: tuple[str, ...]
    feasible: NDArray[np.bool_]
    margin: NDArray[np.float64]
    results: dict[tuple[int, int], Feasibility]
    hidden_bound: dict[str, Any] = field(default_factory=dict)
    realises: Realises = "W h + b"

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "feasible": self.feasible.tolist(),
            "margin": [[None if math.isnan(x) else float(x) for x in row]
                       for row in self.margin],
            "status": {f"{self.labels[i]}|{self.labels[j]}": r.status
                       for (i, j), r in self.results.items()},
            "hidden_bound": self.hidden_bound,
            "realises": self.realises,
        }


def co_top_matrix(
    head: Head, labels: Sequence[LabelRef], *, bias: bool = True, radius: Radius = None,
    rtol: float = RTOL,
) -> CoTopMatrix:
    """:func:`can_be_top_two` for every pair of ``labels`` (over the whole head).

    Each pair first tries cheap candidate hidden states (checked against every label); LPs with
    lazily generated rows decide the rest.
    """
    idx = _distinct(head, labels, "labels", "co_top_matrix", 2)
    n = len(idx)
    feas = np.zeros((n, n), dtype=bool)
    marg = np.full((n, n), np.nan)
    results: dict[tuple[int, int], Feasibility] = {}
    sp = make_space(head, bias=bias, radius=radius, rtol=rtol, func="co_top_matrix")
    sp.tol  # noqa: B018  (computed once for all pairs)
    for a, b in itertools.combinations(range(n), 2):
        r = _top_two(head, sp, idx[a], idx[b])
        results[(a, b)] = r
        feas[a, b] = feas[b, a] = r.feasible
        marg[a, b] = marg[b, a] = r.margin
    return CoTopMatrix(tuple(head.labels[i] for i in idx), feas, marg, results, sp.bound,
                       sp.realises)


# ---------------------------------------------------------------------------------- enumerations
@dataclass(frozen=True, eq=False)
class Enumeration:
    """All feasible rankings / top-k sets / sign combinations of a small label set.

    Attributes
    ----------
    kind : {"ranking", "top_k_set", "combination"}
    labels : tuple of str
        The label set (the question is asked within it: other labels of the head are ignored).
    feasible : list of Feasibility
        One per feasible item, each with its witness.
    infeasible : list of Feasibility
        Certificates; for rankings a "no" may be a *prefix* ruling out every ranking that
        starts with it (``extra["covers"]`` rankings).
    undecided : list of Feasibility
    total : int
        Number of items (m!, C(m, k) or 2^m).
    lp_solves, samples : int
        Work done: LPs solved, random hidden states tried first.
    """

    kind: str
    labels: tuple[str, ...]
    feasible: list[Feasibility]
    infeasible: list[Feasibility]
    undecided: list[Feasibility]
    total: int
    lp_solves: int
    samples: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def items(self) -> list[tuple[str, ...]]:
        """The feasible items (rankings, sets or "+a"/"-b" patterns)."""
        return [r.labels for r in self.feasible]

    @property
    def n_feasible(self) -> int:
        return len(self.feasible)

    @property
    def n_infeasible(self) -> int:
        return int(sum(r.extra.get("covers", 1) for r in self.infeasible))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "labels": list(self.labels),
            "total": self.total,
            "n_feasible": self.n_feasible,
            "n_infeasible": self.n_infeasible,
            "n_undecided": len(self.undecided),
            "lp_solves": self.lp_solves,
            "samples": self.samples,
            "feasible": [{"items": list(r.labels), "margin": r.margin, "method": r.method,
                          "witness": None if r.witness is None else r.witness.tolist()}
                         for r in self.feasible],
            "infeasible": [{"items": list(r.labels), "margin": r.margin,
                            "covers": r.extra.get("covers", 1),
                            "certificate": None if r.certificate is None
                            else r.certificate.to_dict()} for r in self.infeasible],
            "undecided": [list(r.labels) for r in self.undecided],
            **self.extra,
        }


def _subhead(head: Head, labels: Sequence[LabelRef], func: str, least: int) -> Head:
    idx = _distinct(head, labels, "labels", func, least)
    if len(idx) > _MAX_ENUM:
        raise fail(f"The 'labels' argument of {func} can name at most {_MAX_ENUM} labels "
                   f"(the count grows like m!). Got {len(idx)}.")
    return head.subset(idx)


def sample_states(sp: Space, n: int, seed: int) -> NDArray[np.float64]:
    """Random hidden states (n, d) spread over the sizes that matter for this space."""
    rng = np.random.default_rng(seed)
    d = sp.W.shape[1]
    if n <= 0:
        return np.zeros((0, d))
    if sp.radius is not None:
        return rng.uniform(-1.0, 1.0, size=(n, d)) * sp.r[None, :]
    H = rng.standard_normal((n, d))
    if np.any(sp.b != 0):
        typical = float(np.abs(sp.b).max()) / max(float(np.linalg.norm(sp.W, axis=1).mean()),
                                                  1e-300)
        sizes = typical * 10.0 ** rng.uniform(-2, 3, size=n) / np.sqrt(d)
        H *= sizes[:, None]
    return H


def _unit_logits(sp: Space, H: NDArray[np.float64]
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Logits at the unit form of each sampled state: (n, V) and the scale factors s (n,)."""
    if sp.radius is not None:
        s = np.ones(H.shape[0])
    else:
        s = 1.0 / np.maximum(1.0, np.abs(H).max(axis=1))
    return (H * s[:, None]) @ sp.W.T + s[:, None] * sp.b, s


def _found(sp: Space, H: NDArray[np.float64], key: Any
           ) -> dict[Any, tuple[float, NDArray[np.float64]]]:
    """Items reached by sampled states with a margin above tol: item -> (margin, witness)."""
    if H.shape[0] == 0:
        return {}
    Z, _ = _unit_logits(sp, H)
    out: dict[Any, tuple[float, NDArray[np.float64]]] = {}
    tol = sp.tol
    for n in range(Z.shape[0]):
        item, m = key(Z[n])
        if m > tol and (item not in out or m > out[item][0]):
            out[item] = (m, H[n])
    return out


def _from_sample(kind: str, names: tuple[str, ...], m: float, h: NDArray[np.float64],
                 sp: Space) -> Feasibility:
    return with_bound(Feasibility(kind, names, "yes", m, sp.tol, np.asarray(h, np.float64),
                                  None, sp.formulation, "sample"), sp)


def enumerate_rankings(
    head: Head, labels: Sequence[LabelRef], *, bias: bool = True, radius: Radius = None,
    rtol: float = RTOL, samples: int = 2000, seed: int = 0,
) -> Enumeration:
    """All feasible orderings of up to 8 labels (within the set: other labels ignored).

    Random hidden states find most feasible orderings cheaply (each kept only with a margin
    above tol); a depth-first search over prefixes decides the rest with LPs, and an
    infeasible prefix (with its certificate) rules out every ordering that starts with it.
    """
    sub = _subhead(head, labels, "enumerate_rankings", 2)
    sp = make_space(sub, bias=bias, radius=radius, rtol=rtol, func="enumerate_rankings")
    m = sub.n_labels
    names = sub.labels

    def key(z: NDArray[np.float64]) -> tuple[tuple[int, ...], float]:
        o = np.argsort(-z, kind="stable")
        return tuple(int(x) for x in o), float(np.min(z[o[:-1]] - z[o[1:]]))

    H = sample_states(sp, samples, seed)
    solved = _solve_every_ranking(sp)
    if solved is not None:
        H = np.vstack([H, solved])
    found = _found(sp, H, key)
    hit: set[tuple[int, ...]] = {r[:k] for r in found for k in range(1, m + 1)}
    feasible: list[Feasibility] = []
    infeasible: list[Feasibility] = []
    undecided: list[Feasibility] = []
    solves = 0
    lp_witness: dict[tuple[int, ...], Feasibility] = {}

    def visit(prefix: tuple[int, ...]) -> None:
        nonlocal solves
        rest = [q for q in range(m) if q not in prefix]
        if len(rest) == 1:
            full = (*prefix, rest[0])
            item = tuple(names[q] for q in full)
            if full in found:
                mg, h = found[full]
                feasible.append(_from_sample("ranking", item, mg, h, sp))
            else:
                r = lp_witness[prefix]
                feasible.append(with_bound(replace(r, labels=item, extra={}), sp))
            return
        for q in rest:
            child = (*prefix, q)
            others = [x for x in range(m) if x not in child]
            if child not in hit:
                rows = list(itertools.pairwise(child)) + [(child[-1], x) for x in others]
                r = decide(sub, sp, make_problem(rows=rows), question="ranking",
                           labels=tuple(names[x] for x in child))
                solves += r.lp_solves
                if r.status != "yes":
                    covers = math.factorial(len(others))
                    r = replace(r, extra={**r.extra, "covers": covers})
                    (infeasible if r.status == "no" else undecided).append(r)
                    continue
                lp_witness[child] = r
            visit(child)

    visit(())
    return Enumeration("ranking", names, feasible, infeasible, undecided, math.factorial(m),
                       solves, samples, {"hidden_bound": sp.bound, "realises": sp.realises})


def _solve_every_ranking(sp: Space) -> NDArray[np.float64] | None:
    """When the m rows are linearly independent (m <= d), W h = t - b has an exact solution
    for every target t: one candidate per ordering (t = m, m-1, ..., 1 in that order), each
    still checked like any sample. None when that does not apply."""
    W = sp.W
    m, d = W.shape
    if m > d or (sp.radius is not None and np.any(sp.b != 0)):
        return None
    sv = np.linalg.svd(W, compute_uv=False)
    if sv[-1] <= 1e-8 * sv[0]:
        return None
    perms = np.array(list(itertools.permutations(range(m))), dtype=np.int64)
    T = np.empty(perms.shape, dtype=np.float64)
    np.put_along_axis(T, perms, np.arange(m, 0, -1, dtype=np.float64)[None, :], axis=1)
    scale = float(np.abs(sp.b).max(initial=0.0)) + 1.0
    H = np.asarray(np.linalg.lstsq(W, (scale * T - sp.b[None, :]).T, rcond=None)[0].T,
                   dtype=np.float64)
    if sp.radius is not None:
        H = np.asarray(H / sp.box_factor(H)[:, None], dtype=np.float64)
    return H


def enumerate_top_k_sets(
    head: Head, labels: Sequence[LabelRef], k: int, *, bias: bool = True,
    radius: Radius = None, rtol: float = RTOL, samples: int = 2000, seed: int = 0,
) -> Enumeration:
    """All k-subsets of up to 8 labels that are the top k within the set for some hidden
    state (other labels ignored)."""
    func = "enumerate_top_k_sets"
    sub = _subhead(head, labels, func, 2)
    m = sub.n_labels
    if not (isinstance(k, (int, np.integer)) and 1 <= k < m):
        raise fail(f"The 'k' argument of {func} must be an integer in [1, {m - 1}]. "
                   f"Got {k!r} instead.")
    sp = make_space(sub, bias=bias, radius=radius, rtol=rtol, func=func)

    def key(z: NDArray[np.float64]) -> tuple[tuple[int, ...], float]:
        o = np.argsort(-z, kind="stable")
        return tuple(sorted(int(x) for x in o[:k])), float(z[o[k - 1]] - z[o[k]])

    found = _found(sp, sample_states(sp, samples, seed), key)
    return _enumerate_items(sub, sp, "top_k_set", list(itertools.combinations(range(m), k)),
                            found, lambda S: make_problem(groups=[list(S)]),
                            lambda S: tuple(sub.labels[x] for x in S), samples)


def enumerate_combinations(
    head: Head, labels: Sequence[LabelRef], *, bias: bool = True, radius: Radius = None,
    rtol: float = RTOL, samples: int = 2000, seed: int = 0,
) -> Enumeration:
    """Sigmoid heads: all on/off patterns of up to 8 labels reachable by some hidden state."""
    func = "enumerate_combinations"
    if head.link != "sigmoid":
        raise fail(f"{func} is about sigmoid heads; this head's link is {head.link!r}. "
                   f"Use enumerate_rankings or enumerate_top_k_sets.")
    sub = _subhead(head, labels, func, 1)
    sp = make_space(sub, bias=bias, radius=radius, rtol=rtol, func=func)
    m = sub.n_labels

    def key(z: NDArray[np.float64]) -> tuple[tuple[bool, ...], float]:
        return tuple(bool(x > 0) for x in z), float(np.abs(z).min())

    found = _found(sp, sample_states(sp, samples, seed), key)
    patterns = list(itertools.product((True, False), repeat=m))

    def problem(p: tuple[bool, ...]) -> Any:
        return make_problem(rows=[(q, -1) if on else (-1, q) for q, on in enumerate(p)])

    def name(p: tuple[bool, ...]) -> tuple[str, ...]:
        return tuple(("+" if on else "-") + sub.labels[q] for q, on in enumerate(p))

    return _enumerate_items(sub, sp, "combination", patterns, found, problem, name, samples)


def _enumerate_items(sub: Head, sp: Space, kind: str, items: list[Any],
                     found: dict[Any, tuple[float, NDArray[np.float64]]], problem: Any,
                     name: Any, samples: int) -> Enumeration:
    feasible: list[Feasibility] = []
    infeasible: list[Feasibility] = []
    undecided: list[Feasibility] = []
    solves = 0
    for it in items:
        if it in found:
            feasible.append(_from_sample(kind, name(it), *found[it], sp))
            continue
        r = decide(sub, sp, problem(it), question=kind, labels=name(it))
        solves += r.lp_solves
        {"yes": feasible, "no": infeasible, "undecided": undecided}[r.status].append(r)
    return Enumeration(kind, sub.labels, feasible, infeasible, undecided, len(items), solves,
                       samples, {"hidden_bound": sp.bound, "realises": sp.realises})


def logits_at(head: Head, witness: NDArray[np.float64], *, bias: bool = True
              ) -> NDArray[np.float64]:
    """The head's logits W h + b (b dropped with ``bias=False``) at a witness, float64 (V,)."""
    z = head.W @ np.asarray(witness, dtype=np.float64)
    return z + head.bias if bias else z


__all__ = [
    "CoTopMatrix",
    "Enumeration",
    "can_be_top_two",
    "co_top_matrix",
    "enumerate_combinations",
    "enumerate_rankings",
    "enumerate_top_k_sets",
    "is_argmaxable",
    "is_feasible_combination",
    "is_feasible_ranking",
    "is_top_k_set",
    "logits_at",
    "unit_form",
]
