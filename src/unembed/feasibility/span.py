"""Wide heads (V - 1 <= d): every label argmaxable without an LP when the rows are affinely
independent.

Theorem. Let the head have V labels with rows u_1, ..., u_V in R^d and any bias b, and let the
rows be affinely independent: the V - 1 differences u_k - u_V (k < V) are linearly
independent (which needs V - 1 <= d). Then every label i is the strict argmax of
z(h) = W h + b for some h in R^d.

Proof. Stack the differences as the rows of D, shape (V - 1, d); it has full row rank V - 1,
so D h = y has a solution for every y in R^{V-1}. Fix M > 0 and take
y_k = M [k = i] - M [i = V] - (b_k - b_V). Then for every k < V

    z_k - z_V = (u_k - u_V) . h + b_k - b_V = y_k + b_k - b_V = M [k = i] - M [i = V],

so z_i - z_k = M for every k != i (for i < V: z_i - z_V = M and z_k - z_V = 0 for the other
k; for i = V: z_k - z_V = -M for every k). QED. Conversely, V - 1 > d rows are always
affinely dependent, and an affinely dependent set can contain a row inside the hull of the
others, so then the LPs decide.

Computation: the least-norm solution is h = D^T a with (D D^T) a = y, solved with the
Cholesky factor L of the Gram matrix D D^T (one O(V^2 d) product, then O(V^2) per label); a
witness is rebuilt from the V - 1 numbers a (kept per label). M is chosen per label so that the
witness leaves the unit box (h_i = M h1_i + h0, M >= 1000 (1 + |h0|_inf) / |h1_i|_inf): its
unit-form margin M / max(1, |h_i|_inf) is then within 0.1% of its supremum 1 / |h1_i|_inf
instead of being capped by M, and |h_i|_inf is bounded by M |h1_i|_inf + |h0|_inf (plus
rounding), a divisor at least the true one. Affine
independence is not assumed from the factorisation: every witness's margin over all labels is
recomputed in float64 as z = (W D^T) a + b minus a bound on its distance from W h + b for
the float64 witness h = a D (the rounding of W D^T, of h and of the small product:
gamma_{d+V} (|w_k| sum_j |a_j| |d_j| + sum_j |(W D^T)_kj| |a_j|), gamma_n = 2 n eps64), and a
label counts as settled only when that lower bound on its unit-form margin (divided by
max(1, |h|_inf)) exceeds the tolerance, like every other "yes" (see
:mod:`unembed.feasibility._core`). Labels that fail (rows nearly dependent) go on to the
usual fast pass and LPs.

Only for ``radius=None`` (h anywhere in R^d): with a bounded h the margin M may need an h
outside the box.

LPs in the rows' span (wide heads, affinely dependent or not)
-------------------------------------------------------------
When the theorem above does not settle a label (rows affinely dependent, or nearly so) the
LPs decide, and for V << d they need not be solved in R^d.

Theorem (reduction). Let S = span{u_1, ..., u_V} in R^d have dimension r <= V and an
orthonormal basis Q (d, r), and M = W Q (V, r) the rows' coordinates. For every h in R^d,
W h = M (Q^T h): each row u_k lies in S, so u_k . (h - Q Q^T h) = 0. Every LP of
:mod:`unembed.feasibility._core` constrains h only through W h (rows z_p - z_n, signed logits
+z_p or -z_n, ties z_p = z_n, each plus the bias times s), so for ``radius=None`` a
(h, s) satisfies a set of rows iff (y, s) = (Q^T h, s) satisfies the same rows written with M,
and every (y, s) gives h = Q y. Hence "some h in R^d with margin > 0" holds iff "some y in
R^r with margin > 0" does: the verdicts are the same, and the LP has r + 2 variables instead
of d + 2. (With a box |h_j| <= r_j the box constrains h itself, not only Q^T h: not covered,
and not used.) QED.

How it is used (:func:`span_basis`, :meth:`unembed.feasibility.space.Space.span`): for
``radius=None`` and 2 V <= d, Q comes from a QR factorisation of W^T (one O(V^2 d) pass) and
each LP is solved over y in the unit box |y|_inf <= 1 (any bounded normalisation of the
homogeneous problem gives the same verdict). The reduction only *proposes*; nothing is taken
on trust from a rounded Q:

* its point is lifted back, h = Q y, scaled into R^d's unit form (h, s) / max(1, |h|_inf), and
  a "yes" needs that witness's margin, recomputed in float64 from the head in R^d over all
  rows, above the tolerance, exactly like any other witness;
* its dual weights lam (one per row, as in R^d) are a certificate only if the bound
  ``sum_j |G^T lam|_j + max(0, lam . g)`` recomputed from the head in R^d is below the
  tolerance (G^T lam is a combination of rows, in S, so a y-space certificate is one in R^d
  up to rounding).

Margins: the witness's R^d unit-form margin is at most the R^d LP's optimum (the unit box of
R^d allows h with components outside S that shrink |h|_inf), so for the narrowest-margin
refinement the margins found in the span are lower bounds, and the list is not called exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import solve_triangular

from unembed.feasibility.bases import Simplex, SpanBasis, span_basis
from unembed.feasibility.result import Feasibility, SpanCheck
from unembed.feasibility.space import Space

_BLOCK = 256  # witnesses formed per block (block x d float64 in memory)
_EPS64 = 2.0**-53


@dataclass(frozen=True, eq=False)
class SpanWitnesses:
    """Witnesses h_i = coef[i] @ D for the labels settled by the theorem.

    Attributes
    ----------
    coef : ndarray of shape (V, V - 1)
        The coefficients a of each label's witness on the differences u_k - u_V.
    margin : ndarray of shape (V,)
        Unit-form margins recomputed in float64 from the head (-inf where not settled).
    settled : ndarray of bool, shape (V,)
        margin > tol.
    """

    coef: NDArray[np.float64]
    margin: NDArray[np.float64]
    settled: NDArray[np.bool_]

    def witness(self, W: NDArray[np.float64], i: int) -> NDArray[np.float64]:
        """The hidden state of label i (d,), float64."""
        return np.asarray(self.coef[i] @ (W[:-1] - W[-1]), dtype=np.float64)


def span_witnesses(sp: Space) -> SpanWitnesses | None:
    """Witnesses for every label from the theorem of the module docstring, each re-checked;
    None when it does not apply (V - 1 > d, or a bounded h)."""
    W, b = sp.W, sp.b
    V, d = W.shape
    if sp.radius is not None or V < 2 or V - 1 > d:
        return None
    D = W[:-1] - W[-1]
    c = b[:-1] - b[-1]
    P = W @ D.T  # (V, V - 1): the one O(V^2 d) product
    G = P[:-1] - P[-1]  # = D D^T
    G = 0.5 * (G + G.T)
    try:
        L = np.linalg.cholesky(G)
    except np.linalg.LinAlgError:
        return None  # numerically dependent: let the LPs decide
    diag = np.abs(np.diag(L))
    if not diag.size or diag.min() <= 1e-7 * diag.max():
        return None
    # h_i = M_i h1_i + h0: h1_i for the target pattern with M = 1 and no bias, h0 for -c
    Y1 = np.zeros((V - 1, V))
    Y1[np.arange(V - 1), np.arange(V - 1)] = 1.0
    Y1[:, V - 1] = -1.0
    Y = np.c_[Y1, -c]
    A = solve_triangular(L, solve_triangular(L, Y, lower=True), trans="T", lower=True)
    A1, a0 = A[:, :V].T, A[:, V]
    h1 = np.empty(V)
    for start in range(0, V, _BLOCK):
        h1[start:start + _BLOCK] = np.abs(A1[start:start + _BLOCK] @ D).max(axis=1)
    h0 = float(np.abs(a0 @ D).max(initial=0.0))
    # M_i large enough that the witness leaves the unit box: its unit-form margin
    # M_i / max(1, |h_i|_inf) is then near its supremum 1 / |h1_i|_inf, not capped by M_i
    M0 = 1.0 + 2.0 * float(np.abs(c).max(initial=0.0))
    Mi = np.maximum(M0, 1e3 * (1.0 + h0) / np.maximum(h1, 1e-300))
    coef = np.ascontiguousarray(Mi[:, None] * A1 + a0[None, :])  # (V, V - 1)
    # logits at every witness h_i = coef[i] @ D: Z = coef @ P^T + b, with a bound on how far
    # that is from the float64 W h_i (the rounding of P, of h_i and of the small product)
    gamma = 2 * (d + V) * _EPS64 / (1 - (d + V) * _EPS64)
    wn = np.linalg.norm(W, axis=1)
    dn = np.linalg.norm(D, axis=1)
    Z = coef @ P.T + b[None, :]  # (V witnesses, V labels)
    err = gamma * (np.abs(coef) @ dn)[:, None] * wn[None, :] + gamma * (np.abs(coef)
                                                                        @ np.abs(P).T)
    # |h_i|_inf <= M_i |h1_i|_inf + |h0|_inf (+ rounding): a divisor at least the true one
    H_inf = (Mi * h1 + h0) * (1 + gamma) + gamma * (np.abs(coef) @ dn)
    k = np.maximum(1.0, H_inf)
    r = np.arange(V)
    zi = Z[r, r] - err[r, r]
    Z = Z + err
    Z[r, r] = -np.inf
    margin = (zi - Z.max(axis=1)) / k
    # margin is a proven lower bound (rounding included): > 0 is an exact witness, whatever
    # the tolerance (see exact_answer)
    return SpanWitnesses(coef, margin, margin > 0)


def span_note(span: SpanWitnesses, tol: float) -> str:
    """What a whole-vocabulary result says about the labels the theorem settled."""
    low = int((span.settled & (span.margin <= tol)).sum())
    below = (f"; {low} of them with a margin at or below the tolerance {tol:.3g}, which guards "
             f"LP solutions against the solver's own tolerance: these witnesses are exact "
             f"solves whose margins, rounding bounded, are positive" if low else "")
    return (f"{int(span.settled.sum())} labels settled by the span theorem (V - 1 <= d, "
            f"affinely independent rows: every label argmaxable, witnesses checked{below}); "
            f"their exact margins were not computed, so the narrowest list covers the other "
            f"labels only")


# ------------------------------------------------------------------ single questions, exactly
def simplex(sp: Space) -> Simplex | None:
    """:func:`unembed.feasibility.bases.simplex_of` of the space, computed once per space
    (``Space.simplex``)."""
    return sp.simplex


def _solution(sx: Simplex, sp: Space, top: tuple[int, ...], M: float) -> NDArray[np.float64]:
    """h with W h + b = t + const exactly up to float64 rounding, t = M on ``top`` and 0 on
    every other label: D h = (t_k - t_V) - (b_k - b_V) for k < V."""
    V = sp.W.shape[0]
    t = np.zeros(V)
    t[list(top)] = M
    return sx.solve((t[:-1] - t[-1]) - (sp.b[:-1] - sp.b[-1]))


def exact_answer(head_labels: tuple[str, ...], sp: Space, question: str,
                 top: tuple[int, ...], tie: bool) -> Feasibility | None:
    """"yes" for the labels ``top`` above every other label (tied with each other when
    ``tie``), by the span theorem: an exact solve of W h + b = target logits (M on ``top``, 0
    elsewhere, up to a common shift), then the witness's own logits recomputed in float64 with
    a bound on their rounding, gamma_{d+2} (|W| |h| + |b|) per label. The answer is "yes" when
    that bound leaves the logit margin positive (and the ties within tol): an exact witness
    for this head, at any tolerance, since no LP solver's tolerance is involved. None when the
    theorem does not apply or its witness does not pass (rows nearly dependent): the LPs
    decide then.

    M is chosen as in :func:`span_witnesses`: h = M h1 + h0 with M >= 1000 (1 + |h0|_inf) /
    |h1|_inf, so that the unit-form margin M / max(1, |h|_inf) is near its supremum."""
    W, b = sp.W, sp.b
    V, d = W.shape
    others = np.ones(V, dtype=bool)
    others[list(top)] = False
    sx = simplex(sp)
    if not others.any() and tie and len(top) == 2:  # two labels: any h on their tie
        delta = W[top[0]] - W[top[1]]
        dd, gap = float(delta @ delta), float(b[top[0]] - b[top[1]])
        if dd == 0 and gap != 0:
            return None
        h0 = -gap / dd * delta if dd > 0 else np.zeros(d)
    elif sx is None:
        return None
    else:
        h0 = _solution(sx, sp, top, 0.0)
    if others.any():
        assert sx is not None
        h1 = _solution(sx, sp, top, 1.0) - h0
        n1 = float(np.abs(h1).max(initial=0.0))
        if not n1 > 0:
            return None
        c = b - b.mean()
        M = max(1.0 + 2.0 * float(np.abs(c).max(initial=0.0)),
                1e3 * (1.0 + float(np.abs(h0).max(initial=0.0))) / n1)
        h = h0 + M * h1
    else:
        h = h0  # every label is on top: only the ties are asked
    if not np.isfinite(h).all():
        return None
    z = W @ h + b
    gamma = (d + 2) * 2.0 * _EPS64 / (1 - (d + 2) * 2.0 * _EPS64)
    err = gamma * (np.abs(W) @ np.abs(h) + np.abs(b))
    ix = np.asarray(top, dtype=np.intp)
    k = max(1.0, float(np.abs(h).max(initial=0.0)))
    low = float((z[ix] - err[ix]).min())
    logit_margin = low - float((z[others] + err[others]).max()) if others.any() else np.inf
    resid = float((z[ix].max() - z[ix].min()) + 2 * err[ix].max()) / k if tie else 0.0
    if not (logit_margin > 0 and resid <= sp.tol):
        return None
    margin = logit_margin / k
    words = (f"the rows are affinely independent (V - 1 = {V - 1} <= d = {d}): by the span "
             f"theorem every label is argmaxable and every set of labels can lead, tied or "
             f"not; the witness solves W h + b = target logits exactly up to float64 rounding, "
             f"and its own logits, recomputed with a bound on their rounding, give the margin")
    if not others.any():
        words = ("the head has no other label, so these two are the top two at every hidden "
                 "state and the margin over the others is unbounded (+inf); the witness solves "
                 "the tie z_a = z_b exactly up to float64 rounding (its logits checked)")
    elif margin <= sp.tol:
        words += (f" (below the tolerance {sp.tol:.3g}, which guards LP solutions against the "
                  f"solver's own tolerance: an exact solve needs none)")
    check = SpanCheck(logit_margin, float(err.max(initial=0.0)),
                      float(np.abs(h).max(initial=0.0)))
    return Feasibility(question, head_labels, "yes", margin, sp.tol, h, None, sp.formulation,
                       "span", 0, reason=words, span=check)


__all__ = [
    "Simplex",
    "SpanBasis",
    "SpanWitnesses",
    "exact_answer",
    "simplex",
    "span_basis",
    "span_witnesses",
]
