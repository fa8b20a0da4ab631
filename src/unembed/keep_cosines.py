"""Same cosines, different behaviour (v2 of the paper; docs/feasibility.md, "Same cosines,
different behaviour").

Raw cosines are unchanged when rows are rescaled by positive factors a_k > 0
(cos(a_i u_i, a_k u_k) = cos(u_i, u_k)); what a head can predict is not.

Making a label unargmaxable. Rows u_k, bias b (zero when the head has none). If u_i lies in
the cone of the other rows, u_i = sum_k nu_k u_k with nu >= 0 and L = sum_k nu_k > 0, then
the row a_i u_i with a_i = 1 / L equals sum_k mu_k u_k with mu = nu / L convex weights, so at
every hidden state

    z_i - sum_k mu_k z_k = b_i - sum_k mu_k b_k.

When that is <= 0 (always without a bias), z_i <= sum_k mu_k z_k <= max_k z_k: label i is
never the strict argmax (a tie at best). This is exactly the dual certificate of the "no" of
:func:`unembed.feasibility.is_argmaxable` (convex weights with sum_k mu_k (u_i - u_k) = 0 and
sum_k mu_k (b_i - b_k) <= 0), so the construction is complete for rescaling row i alone: one
LP finds nu >= 0 with sum_k nu_k u_k = u_i and sum_k nu_k (b_k - b_i) >= 0, minimising
sum_k nu_k. When no such nu exists:

* without a bias, u_i is outside the cone of the others; by Farkas' lemma some h has
  u_i . h > 0 >= u_k . h for every k, and positive factors keep those signs, so label i stays
  argmaxable under every rescaling: impossible;
* with a bias but a cone representation, every representation leaves
  b_i - sum_k mu_k b_k > 0: the bias lifts label i above the hull wherever the others tie;
  rescaling row i alone cannot remove that (the other rows are not searched).

Shrinking u_i further than 1 / L does not help: a row near 0 wins wherever every other logit
is negative. Every result is verified: the LP before (a witness) and after (a certificate),
and the largest change of any raw cosine, recomputed in float64.

Pairs that lead together. Labels i and j are the top two at h iff z_i = z_j > z_k for every
other k. On the tie set z_i = z_j equals x z_i + y z_j for any x + y = 1, so if some point
x a_i u_i + y a_j u_j with x + y = 1 is a convex combination of the other rows (no bias),
then z_i = z_j <= max_k z_k there: the pair never leads together. With the others' rows
fixed, one LP finds convex mu and free p, q with sum_k mu_k u_k = p u_i + q u_j and
max(p, q) > 0; then a_i, a_j > 0 with p / a_i + q / a_j = 1 exist (both positive: a = 2p, 2q;
one positive, say p: a_j = 1, a_i = p / (1 - q)). When the LP finds none, the plane of u_i and
u_j misses the hull of the others in that way: impossible by rescaling these two rows.

Pairs with a bias (the bias kept). Write the combination in the new rows: with
alpha = x a_i, beta = y a_j and x + y = 1, sum_k mu_k u_k = alpha u_i + beta u_j. On the tie
z_i = z_j = t every new logit satisfies a_i u_i . h = t - b_i and a_j u_j . h = t - b_j, so

    sum_k mu_k z_k = x (t - b_i) + y (t - b_j) + sum_k mu_k b_k = t + s,
    s = sum_k mu_k b_k - x b_i - (1 - x) b_j,

and s >= 0 means max_k z_k >= t on the whole tie set: the pair never leads together. The
factors a_i = alpha / x > 0 and a_j = beta / (1 - x) > 0 need alpha, x of one sign and beta,
1 - x of one sign: three cases, x in (0, 1) (alpha, beta > 0), x > 1 (alpha > 0 > beta) and
x < 0 (alpha < 0 < beta), plus x = 1, beta = 0 (and x = 0, alpha = 0), where the other factor
stays 1. For fixed x each case is linear in (mu, alpha, beta, s): one LP per case maximises s
(margins of 1e-6 keep the signs strict); a case with s >= 0 gives the factors. When no case
has s >= 0, no convex combination of the other rows on the plane of u_i and u_j carries enough
bias to hold the tie down: for every choice of positive factors (the bias unchanged) some
combination condition fails, and the construction says so (it does not claim the pair can
then still lead together for every rescaling; the LP before and after decides each head).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed.feasibility import Feasibility, can_be_top_two, is_argmaxable
from unembed.head import Head, LabelRef

__all__ = ["KeepCosines", "not_top_two_keeping_cosines", "unargmaxable_keeping_cosines"]

_HIGHS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}


@dataclass(frozen=True, eq=False)
class KeepCosines:
    """A head with the same raw cosines in which a label (or pair) lost a behaviour.

    Attributes
    ----------
    head : Head
        The new head: rows a_k u_k, the bias unchanged.
    question : {"argmaxable", "top_two"}
    labels : tuple of str
    scales : ndarray of shape (V,)
        The positive factors a_k (1 for rows left alone).
    before, after : Feasibility
        The LP's answer on the old head ("yes" with a witness) and on the new one ("no" with a
        certificate).
    cosine_change : float
        max |cos(a_k u_k, a_l u_l) - cos(u_k, u_l)| over every pair that involves a rescaled
        row, recomputed in float64.
    weights : dict str -> float
        The convex weights mu of the combination used (label -> weight), and for a pair the
        coefficients p, q of its two rows.
    """

    head: Head
    question: str
    labels: tuple[str, ...]
    scales: NDArray[np.float64]
    before: Feasibility
    after: Feasibility
    cosine_change: float
    weights: dict[str, float] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """True when the behaviour is gone on the new head (the LP after says "no")."""
        return self.after.status == "no" and self.before.status == "yes"

    def __repr__(self) -> str:
        """One line: the behaviour asked about, before and after, the rows rescaled and how
        far any raw cosine moved."""
        moved = int(np.count_nonzero(self.scales != 1.0))
        labels = ", ".join(repr(x) for x in self.labels)
        return (f"KeepCosines({self.question} {labels}: {self.before.status} -> "
                f"{self.after.status} ({'changed' if self.changed else 'not changed'}); "
                f"{moved} of {self.scales.size} rows rescaled, max raw cosine change "
                f"{self.cosine_change:.2g})")

    def _repr_html_(self) -> str:
        from unembed._display import html

        return html("keep_cosines", self)

    def to_dict(self) -> dict[str, Any]:
        moved = np.flatnonzero(self.scales != 1.0)
        return {
            "question": self.question,
            "labels": list(self.labels),
            "changed": self.changed,
            "scales": {self.head.labels[k]: float(self.scales[k]) for k in moved},
            "cosine_change": self.cosine_change,
            "weights": self.weights,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
        }


def _cosine_change(W: NDArray[np.float64], W2: NDArray[np.float64],
                   rows: NDArray[np.int64]) -> float:
    """Largest change of a raw cosine between a rescaled row and any row (float64)."""
    if rows.size == 0:
        return 0.0
    n1 = np.linalg.norm(W, axis=1)
    n2 = np.linalg.norm(W2, axis=1)
    c1 = (W[rows] @ W.T) / (n1[rows, None] * n1[None, :])
    c2 = (W2[rows] @ W2.T) / (n2[rows, None] * n2[None, :])
    return float(np.abs(c1 - c2).max())


def _solve(c: NDArray[np.float64], A_eq: NDArray[np.float64], b_eq: NDArray[np.float64],
           A_ub: NDArray[np.float64] | None, b_ub: NDArray[np.float64] | None,
           bounds: list[tuple[float | None, float | None]]) -> NDArray[np.float64] | None:
    from scipy.optimize import linprog

    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=bounds,
                  method="highs", options=_HIGHS)
    return None if res.status != 0 or res.x is None else np.asarray(res.x, dtype=np.float64)


def unargmaxable_keeping_cosines(head: Head, label: LabelRef, *, rtol: float | None = None
                                 ) -> KeepCosines:
    """Rescale the row of ``label`` so that it can no longer be the argmax, every raw cosine
    unchanged (see the module docstring for the construction and when it is impossible).

    Examples
    --------
    >>> import numpy as np
    >>> from unembed import Head
    >>> W = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [2.0, 2.0]])
    >>> r = unargmaxable_keeping_cosines(Head(W), 3)   # (2, 2) is in the cone of (1,0), (0,1)
    >>> r.before.status, r.after.status, r.cosine_change < 1e-12
    ('yes', 'no', True)
    >>> r.head.W[3]
    array([0.5, 0.5])
    """
    i = head.index(label)
    name = head.labels[i]
    before = is_argmaxable(head, i, rtol=rtol)
    W, b = head.W, head.bias
    others = np.array([k for k in range(head.n_labels) if k != i], dtype=np.int64)
    if others.size == 0:
        raise UnembedError("The head has one label; it is always the argmax.")
    if before.status == "undecided":
        raise UnembedError(f"Label {name!r} is undecided on this head: neither a witness nor a "
                           f"certificate within the tolerance (margin {before.margin:.3g}, tol "
                           f"{before.tol:.3g}), so there is no argmaxable label to take away; a "
                           f"smaller rtol may decide it.")
    if before.status != "yes":
        raise UnembedError(f"Label {name!r} is already not argmaxable on this head (a certificate: "
                           f"margin {before.margin:.3g} <= tol {before.tol:.3g}); nothing to "
                           f"construct.")
    scale = max(float(np.abs(W).max()), 1e-300)
    biased = bool(np.any(b != 0))
    A_ub = b_ub = None
    if biased:  # sum_k nu_k (b_k - b_i) >= 0
        A_ub = -(b[others] - b[i])[None, :]
        b_ub = np.zeros(1)
    nu = _solve(np.ones(others.size), W[others].T / scale, W[i] / scale, A_ub, b_ub,
                [(0.0, None)] * others.size)
    if nu is None:
        if biased and _solve(np.ones(others.size), W[others].T / scale, W[i] / scale, None,
                             None, [(0.0, None)] * others.size) is not None:
            raise UnembedError(f"Impossible by rescaling the row of {name!r}: its row is in "
                               f"the cone of the other rows, but every such combination sum_k mu_k "
                               f"u_k has sum_k mu_k b_k < b_{name}, so the bias keeps z_{name} "
                               f"above "
                               f"that combination of the other logits and the label argmaxable.")
        raise UnembedError(f"Impossible: the row of {name!r} is outside the cone of the other "
                           f"rows, so some hidden state makes z_{name} > 0 >= every other logit "
                           f"(bias aside), and positive rescaling keeps those signs.")
    L = float(nu.sum())
    scales = np.ones(head.n_labels)
    scales[i] = 1.0 / L
    W2 = W * scales[:, None]
    new = head.with_weights(W2, meta={"construction": f"keep-cosines: {name!r} made "
                                                      f"unargmaxable"})
    after = is_argmaxable(new, i, rtol=rtol)
    keep = np.flatnonzero(nu / L > 1e-12)
    weights = {head.labels[int(others[k])]: float(nu[k] / L) for k in keep}
    res = KeepCosines(new, "argmaxable", (name,), scales, before, after,
                      _cosine_change(W, W2, np.array([i])), weights)
    if after.status != "no":
        raise UnembedError(f"The rescaled head was not verified: the LP says {after.status!r} "
                           f"for {name!r} (margin {after.margin:.3g}, tol {after.tol:.3g}).")
    return res


def not_top_two_keeping_cosines(head: Head, a: LabelRef, b: LabelRef, *, rtol: float | None = None
                                ) -> KeepCosines:
    """Rescale the rows of ``a`` and ``b`` so that they can no longer be the top two together,
    every raw cosine unchanged and the bias kept (see the module docstring for both cases, with
    and without a bias, and when it is impossible).

    Examples
    --------
    >>> import numpy as np
    >>> from unembed import Head
    >>> W = np.array([[1.0, 0.0], [0.0, 1.0], [0.4, 0.4], [-1.0, -1.0]])
    >>> r = not_top_two_keeping_cosines(Head(W), 0, 1)
    >>> r.before.status, r.after.status, r.cosine_change < 1e-12
    ('yes', 'no', True)
    """
    i, j = head.index(a, argument="a"), head.index(b, argument="b")
    if i == j:
        raise UnembedError(f"The two labels must differ. Got "
                           f"{head.labels[i]!r} twice.")
    names = (head.labels[i], head.labels[j])
    before = can_be_top_two(head, i, j, rtol=rtol)
    if before.status == "undecided":
        raise UnembedError(f"Whether {names[0]!r} and {names[1]!r} can lead together is undecided "
                           f"on "
                           f"this head: neither a witness nor a certificate within the tolerance "
                           f"(margin {before.margin:.3g}, tol {before.tol:.3g}); a smaller rtol "
                           f"may "
                           f"decide it.")
    if before.status != "yes":
        raise UnembedError(f"{names[0]!r} and {names[1]!r} already cannot lead together (a "
                           f"certificate: margin {before.margin:.3g} <= tol {before.tol:.3g}); "
                           f"nothing "
                           f"to construct.")
    W = head.W
    others = np.array([k for k in range(head.n_labels) if k not in (i, j)], dtype=np.int64)
    if others.size == 0:
        raise UnembedError("The head has only these two labels; they always lead together.")
    if np.any(head.bias != 0):
        return _not_top_two_biased(head, i, j, others, before, rtol)
    scale = max(float(np.abs(W).max()), 1e-300)
    n = others.size
    # variables: mu (n) >= 0 with sum 1, p, q in [-1e6, 1e6]; sum mu_k u_k - p u_i - q u_j = 0
    A_eq = np.vstack([np.hstack([W[others].T, -W[i][:, None], -W[j][:, None]]) / scale,
                      np.r_[np.ones(n), 0.0, 0.0][None, :]])
    b_eq = np.r_[np.zeros(head.d), 1.0]
    bounds: list[tuple[float | None, float | None]] = [(0.0, None)] * n + [(-1e6, 1e6)] * 2
    best: NDArray[np.float64] | None = None
    for col in (n, n + 1):  # maximise p, then q
        c = np.zeros(n + 2)
        c[col] = -1.0
        x = _solve(c, A_eq, b_eq, None, None, bounds)
        if x is not None and x[col] > 1e-9 and (best is None or x[col] > max(best[n:])):
            best = x
    if best is None:
        raise UnembedError(f"Impossible by rescaling these two rows: no point p u_a + q u_b "
                           f"with p or q positive is a convex combination of the other rows, so "
                           f"{names[0]!r} and {names[1]!r} keep a hidden state where they lead "
                           f"together.")
    mu, p, q = best[:n], float(best[n]), float(best[n + 1])
    if p > 0 and q > 0:
        ai, aj = 2 * p, 2 * q
    elif p > 0:
        aj = 1.0
        ai = p / (1.0 - q)
    else:
        ai = 1.0
        aj = q / (1.0 - p)
    scales = np.ones(head.n_labels)
    scales[i], scales[j] = ai, aj
    W2 = W * scales[:, None]
    new = head.with_weights(W2, meta={"construction": f"keep-cosines: {names[0]!r} and "
                                                      f"{names[1]!r} never lead together"})
    after = can_be_top_two(new, i, j, rtol=rtol)
    keep = np.flatnonzero(mu > 1e-12)
    weights = {head.labels[int(others[k])]: float(mu[k]) for k in keep}
    weights.update({f"p:{names[0]}": p / ai, f"q:{names[1]}": q / aj})
    return _verified_pair(head, new, scales, names, before, after, weights, i, j)


def _verified_pair(head: Head, new: Head, scales: NDArray[np.float64], names: tuple[str, str],
                   before: Feasibility, after: Feasibility, weights: dict[str, float],
                   i: int, j: int) -> KeepCosines:
    res = KeepCosines(new, "top_two", names, scales, before, after,
                      _cosine_change(head.W, new.W, np.array([i, j])), weights)
    if after.status != "no":
        raise UnembedError(f"The rescaled head was not verified: the LP says {after.status!r} "
                           f"(margin {after.margin:.3g}, tol {after.tol:.3g}).")
    return res


_EPS = 1e-6  # strict signs in the pair LPs with a bias


def _not_top_two_biased(head: Head, i: int, j: int, others: NDArray[np.int64],
                        before: Feasibility, rtol: float | None) -> KeepCosines:
    """The pair construction with a bias (module docstring): one LP per sign case."""
    W, b = head.W, head.bias
    names = (head.labels[i], head.labels[j])
    scale = max(float(np.abs(W).max()), 1e-300)
    n = others.size
    big = 1e6
    # variables: mu (n), alpha, beta, x, s. Rows: sum mu u_k - alpha u_i - beta u_j = 0,
    # sum mu = 1; s - mu.b + x (b_i - b_j) <= -b_j  (s <= mu.b - x b_i - (1 - x) b_j).
    A_eq = np.vstack([
        np.hstack([W[others].T, -W[i][:, None], -W[j][:, None], np.zeros((head.d, 2))])
        / scale,
        np.r_[np.ones(n), 0.0, 0.0, 0.0, 0.0][None, :]])
    b_eq = np.r_[np.zeros(head.d), 1.0]
    A_ub = np.r_[-b[others], 0.0, 0.0, b[i] - b[j], 1.0][None, :]
    b_ub = np.array([-b[j]])
    bmax = float(np.abs(b).max())
    s_cap = (0.0, 2 * bmax + 1.0)  # s >= 0 is what is asked; capped so the LP is bounded
    cases: list[tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = [
        ((_EPS, big), (_EPS, big), (_EPS, 1 - _EPS)),  # alpha, beta > 0, x in (0, 1)
        ((_EPS, big), (-big, -_EPS), (1 + _EPS, big)),  # x > 1
        ((-big, -_EPS), (_EPS, big), (-big, -_EPS)),  # x < 0
        ((_EPS, big), (0.0, 0.0), (1.0, 1.0)),  # beta = 0, x = 1: row j's factor free
        ((0.0, 0.0), (_EPS, big), (0.0, 0.0)),  # alpha = 0, x = 0
    ]
    c = np.zeros(n + 4)
    c[-1] = -1.0  # maximise s
    best: NDArray[np.float64] | None = None
    for ab, bb, xb in cases:
        bounds: list[tuple[float | None, float | None]] = [(0.0, None)] * n + [ab, bb, xb,
                                                                             s_cap]
        got = _solve(c, A_eq, b_eq, A_ub, b_ub, bounds)
        if got is not None and (best is None or got[-1] > best[-1]):
            best = got
    if best is None:
        raise UnembedError(f"Impossible by rescaling these two rows with the bias kept: no convex "
                           f"combination of the other rows equal to alpha u_a + beta u_b (signs "
                           f"allowing positive factors) has sum_k mu_k b_k >= x b_a + (1 - x) b_b, "
                           f"so on the tie z_{names[0]} = z_{names[1]} the others' logits are "
                           f"never "
                           f"forced up to it by such a combination.")
    mu, alpha, beta, x = best[:n], float(best[n]), float(best[n + 1]), float(best[n + 2])
    ai = alpha / x if x != 0 else 1.0
    aj = beta / (1.0 - x) if x != 1 else 1.0
    scales = np.ones(head.n_labels)
    scales[i], scales[j] = ai, aj
    new = head.with_weights(W * scales[:, None],
                            meta={"construction": f"keep-cosines: {names[0]!r} and "
                                                  f"{names[1]!r} never lead together (bias "
                                                  f"kept)"})
    after = can_be_top_two(new, i, j, rtol=rtol)
    keep = np.flatnonzero(mu > 1e-12)
    weights = {head.labels[int(others[k])]: float(mu[k]) for k in keep}
    weights.update({f"x:{names[0]}": x, f"1-x:{names[1]}": 1.0 - x,
                    "bias_slack": float(best[-1])})
    return _verified_pair(head, new, scales, names, before, after, weights, i, j)
