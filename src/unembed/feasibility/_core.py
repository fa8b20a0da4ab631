"""The one LP behind every feasibility question, its witnesses and its certificates.

Every question of :mod:`unembed.feasibility` asks whether some hidden state h makes a set of
*rows* positive. A row is a difference of two logits, ``z_p - z_n`` (softmax orderings), or one
logit with a sign, ``+z_p`` or ``-z_n`` (sigmoid on/off), where ``z = W h + b``. Equalities
``z_p = z_n`` are allowed too (two labels tied on top). Some questions also carry *groups*: a set
S of labels every one of which must beat every label outside S, over the whole head; their rows
(|S| x (V - |S|) of them) are generated lazily.

Formulation (margins in the *unit form*)
----------------------------------------
With G the row vectors (G_r = u_p - u_n), g their bias terms (b_p - b_n), E, e the equality
rows, and r in R^d the box (r_j = R for every j when a single radius R is given), the LP is::

    maximise t   over h in R^d, s, t
    subject to   G h + s g >= t          (every inequality row)
                 E h + s e  = 0          (every equality row)
                 |h_j| <= r_j            (j = 1..d)
                 s in [0, 1]  (``radius=None``, r = 1)   or   s = 1  (a bound given)

* ``radius=None`` (the default) answers "for some h in R^d, with the bias": a hidden state h'
  satisfies the rows iff (h, s) = (h' / max(1, |h'|_inf), 1 / max(1, |h'|_inf)) does, with
  R = 1; s -> 0 is the limit |h'| -> inf, where the bias stops mattering. So the LP is bounded
  and still exact for unbounded h. Without a bias (or ``bias=False``) s plays no role: the
  problem is homogeneous and the unit box only fixes the scale.
* ``radius=R`` answers "for some h with |h|_inf <= R, with the bias"; ``radius=r`` (an array
  of shape (d,)) the same for the per-coordinate box |h_j| <= r_j.
* ``radius="architecture"`` uses the box the head's source recorded in
  ``head.hidden_bound`` (:func:`architecture_bound`, :mod:`unembed.bounds`): e.g. after a
  final RMSNorm with gain g the normalised state n has |n|_2 <= sqrt(d), so the head's input
  h = g * n obeys |h_j| <= |g_j| sqrt(d). That box contains every hidden state the model can
  produce, but not every point of the box is reachable (n also lies on a sphere): it is a
  *relaxation*. So a "no" is a proof about the model (no reachable h does it either), while a
  "yes" is a witness h in the box that the model may or may not reach. Every result says so in its
  ``hidden_bound`` entry (``to_dict()``).

``margin`` is the optimum t (or a witness's recomputed value of the left-hand side): in units of
``W h + b`` at the unit-form hidden state. The logit_scale (positive) and a soft-cap
(cap * tanh(z / cap), strictly increasing and odd) change no sign of any row, so they change no
verdict; margins are reported before them. (A witness of a biased head found in the limit
s -> 0 can be large; the tanh of a soft-cap then saturates in float64 and may show ties that
exact arithmetic does not have: check such witnesses on ``W h + b``.)

Tolerance and decisions (docs/feasibility.md)
---------------------------------------------
``tol = rtol * (2 max_k sum_j r_j |u_kj - m_j| + 2 max_k |b_k - mean b|)``: rtol times a bound
on the largest value a row can take in the box (default rtol: the head's storage dtype's
``lp_rtol`` of :mod:`unembed._tolerance`, 1e-6 for float32 and float64, above float32 rounding of
stored weights, about 6e-8). For softmax heads u_k - m are the centered rows (m the mean row),
so the tolerance, like every verdict, is unchanged by translating all rows or shifting the bias;
for sigmoid heads (no such symmetry) the raw rows and bias are used.

* "yes" only by a witness whose margin, recomputed in float64 from the head over *all* rows
  (every label of every group), exceeds tol; equalities must hold within tol.
* "no" only by a certificate: convex weights lam >= 0 (sum 1) on some inequality rows and any
  weights nu on equality rows, taken from the LP's dual values, with
  ``bound = sum_j r_j |G^T lam + E^T nu|_j + max_s s (lam . g + nu . e) <= tol``. For every feasible
  (h, s): min_r (G h + s g)_r <= lam . (G h + s g) + nu . (E h + s e) <= bound, so no hidden state
  has a margin above ``bound`` (in the unit form: a hidden state h' of any size has logit margin
  at most bound * max(1, |h'|_inf)). The bound is recomputed here from the head, not read from
  the solver. For "is label i argmaxable", lam says u_i ~ sum_k lam_k u_k: label i sits in the
  convex hull of its competitors.
* Anything else is "undecided" (reported with both numbers). An LP optimum above
  ``CLEAR * tol`` (CLEAR = 4) is never left undecided: with the bias and ``radius=None`` the
  optimum may sit at s = 0 (the limit |h| -> inf), where an equality row (the tie of
  :func:`~unembed.feasibility.can_be_top_two`) holds but breaks as soon as s > 0 if nothing
  compensates the bias. The witness is then built from the optimum (h0, 0) and a point
  (h1, s1), s1 > 0, that satisfies every equality exactly (h1 = s1 c, c the least-norm
  solution of E c = -e): on the segment between them every equality still holds, and the
  margin over all rows, a minimum of affine functions, is at least (1 - lam) m0 + lam m1; lam
  is chosen so that it keeps half of m0. The witness h' = h / s is finally projected onto the
  equalities (h' - E^+ (E h' + e)), so the ties hold in float64 to rounding, and re-checked
  (when two rows are nearly identical that projection can move h' far: the unprojected h',
  whose ties hold within tol in the unit form, is then taken).
  "undecided" therefore means an optimum within a factor CLEAR of tol (or a certificate that
  proves only a bound within that band).

Which logits a witness realises
-------------------------------
Every result says it in ``realises``: ``"W h + b"`` (the bias used, or a head without one) or
``"W h"`` (``bias=False`` on a head whose bias is not zero: the answer as |h| -> inf, where
the bias stops mattering; the witness need not realise the ordering on ``W h + b``). The logit
scale and soft-cap of ``head.logits`` are applied after these and change no ordering.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from unembed.feasibility.lp import LPResult, certify, row_matrix, solve_lp
from unembed.feasibility.lp_model import open_lp
from unembed.feasibility.result import (
    Certificate,
    Feasibility,
    Realises,
    Rtol,
    Status,
    claim,
)
from unembed.feasibility.space import (
    MEANING,
    Radius,
    Space,
    architecture_bound,
    default_rtol,
    make_space,
    resolve_radius,
)
from unembed.head import Head

#: An LP optimum above CLEAR * tol is always answered "yes" with a witness.
CLEAR = 4.0

#: Default relative tolerance: margins below rtol * (largest possible row value) are "no".
RTOL = 1e-6
_FULL_GROUP = 1024  # groups with at most this many outside labels start with all of them
_START_GROUP = 64  # otherwise: the strongest competitors at the start point
_ADD_GROUP = 32  # most violated rows added per member of S and generation round

__all__ = [
    "CLEAR",
    "MEANING",
    "RTOL",
    "Certificate",
    "Feasibility",
    "LPResult",
    "Problem",
    "Radius",
    "Realises",
    "Space",
    "Status",
    "architecture_bound",
    "certify",
    "check_candidate",
    "claim",
    "decide",
    "default_rtol",
    "make_problem",
    "make_space",
    "resolve_radius",
    "row_matrix",
    "solve_lp",
    "unit_form",
    "with_bound",
]


@dataclass(frozen=True)
class Problem:
    """Rows over a head: fixed inequality rows, equality rows and lazily generated groups.

    ``P``/``N`` hold label indices, -1 for "no term": row value ``z[P] - z[N]``.
    """

    P: NDArray[np.int64]
    N: NDArray[np.int64]
    EP: NDArray[np.int64]
    EN: NDArray[np.int64]
    groups: tuple[NDArray[np.int64], ...] = ()


def make_problem(
    rows: Sequence[tuple[int, int]] = (),
    eq: Sequence[tuple[int, int]] = (),
    groups: Sequence[Sequence[int]] = (),
) -> Problem:
    def arr(x: Sequence[tuple[int, int]], k: int) -> NDArray[np.int64]:
        return np.array([r[k] for r in x], dtype=np.int64)

    return Problem(arr(rows, 0), arr(rows, 1), arr(eq, 0), arr(eq, 1),
                   tuple(np.array(sorted(set(g)), dtype=np.int64) for g in groups))


def unit_form(h: NDArray[np.float64], sp: Space) -> tuple[NDArray[np.float64], float]:
    """A hidden state h' as the LP's (h, s): scaled into the unit box (radius=None)."""
    if sp.radius is not None:
        return h, 1.0
    k = max(1.0, float(np.abs(h).max(initial=0.0)))
    return h / k, 1.0 / k


def evaluate(sp: Space, pb: Problem, h: NDArray[np.float64], s: float
             ) -> tuple[float, float, NDArray[np.float64]]:
    """(margin over all rows incl. groups, largest equality residual, z) at unit form (h, s)."""
    z = sp.W @ h + s * sp.b
    ze = np.append(z, 0.0)
    vals = [ze[pb.P] - ze[pb.N]] if pb.P.size else []
    for S in pb.groups:
        mask = np.ones(z.size, dtype=bool)
        mask[S] = False
        if mask.any():
            vals.append(np.array([z[S].min() - z[mask].max()]))
    margin = float(np.min(np.concatenate(vals))) if vals else np.inf
    resid = float(np.abs(ze[pb.EP] - ze[pb.EN]).max()) if pb.EP.size else 0.0
    return margin, resid, z


def witness_of(h: NDArray[np.float64], s: float, sp: Space) -> NDArray[np.float64]:
    """The hidden state h' = h / s that the unit-form pair (h, s) stands for (s > 0)."""
    if sp.radius is not None or not np.any(sp.b != 0):
        return h
    return h / s


def finite_s(sp: Space, s: float, t: float) -> float:
    """A bias weight s' > 0 near the LP's s: s = 0 is the limit |h| -> inf, which no hidden
    state attains; s' = t / (4 max|b_p - b_n|) costs at most t / 2 of the margin."""
    if sp.radius is not None or not np.any(sp.b != 0):
        return 1.0 if sp.radius is not None else s
    gmax = 2 * float(np.abs(sp.b).max())
    return float(min(1.0, max(s, t / (4 * gmax))))


def on_equalities(sp: Space, pb: Problem, hp: NDArray[np.float64]) -> NDArray[np.float64]:
    """Hidden state h' moved onto the equality rows: h' - E^+ (E h' + e), so every tie holds
    on the logits ``W h' + b`` to rounding (kept unmoved if that would leave the box)."""
    if not pb.EP.size:
        return hp
    E, e = row_matrix(sp, pb.EP, pb.EN)
    if not np.any(E != 0):
        return hp
    q = hp - np.linalg.pinv(E) @ (E @ hp + e)
    if sp.radius is not None and float(sp.box_factor(q)) > 1:
        return hp
    return np.asarray(q, dtype=np.float64)


def lp_witness(sp: Space, pb: Problem, lp: LPResult
               ) -> tuple[NDArray[np.float64], float, float, NDArray[np.float64]]:
    """The hidden state h' that an LP solution stands for, with its unit-form margin over all
    rows, its largest equality residual and the unit-form logits: (h', margin, residual, z).

    Candidates (the first that passes is taken, else the one with the largest margin): the
    LP's point with s raised to :func:`finite_s`; with the bias, ``radius=None`` and equality
    rows also the segment construction of the module docstring, which keeps every equality
    and at least half of the LP point's margin over all rows."""
    tol = sp.tol
    biased_unbounded = sp.radius is None and bool(np.any(sp.b != 0))
    cands: list[tuple[NDArray[np.float64], float]] = [(lp.h, finite_s(sp, lp.s, lp.t))]
    if biased_unbounded and pb.EP.size:
        seg = _segment_point(sp, pb, lp)
        if seg is not None:
            cands.append(seg)
    best: tuple[NDArray[np.float64], float, float, NDArray[np.float64]] | None = None
    for h, s in cands:
        raw = witness_of(h, s, sp)
        # the projection first; unprojected if it fails (rows nearly identical: a tiny tie
        # residual can need a large move of h)
        for hp in (on_equalities(sp, pb, raw), raw) if pb.EP.size else (raw,):
            m, r, z = evaluate(sp, pb, *unit_form(hp, sp))
            if m > tol and r <= tol:
                return hp, m, r, z
            if best is None or m > best[1]:
                best = (hp, m, r, z)
    assert best is not None
    return best


def _segment_point(sp: Space, pb: Problem, lp: LPResult
                   ) -> tuple[NDArray[np.float64], float] | None:
    """(h, s) with s > 0 on the segment from the LP's (h0, s0) to a point (h1, s1) that keeps
    every equality: lam chosen so the margin over all rows keeps half of the LP point's."""
    m0 = evaluate(sp, pb, lp.h, lp.s)[0]
    if not m0 > 0:
        return None
    E, e = row_matrix(sp, pb.EP, pb.EN)
    c = -np.linalg.pinv(E) @ e
    if np.abs(E @ c + e).max() > 1e-9 * max(1.0, float(np.abs(e).max())):
        return None  # the ties cannot hold with the bias at any finite h
    cmax = float(np.abs(c).max(initial=0.0))
    s1 = 1.0 if cmax <= 1 else 1.0 / cmax
    h1 = s1 * c
    m1 = evaluate(sp, pb, h1, s1)[0]
    lam = 1.0 if m1 >= m0 / 2 else (m0 / 2) / (m0 - m1)
    s = (1 - lam) * lp.s + lam * s1
    if not s > 0:
        return None
    return (1 - lam) * lp.h + lam * h1, float(s)


def check_candidate(sp: Space, pb: Problem, h_prime: NDArray[np.float64]
                    ) -> tuple[bool, float]:
    """Does hidden state h' satisfy every row by more than tol (unit form)?"""
    h, s = unit_form(np.asarray(h_prime, dtype=np.float64), sp)
    m, r, _ = evaluate(sp, pb, h, s)
    tol = sp.tol
    inside = sp.radius is None or float(sp.box_factor(h)) <= 1 + 1e-12
    return (m > tol and r <= tol and inside), m


def _names(head: Head, P: NDArray[np.int64], N: NDArray[np.int64]
           ) -> tuple[tuple[str | None, str | None], ...]:
    lab = head.labels
    return tuple((lab[p] if p >= 0 else None, lab[n] if n >= 0 else None)
                 for p, n in zip(P.tolist(), N.tolist()))


def _group_rows(sp: Space, S: NDArray[np.int64], z: NDArray[np.float64], k: int,
                exclude: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """Rows (a, c) for a in S and the k strongest labels c outside S at logits z."""
    mask = np.ones(z.size, dtype=bool)
    mask[S] = False
    outside = np.flatnonzero(mask)
    if outside.size > k:
        part = np.argpartition(-z[outside], k - 1)[:k]
        outside = outside[part]
    return [(int(a), int(c)) for a in S.tolist() for c in outside.tolist()
            if (int(a), int(c)) not in exclude]


def with_bound(r: Feasibility, sp: Space) -> Feasibility:
    """``r`` with the bound on h it was decided under, what its verdict means, the tolerance
    used, where its LPs were solved, and which logits its witness realises."""
    lp_space = r.lp_space
    if r.lp_solves and sp.span is not None:
        lp_space = (f"the rows' span (dimension {sp.span.coords.shape[1]} of "
                    f"{sp.W.shape[1]}); witness and certificate checked in R^d")
    return replace(r, hidden_bound=sp.bound, claim=claim(r.status, sp.bound),
                   rtol=Rtol(sp.rtol, sp.rtol_from), lp_space=lp_space, realises=sp.realises)


def decide(
    head: Head,
    sp: Space,
    pb: Problem,
    *,
    question: str,
    labels: tuple[str, ...],
    starts: Sequence[NDArray[np.float64]] = (),
    optimal: bool = False,
    max_rounds: int = 60,
) -> Feasibility:
    """Decide one problem: cheap candidates first, then the LP with row generation.

    With ``optimal=True`` a "yes" is returned only once the LP optimum over the generated rows
    is attained over all rows (so ``margin`` is the exact optimum, not just some witness's).
    The result says which bound on h was used (``hidden_bound``) and what the verdict proves
    (``claim``).
    """
    return with_bound(_decide(head, sp, pb, question=question, labels=labels, starts=starts,
                              optimal=optimal, max_rounds=max_rounds), sp)


def _decide(
    head: Head,
    sp: Space,
    pb: Problem,
    *,
    question: str,
    labels: tuple[str, ...],
    starts: Sequence[NDArray[np.float64]],
    optimal: bool,
    max_rounds: int,
) -> Feasibility:
    tol = sp.tol
    best_h: NDArray[np.float64] | None = None
    best_m = -np.inf
    for h0 in starts:
        ok, m = check_candidate(sp, pb, h0)
        if m > best_m:
            best_m, best_h = m, np.asarray(h0, dtype=np.float64)
        if ok and not optimal:
            return Feasibility(question, labels, "yes", m, tol, np.asarray(h0, np.float64),
                               None, sp.formulation, "start")
    # initial active rows
    active: set[tuple[int, int]] = set(zip(pb.P.tolist(), pb.N.tolist()))
    order: list[tuple[int, int]] = list(zip(pb.P.tolist(), pb.N.tolist()))
    if pb.groups:
        if best_h is not None:
            h, s = unit_form(best_h, sp)
            z = sp.W @ h + s * sp.b
        else:
            z = sp.b.copy()
        for S in pb.groups:
            k = head.n_labels - S.size
            k = k if k <= _FULL_GROUP else _START_GROUP
            new = _group_rows(sp, S, z, k, active)
            active.update(new)
            order.extend(new)
    solves = 0
    lp: LPResult | None = None
    model = open_lp(sp, pb.EP, pb.EN)  # rows added each round, re-solved warm
    for _ in range(max_rounds):
        P = np.array([r[0] for r in order], dtype=np.int64)
        N = np.array([r[1] for r in order], dtype=np.int64)
        model.add(P[model.n_rows:], N[model.n_rows:])
        lp = model.solve()
        solves += 1
        method = "lp" if not pb.groups or len(order) >= _full_rows(head, pb) else "lp+generation"
        if not lp.ok:
            break
        if lp.t <= tol:
            bound, resid, lam, nu = certify(sp, P, N, pb.EP, pb.EN, lp.lam, lp.nu)
            cert = Certificate(_names(head, P, N), lam, _names(head, pb.EP, pb.EN), nu,
                               bound, resid)
            status: Status = "no" if bound <= tol else "undecided"
            return Feasibility(question, labels, status, lp.t, tol, None, cert,
                               sp.formulation, method, solves, lp_optimum=lp.t)
        w, m, r, z = lp_witness(sp, pb, lp)
        # optimality is judged on the LP's own point
        m_opt = evaluate(sp, pb, lp.h, lp.s)[0] if optimal else m
        if m > tol and r <= tol and (not optimal or m_opt >= lp.t - 1e-9 * tol / sp.rtol):
            return Feasibility(question, labels, "yes", m, tol, w, None, sp.formulation,
                               method, solves, lp_optimum=lp.t)
        grown = False
        for S in pb.groups:
            new = _group_rows(sp, S, z, _ADD_GROUP, active)
            new = [rc for rc in new if z[rc[0]] - z[rc[1]] < lp.t]
            if new:
                grown = True
                active.update(new)
                order.extend(new)
        if not grown:
            if m > tol and r <= tol:  # optimal requested but the LP could not close the gap
                return Feasibility(question, labels, "yes", m, tol, w, None, sp.formulation,
                                   method, solves, lp_optimum=lp.t)
            break
    t = np.nan if lp is None or not lp.ok else lp.t
    return Feasibility(question, labels, "undecided", t, tol, None, None, sp.formulation, "lp",
                       solves, lp_optimum=t)


def _full_rows(head: Head, pb: Problem) -> int:
    return int(pb.P.size + sum(S.size * (head.n_labels - S.size) for S in pb.groups))
