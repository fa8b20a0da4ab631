"""Single questions: argmaxable, top two, ranking, top-k set, sigmoid combination (the
enumerations over small label sets and the co-top matrix are in
:mod:`unembed.feasibility.enumerations`).

All answers are :class:`~unembed.feasibility.Feasibility` objects decided as described in
:mod:`unembed.feasibility._core`: "yes" with a witness hidden state, "no" with a dual
certificate, margins in the unit form.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed.feasibility._core import (
    Feasibility,
    Radius,
    Space,
    decide,
    make_problem,
    make_space,
    unit_form,
    with_bound,
)
from unembed.feasibility.result import LpFinding
from unembed.head import Head, LabelRef


# ---------------------------------------------------------------------------------- starts
def scaled_starts(h: NDArray[np.float64], sp: Space) -> list[NDArray[np.float64]]:
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
    rtol: float | None = None,
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
        in the box that the model may not reach (``claim`` says which).
    rtol : float, optional
        Margins below rtol times the largest value a row can take count as no. Default: the
        head's storage dtype's ``lp_rtol`` (:mod:`unembed._tolerance`: 1e-6 for float32 and
        float64, 2^-8 for float16, 2^-5 for bfloat16); ``rtol`` says which was used.

    Returns
    -------
    Feasibility
        ``witness`` (d,) float64 makes ``label`` the strict argmax of the logits named by
        ``realises``: ``W h + b`` (the order of ``head.logits``), or ``W h`` for
        ``bias=False`` on a head with a bias. For a "no", ``certificate.weights`` are convex
        weights with u_label ~ sum_k w_k u_k; a row identical to another label's (with a bias
        at most as large) is named in ``reason``.

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
    r = or_span(decide(head, sp, pb, question="argmaxable", labels=(head.labels[i],),
                       starts=scaled_starts(argmax_start(head.W, i), sp)), sp, (i,), False)
    same = np.flatnonzero(np.all(head.W == head.W[i], axis=1) & (sp.b >= sp.b[i]))
    same = same[same != i]
    if same.size:
        r = replace(r, reason=identical_reason(head.labels[int(same[0])]))
    return r


def identical_reason(other: str) -> str:
    """Why a label whose row equals ``other``'s (with a bias at most as large) is never the
    strict argmax."""
    return (f"its row is identical to that of {other!r}, whose bias is at least as large: "
            f"z_label <= z_{other} at every hidden state, so it is never the strict argmax")


def can_be_top_two(
    head: Head, a: LabelRef, b: LabelRef, *, bias: bool = True, radius: Radius = None,
    rtol: float | None = None,
) -> Feasibility:
    """Can labels ``a`` and ``b`` be the top two together: z_a = z_b > z_k + t for all others?

    Then scaling the witness's direction drives p_a = p_b -> 1/2 (softmax, no soft-cap; a
    soft-cap bounds the logits, so the limit is then smaller). The tie is an equality row of
    the LP; the witness is projected onto it, so z_a = z_b holds on the logits it
    ``realises`` to float64 rounding (and within tol in the unit form). An LP optimum above
    ``CLEAR * tol`` is always a "yes" (see :mod:`unembed.feasibility._core`), also when it
    is only reached as |h| -> inf. Identical rows u_a = u_b with different biases never tie:
    "no", with the reason in ``reason``. Everything else as in
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
        raise UnembedError(f"The 'a' and 'b' arguments of can_be_top_two must be two different "
                           f"labels. "
                           f"Got {head.labels[i]!r} twice.")
    return decide_top_two(head, sp, i, j)


def decide_top_two(head: Head, sp: Space, i: int, j: int) -> Feasibility:
    """:func:`can_be_top_two` for row indices i != j in a prepared space."""
    labels = (head.labels[i], head.labels[j])
    if sp.b[i] != sp.b[j] and np.array_equal(head.W[i], head.W[j]):
        gap = float(sp.b[i] - sp.b[j])
        return with_bound(Feasibility(
            "top_two", labels, "no", -abs(gap), sp.tol, None, None, sp.formulation,
            "identical rows", 0, reason=f"the rows of {labels[0]!r} and {labels[1]!r} are "
                                        f"identical, so z_a - z_b = b_a - b_b = {gap:.6g} at "
                                        f"every hidden state: they never tie"), sp)
    pb = make_problem(eq=[(i, j)], groups=[[i, j]])
    return or_span(decide(head, sp, pb, question="top_two", labels=labels,
                          starts=_top_two_starts(head, sp, i, j)), sp, (i, j), True)


def or_span(r: Feasibility, sp: Space, top: tuple[int, ...], tie: bool) -> Feasibility:
    """``r`` when it is a "yes"; otherwise the span theorem's exact answer where it applies
    (affinely independent rows, :func:`unembed.feasibility.span.exact_answer`: a witness
    whatever the tolerance), with what the LP had found in ``lp``."""
    if r.status == "yes":
        return r
    from unembed.feasibility.span import exact_answer

    ex = exact_answer(r.labels, sp, r.question, top, tie)
    if ex is None:
        return r
    return with_bound(replace(ex, lp_solves=r.lp_solves, lp=LpFinding(r.status, r.margin)), sp)


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
    return [x + h0 for x in scaled_starts(h, sp)]


def is_feasible_ranking(
    head: Head, labels: Sequence[LabelRef], *, top: bool = False, bias: bool = True,
    radius: Radius = None, rtol: float | None = None,
) -> Feasibility:
    """Is z_{l1} > z_{l2} > ... > z_{lm} for some hidden state (other labels free)?

    ``top=True`` also puts the listed labels above every other label of the head.
    """
    sp = make_space(head, bias=bias, radius=radius, rtol=rtol, func="is_feasible_ranking")
    idx = distinct_labels(head, labels, "labels", "is_feasible_ranking", 2)
    rows = list(itertools.pairwise(idx))
    pb = make_problem(rows=rows, groups=[idx] if top else [])
    m = len(idx)
    start = _weighted_start(head.W, idx, [float(m - r) for r in range(m)])
    return decide(head, sp, pb, question="ranking", labels=tuple(head.labels[i] for i in idx),
                  starts=scaled_starts(start, sp))


def is_top_k_set(
    head: Head, labels: Sequence[LabelRef], *, bias: bool = True, radius: Radius = None,
    rtol: float | None = None,
) -> Feasibility:
    """Are these k labels, in some order, the top k of all labels for some hidden state?"""
    sp = make_space(head, bias=bias, radius=radius, rtol=rtol, func="is_top_k_set")
    idx = distinct_labels(head, labels, "labels", "is_top_k_set", 1)
    pb = make_problem(groups=[idx])
    start = _weighted_start(head.W, idx, [1.0] * len(idx))
    return or_span(decide(head, sp, pb, question="top_k_set",
                          labels=tuple(head.labels[i] for i in idx),
                          starts=scaled_starts(start, sp)), sp, tuple(idx), False)


def is_feasible_combination(
    head: Head, on: Sequence[LabelRef] = (), off: Sequence[LabelRef] = (), *, bias: bool = True,
    radius: Radius = None, rtol: float | None = None,
) -> Feasibility:
    """Sigmoid heads: can the labels ``on`` all have z > 0 (p > 1/2) while ``off`` all have
    z < 0, for some hidden state? Other labels are free (each sigmoid label is on its own)."""
    func = "is_feasible_combination"
    if head.link != "sigmoid":
        raise UnembedError(f"{func} is about sigmoid heads (labels on and off independently); this "
                           f"head's link is {head.link!r}. Use is_feasible_ranking or "
                           f"is_top_k_set.")
    sp = make_space(head, bias=bias, radius=radius, rtol=rtol, func=func)
    ion = head.indices(on, argument="on")
    ioff = head.indices(off, argument="off")
    if not ion and not ioff:
        raise UnembedError(f"The 'on' and 'off' arguments of {func} must name at least one label.")
    if set(ion) & set(ioff):
        k = sorted(set(ion) & set(ioff))[0]
        raise UnembedError(f"The label {head.labels[k]!r} is in both 'on' and 'off' of {func}.")
    pb = make_problem(rows=[(i, -1) for i in ion] + [(-1, i) for i in ioff])
    start = _weighted_start(head.W, ion + ioff, [1.0] * len(ion) + [-1.0] * len(ioff))
    names = tuple("+" + head.labels[i] for i in ion) + tuple("-" + head.labels[i] for i in ioff)
    return decide(head, sp, pb, question="combination", labels=names,
                  starts=scaled_starts(start, sp))


def distinct_labels(head: Head, labels: Sequence[LabelRef], arg: str, func: str, least: int
                    ) -> list[int]:
    """Row indices of ``labels`` (argument ``arg`` of ``func``): at least ``least``, none twice,
    or an UnembedError naming the problem."""
    if isinstance(labels, (str, bytes)):
        raise UnembedError("must be a list of labels. Got a string.", argument=arg, function=func)
    idx = head.indices(list(labels), argument=arg)
    if len(idx) < least:
        raise UnembedError(f"must name at least {least} label(s). "
                           f"Got {len(idx)}.", argument=arg, function=func)
    if len(set(idx)) != len(idx):
        dup = next(i for i in idx if idx.count(i) > 1)
        raise UnembedError(f"names {head.labels[dup]!r} more than once.", argument=arg,
                           function=func)
    return idx


def logits_at(head: Head, witness: NDArray[np.float64], *, bias: bool = True
              ) -> NDArray[np.float64]:
    """The head's logits W h + b (b dropped with ``bias=False``) at a witness, float64 (V,)."""
    z = head.W @ np.asarray(witness, dtype=np.float64)
    return z + head.bias if bias else z


__all__ = [
    "argmax_start",
    "can_be_top_two",
    "decide_top_two",
    "distinct_labels",
    "identical_reason",
    "is_argmaxable",
    "is_feasible_combination",
    "is_feasible_ranking",
    "is_top_k_set",
    "logits_at",
    "scaled_starts",
    "top_two_start",
    "unit_form",
]
