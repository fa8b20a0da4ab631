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
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed.bounds import HiddenBound, checked_box
from unembed.head import Head

if TYPE_CHECKING:
    from unembed.feasibility.span import SpanBasis

Status = Literal["yes", "no", "undecided"]
#: The logits a witness realises: with the head's bias, or without it (``bias=False``).
Realises = Literal["W h + b", "W h"]

#: An LP optimum above CLEAR * tol is always answered "yes" with a witness.
CLEAR = 4.0

#: LPs of wide heads (radius None, 2 V <= d) are solved in the rows' span (benchmarks set it
#: False to time the LPs in R^d).
SPAN_LPS = True

#: Default relative tolerance: margins below rtol * (largest possible row value) are "no".
RTOL = 1e-6
_HIGHS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}
_FULL_GROUP = 1024  # groups with at most this many outside labels start with all of them
_START_GROUP = 64  # otherwise: the strongest competitors at the start point
_ADD_GROUP = 32  # most violated rows added per member of S and generation round

if TYPE_CHECKING:
    import pandas as pd


# ---------------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class Certificate:
    """The dual certificate of a "no": convex weights on rows (and weights on equalities).

    Attributes
    ----------
    rows : tuple of (str | None, str | None)
        The inequality rows used, each ``(p, n)`` meaning ``z_p - z_n`` (None = the zero term).
    weights : ndarray of shape (n_rows,)
        lam >= 0, summing to 1.
    eq_rows, eq_weights
        The equality rows and their (free-signed) weights nu.
    bound : float
        Proven upper bound on the unit-form margin of every hidden state (<= tol for a "no").
    residual : float
        sum_j r_j |G^T lam + E^T nu|_j: how far the weighted rows are from cancelling.
    """

    rows: tuple[tuple[str | None, str | None], ...]
    weights: NDArray[np.float64]
    eq_rows: tuple[tuple[str | None, str | None], ...]
    eq_weights: NDArray[np.float64]
    bound: float
    residual: float

    def to_dict(self) -> dict[str, Any]:
        keep = np.flatnonzero(self.weights > 1e-12)
        order = keep[np.argsort(-self.weights[keep])]
        return {
            "bound": self.bound,
            "residual": self.residual,
            "rows": [list(self.rows[k]) for k in order],
            "weights": [float(self.weights[k]) for k in order],
            "eq_rows": [list(r) for r in self.eq_rows],
            "eq_weights": [float(x) for x in self.eq_weights],
        }


@dataclass(frozen=True, eq=False)
class Feasibility:
    """The answer to one question, with the evidence that decides it.

    Attributes
    ----------
    question : str
        "argmaxable", "top_two", "ranking", "top_k_set" or "combination".
    labels : tuple of str
        The labels the question is about (for "combination": "+name" / "-name").
    status : {"yes", "no", "undecided"}
    margin : float
        Unit-form margin: the witness's recomputed margin for "yes", the LP optimum otherwise.
    tol : float
        The tolerance the margin was compared with (see the module docstring).
    witness : ndarray of shape (d,) or None
        A hidden state (float64) realising the answer, for "yes": the head's own logits at it
        show the ordering / sign pattern asked for.
    certificate : Certificate or None
        The dual certificate of a "no".
    formulation : str
        The LP's bounds in words.
    method : str
        "start" (a cheap candidate already worked), "sample", "lp" or "lp+generation".
    lp_solves : int
        LPs solved for this answer.
    extra : dict
        ``hidden_bound`` and ``claim`` (what the verdict proves), ``lp_optimum``, ``reason``.
    realises : {"W h + b", "W h"}
        The logits on which the witness shows the answer (before logit scale and soft-cap):
        ``"W h"`` only for ``bias=False`` on a head with a non-zero bias.
    """

    question: str
    labels: tuple[str, ...]
    status: Status
    margin: float
    tol: float
    witness: NDArray[np.float64] | None
    certificate: Certificate | None
    formulation: str
    method: str
    lp_solves: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    realises: Realises = "W h + b"

    @property
    def feasible(self) -> bool:
        """True only for a "yes" backed by a witness."""
        return self.status == "yes"

    def to_frame(self) -> pd.DataFrame:
        """One row as a pandas DataFrame (:func:`unembed.tables.feasibility_table`)."""
        from unembed.tables import feasibility_table

        return feasibility_table(self).to_frame()

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "labels": list(self.labels),
            "status": self.status,
            "feasible": self.feasible,
            "margin": self.margin,
            "tol": self.tol,
            "formulation": self.formulation,
            "method": self.method,
            "lp_solves": self.lp_solves,
            "realises": self.realises,
            "witness": None if self.witness is None else self.witness.tolist(),
            "certificate": None if self.certificate is None else self.certificate.to_dict(),
            **self.extra,
        }


# ---------------------------------------------------------------------------------- problem
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


@dataclass(frozen=True, eq=False)
class Space:
    """The head's rows as the LP sees them: W (V, d) float64, the bias used, the box.

    ``radius`` is None (any h, unit form) or the largest half-width of the box; ``box`` (d,)
    holds the per-coordinate half-widths r_j when they differ (None: r_j = radius for all j);
    ``bound`` describes the bound for the results (see :func:`bound_info`).
    """

    W: NDArray[np.float64]
    b: NDArray[np.float64]  # zeros when the bias is not used
    radius: float | None
    rtol: float
    centered: bool = True  # softmax: the scale is taken on centered rows (gauge invariant)
    box: NDArray[np.float64] | None = None
    bound: dict[str, Any] = field(default_factory=dict)
    realises: Realises = "W h + b"
    rtol_from: str = "given"  # where rtol came from (said in every result)

    @property
    def r(self) -> NDArray[np.float64]:
        """The box's half-widths (d,): |h_j| <= r_j (all 1 in the unit form)."""
        if self.box is not None:
            return self.box
        return np.full(self.W.shape[1], 1.0 if self.radius is None else float(self.radius))

    def box_factor(self, H: NDArray[np.float64]) -> NDArray[np.float64]:
        """max_j |h_j| / r_j per row of H (n, d) (or a scalar array for a vector): H divided
        by it lies on the box's boundary."""
        return np.asarray(np.abs(H / self.r).max(axis=-1, initial=0.0), dtype=np.float64)

    @property
    def tol(self) -> float:
        cached = self.__dict__.get("_tol")
        if cached is None:
            from unembed._blocks import row_blocks

            W, b = self.W, self.b
            m = W.mean(axis=0) if self.centered else np.zeros(W.shape[1])
            if self.centered:
                b = b - b.mean()
            r = self.r
            top = max(float((np.abs(W[s:e] - m) @ r).max())  # in row blocks: no (V, d) copy
                      for s, e in row_blocks(*W.shape))
            scale = 2 * top + 2 * float(np.abs(b).max(initial=0.0))
            cached = self.rtol * scale
            object.__setattr__(self, "_tol", cached)
        return float(cached)

    @property
    def span(self) -> SpanBasis | None:
        """The rows' span as an orthonormal basis when the LPs are solved there (``radius``
        None and 2 V <= d; see :mod:`unembed.feasibility.span`), else None."""
        if "_span" not in self.__dict__:
            from unembed.feasibility.span import span_basis

            V, d = self.W.shape
            basis = (span_basis(self.W) if SPAN_LPS and self.radius is None and 2 * V <= d
                     else None)
            object.__setattr__(self, "_span", basis)
        out: SpanBasis | None = self.__dict__["_span"]
        return out

    @property
    def formulation(self) -> str:
        biased = bool(np.any(self.b != 0))
        if self.radius is not None:
            box = (f"|h_j| <= r_j (per-coordinate box, r_j from {float(self.r.min()):g} to "
                   f"{self.radius:g})" if self.box is not None and self.r.min() < self.radius
                   else
                   f"|h|_inf <= {self.radius:g}")
            return (f"max t s.t. rows >= t, {box}"
                    + (", with the bias" if biased else ", no bias"))
        if biased:
            return ("max t s.t. rows(h) + s*bias >= t, |h|_inf <= 1, s in [0, 1]: "
                    "some h in R^d with the bias (s -> 0: the limit |h| -> inf)")
        return "max t s.t. rows >= t, |h|_inf <= 1: homogeneous, exact for every h in R^d"


#: What the value of ``radius`` means, as said in every result's ``hidden_bound``.
MEANING = {
    "unbounded": "any hidden state h in R^d: 'yes' and 'no' are exact for every input",
    "caller": "only hidden states in the box given: 'yes' (a witness in the box) and 'no' are "
              "about the box, which may or may not be what the model can reach",
    "architecture": "a box containing every hidden state the architecture can produce, but "
                    "not all of it reachable (the normalised state also lies on a sphere): "
                    "a relaxation. 'no' is a proof for the model (no reachable h does it "
                    "either); 'yes' is a witness h in the box that the model may not reach",
}

Radius = float | str | NDArray[np.float64] | Sequence[float] | None


def architecture_bound(head: Head, func: str) -> HiddenBound:
    """The bound on the hidden state that the head's source recorded (``head.hidden_bound``,
    see :mod:`unembed.bounds`), checked. Raises an UnembedError naming the head's source when
    there is none."""
    where = str(head.meta.get("source") or "this head")
    family = str(head.meta.get("family") or head.meta.get("kind") or "its source")
    return checked_box(head.hidden_bound, head.d, equivalent=head.equivalent, where=where,
                       family=family, func=func)


def resolve_radius(head: Head, radius: Radius, func: str
                   ) -> tuple[float | None, NDArray[np.float64] | None, dict[str, Any]]:
    """``radius`` as (largest half-width or None, per-coordinate box or None, description)."""
    if radius is None:
        return None, None, {"kind": "unbounded", "source": "none",
                            "meaning": MEANING["unbounded"]}
    if isinstance(radius, str):
        if radius not in ("architecture", "arch"):
            raise UnembedError("must be a positive number, an array "
                               f"of shape ({head.d},), 'architecture' or None. Got {radius!r} "
                               f"instead.", argument="radius", function=func)
        hb = architecture_bound(head, func)
        r = hb.radii
        return float(r.max()), r, {
            "kind": "box", "source": "architecture", "radius": float(r.max()),
            "per_coordinate": True, "radii": r, "reason": hb.reason,
            "rows": hb.rows, "meaning": MEANING["architecture"]}
    arr = np.asarray(radius, dtype=np.float64) if not np.isscalar(radius) else None
    if arr is not None and arr.ndim == 1:
        if arr.shape != (head.d,) or not (np.isfinite(arr).all() and (arr > 0).all()):
            raise UnembedError("must be positive finite with shape "
                               f"({head.d},). Got shape {arr.shape} instead.", argument="radius",
                               function=func)
        return float(arr.max()), arr, {"kind": "box", "source": "caller",
                                       "radius": float(arr.max()), "per_coordinate": True,
                                       "radii": arr, "meaning": MEANING["caller"]}
    try:
        R = float(radius)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        R = np.nan
    if not (np.isfinite(R) and R > 0):
        raise UnembedError("must be a positive number or None. "
                           f"Got {radius!r} instead.", argument="radius", function=func)
    return R, None, {"kind": "box", "source": "caller", "radius": R, "per_coordinate": False,
                     "meaning": MEANING["caller"]}


def default_rtol(head: Head, rtol: float | None) -> tuple[float, str]:
    """(rtol, where it came from): ``rtol`` as given, or by default the ``lp_rtol`` of the
    head's storage dtype (:mod:`unembed._tolerance`), so that a float16 head's rows rounded
    onto a hull do not count as sticking out of it.

    >>> import numpy as np
    >>> default_rtol(Head(np.eye(3, dtype=np.float16)), None)
    (0.00390625, 'default for storage dtype float16')
    """
    if rtol is not None:
        return float(rtol), "given"
    from unembed._tolerance import tolerance

    return tolerance(head.dtype).lp_rtol, f"default for storage dtype {head.dtype}"


def make_space(head: Head, *, bias: bool, radius: Radius, rtol: float | None,
               func: str) -> Space:
    R, box, info = resolve_radius(head, radius, func)
    value, source = default_rtol(head, rtol)
    if not (np.isfinite(value) and 0 < value < 1):
        raise UnembedError(f"must be in (0, 1). Got {rtol!r} instead.", argument="rtol",
                           function=func)
    b = head.bias if bias else np.zeros(head.n_labels)
    realises: Realises = "W h" if (not bias and np.any(head.bias != 0)) else "W h + b"
    return Space(head.W, np.asarray(b, dtype=np.float64), R, value,
                 centered=head.link == "softmax", box=box, bound=info, realises=realises,
                 rtol_from=source)


def _term(x: NDArray[np.float64], idx: NDArray[np.int64]) -> NDArray[Any]:
    """x[idx] with x[-1] read as zero (works for vectors and row matrices)."""
    out = x[np.maximum(idx, 0)]
    mask = idx < 0
    if mask.any():
        out = out.copy()
        out[mask] = 0
    return out


def row_matrix(sp: Space, P: NDArray[np.int64], N: NDArray[np.int64]
               ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """G (m, d) and g (m,) of rows ``z_P - z_N``."""
    return _term(sp.W, P) - _term(sp.W, N), _term(sp.b, P) - _term(sp.b, N)


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


# ---------------------------------------------------------------------------------- LP
@dataclass
class LPResult:
    t: float
    h: NDArray[np.float64]
    s: float
    lam: NDArray[np.float64]
    nu: NDArray[np.float64]
    ok: bool


def solve_lp(sp: Space, P: NDArray[np.int64], N: NDArray[np.int64], EP: NDArray[np.int64],
             EN: NDArray[np.int64]) -> LPResult:
    """Solve the margin LP on the given rows with HiGHS (rows scaled to O(1) first).

    When the Space has a ``span`` (wide heads, ``radius=None``) the LP is solved over the
    coordinates y of h in the rows' span (dimension r <= V) and its point is lifted back to
    R^d, h = Q y scaled into the unit box; the duals are those of the rows, as in R^d. Every
    witness and certificate is then checked on the head in R^d as always (the reduction only
    proposes; :mod:`unembed.feasibility.span` proves why nothing is lost)."""
    basis = sp.span
    if basis is not None:
        return _solve_in_span(sp, basis, P, N, EP, EN)
    d = sp.W.shape[1]
    G, g = row_matrix(sp, P, N)
    E, e = row_matrix(sp, EP, EN)
    scale = max(sp.tol / sp.rtol, 1e-300)
    R = sp.r[None, :]
    s_bounds = (0.0, 1.0) if sp.radius is None else (1.0, 1.0)
    out = _margin_lp(G * (R / scale), g / scale, E * (R / scale), e / scale, s_bounds)
    if out is None:
        return LPResult(np.nan, np.zeros(d), 1.0, np.zeros(G.shape[0]), np.zeros(E.shape[0]),
                        False)
    x, lam, nu = out
    h = np.clip(x[:d], -1.0, 1.0) * sp.r  # exactly in the box (HiGHS bounds hold to ~1e-10)
    return LPResult(float(x[-1]) * scale + 0.0, h, float(x[d]), lam, nu, True)


def _margin_lp(G: NDArray[np.float64], g: NDArray[np.float64], E: NDArray[np.float64],
               e: NDArray[np.float64], s_bounds: tuple[float, float]
               ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]] | None:
    """The margin LP in x = [y (n), s, t], already scaled: maximise t subject to
    G y + g s >= t on every row, E y + e s = 0, |y|_inf <= 1, s in ``s_bounds``. Returns
    (x, lam, nu), lam the rows' duals (>= 0) and nu the equalities', or None when HiGHS finds
    no optimum."""
    from scipy.optimize import linprog

    n = G.shape[1]
    c = np.zeros(n + 2)
    c[-1] = -1.0
    A_ub = np.hstack([-G, -g[:, None], np.ones((G.shape[0], 1))])
    A_eq = np.hstack([E, e[:, None], np.zeros((E.shape[0], 1))]) if E.shape[0] else None
    bounds = [(-1.0, 1.0)] * n + [s_bounds, (None, None)]
    res = linprog(c, A_ub=A_ub, b_ub=np.zeros(G.shape[0]), A_eq=A_eq,
                  b_eq=np.zeros(E.shape[0]) if A_eq is not None else None, bounds=bounds,
                  method="highs", options=_HIGHS)
    if res.status != 0 or res.x is None:
        return None
    lam = -np.asarray(res.ineqlin.marginals, dtype=np.float64)
    nu = (np.asarray(res.eqlin.marginals, dtype=np.float64) if A_eq is not None
          else np.zeros(0))
    return np.asarray(res.x, dtype=np.float64), lam, nu


def _solve_in_span(sp: Space, basis: SpanBasis, P: NDArray[np.int64], N: NDArray[np.int64],
                   EP: NDArray[np.int64], EN: NDArray[np.int64]) -> LPResult:
    """The margin LP over y in R^r (|y|_inf <= 1), rows M[p] - M[n] with M = W Q the rows'
    coordinates; its point lifted to (h, s) = (Q y, s) / max(1, |Q y|_inf), a point of the
    R^d LP with margin t / max(1, |Q y|_inf)."""
    M = basis.coords
    r = M.shape[1]
    G, g = _term(M, P) - _term(M, N), _term(sp.b, P) - _term(sp.b, N)
    E, e = _term(M, EP) - _term(M, EN), _term(sp.b, EP) - _term(sp.b, EN)
    scale = max(2 * float(np.abs(M - M.mean(axis=0)).sum(axis=1).max(initial=0.0))
                + 2 * float(np.abs(sp.b - sp.b.mean()).max(initial=0.0)), 1e-300)
    out = _margin_lp(G / scale, g / scale, E / scale, e / scale, (0.0, 1.0))
    d = sp.W.shape[1]
    if out is None:
        return LPResult(np.nan, np.zeros(d), 1.0, np.zeros(G.shape[0]), np.zeros(E.shape[0]),
                        False)
    x, lam, nu = out
    h = basis.lift(np.clip(x[:r], -1.0, 1.0))
    k = max(1.0, float(np.abs(h).max(initial=0.0)))
    return LPResult(float(x[-1]) * scale / k + 0.0, h / k, float(x[r]) / k, lam, nu, True)


def certify(sp: Space, P: NDArray[np.int64], N: NDArray[np.int64], EP: NDArray[np.int64],
            EN: NDArray[np.int64], lam: NDArray[np.float64], nu: NDArray[np.float64]
            ) -> tuple[float, float, NDArray[np.float64], NDArray[np.float64]]:
    """Recompute the bound a dual vector proves: (bound, residual, lam, nu), lam normalised."""
    lam = np.clip(lam, 0.0, None)
    total = lam.sum()
    if not np.isfinite(total) or total <= 0:
        return np.inf, np.inf, lam, nu
    lam = lam / total
    nu = nu / total
    G, g = row_matrix(sp, P, N)
    E, e = row_matrix(sp, EP, EN)
    best = (np.inf, np.inf, nu)
    for sign in (1.0, -1.0):  # any nu is valid; the solver's sign convention does not matter
        v = G.T @ lam + (E.T @ (sign * nu) if E.shape[0] else 0.0)
        resid = float(sp.r @ np.abs(v))
        off = float(lam @ g + ((sign * nu) @ e if E.shape[0] else 0.0))
        bound = resid + (max(0.0, off) if sp.radius is None else off)
        if bound < best[0]:
            best = (bound, resid, sign * nu)
    return best[0], best[1], lam, best[2]


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


def claim(status: str, bound: dict[str, Any]) -> str:
    """What a verdict proves about the model, given the bound on h it was decided under."""
    src = bound.get("source", "none")
    if status == "undecided":
        return "undecided: neither a witness nor a certificate within the tolerance"
    if src == "architecture":
        return ("proven for the model: no hidden state in the architecture's box, so none the "
                "model can produce, does it" if status == "no" else
                "a hidden state in the architecture's box does it; the box is a relaxation, "
                "so the model may not reach that state")
    if src == "caller":
        return ("no hidden state in the given box does it" if status == "no" else
                "a hidden state in the given box does it")
    return ("no hidden state in R^d does it" if status == "no" else
            "a hidden state in R^d does it (the witness)")


def with_bound(r: Feasibility, sp: Space) -> Feasibility:
    """Record in ``r.extra`` the bound on h it was decided under and what its verdict means,
    and in ``r.realises`` which logits its witness realises."""
    r.extra["hidden_bound"] = sp.bound
    r.extra["claim"] = claim(r.status, sp.bound)
    r.extra["rtol"] = {"value": sp.rtol, "from": sp.rtol_from}
    if r.lp_solves and sp.span is not None:
        r.extra["lp_space"] = (f"the rows' span (dimension {sp.span.coords.shape[1]} of "
                               f"{sp.W.shape[1]}); witness and certificate checked in R^d")
    return replace(r, realises=sp.realises)


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
    The result's ``extra`` says which bound on h was used (``hidden_bound``) and what the
    verdict proves (``claim``).
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
    for _ in range(max_rounds):
        P = np.array([r[0] for r in order], dtype=np.int64)
        N = np.array([r[1] for r in order], dtype=np.int64)
        lp = solve_lp(sp, P, N, pb.EP, pb.EN)
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
                               sp.formulation, method, solves, {"lp_optimum": lp.t})
        w, m, r, z = lp_witness(sp, pb, lp)
        # optimality is judged on the LP's own point
        m_opt = evaluate(sp, pb, lp.h, lp.s)[0] if optimal else m
        if m > tol and r <= tol and (not optimal or m_opt >= lp.t - 1e-9 * tol / sp.rtol):
            return Feasibility(question, labels, "yes", m, tol, w, None, sp.formulation,
                               method, solves, {"lp_optimum": lp.t})
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
                                   method, solves, {"lp_optimum": lp.t})
            break
    t = np.nan if lp is None or not lp.ok else lp.t
    return Feasibility(question, labels, "undecided", t, tol, None, None, sp.formulation, "lp",
                       solves, {"lp_optimum": t})


def _full_rows(head: Head, pb: Problem) -> int:
    return int(pb.P.size + sum(S.size * (head.n_labels - S.size) for S in pb.groups))
