"""Changes of parameters that change no probability, and which of them hold for a given head
(docs/symmetries.md has each one with its proof).

===================  =========================  ==============================================
name                 parameters after           holds when
===================  =========================  ==============================================
``translation``      u_i + c for every i        softmax link, logits not soft-capped
``bias_shift``       b_i + beta                 softmax link, logits not soft-capped
``reparametrization``  W A^{-1}, h -> A h       the module producing h can absorb A
``null_space``       u_i + n_i, n_i . h = 0     a known subspace orthogonal to every h
===================  =========================  ==============================================

``translate``, ``shift_bias``, ``center`` and ``shift_in_null_space`` return a
new :class:`~unembed.head.Head`; :func:`reparametrize` returns a pair ``(new_head, A)``, since
the hidden states must become ``A h`` too. None mutates its input. A transformation that is not
a symmetry of the head raises :class:`UnembedError` with the reason, unless called
with ``force=True`` (the result then says why in ``not_equivalent_because``, and its
``equivalent`` is False).

Examples
--------
>>> import numpy as np
>>> from unembed import Head
>>> head = Head(np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]), reparam=True)
>>> {k: s.holds for k, s in symmetries(head).items()}
{'translation': True, 'bias_shift': True, 'reparametrization': True, 'null_space': None}
>>> h = np.array([[0.3, -1.2], [2.0, 0.5]])
>>> moved = translate(head, [5.0, -3.0])
>>> bool(np.allclose(moved.probs(h), head.probs(h), rtol=0, atol=1e-15))
True
>>> new, A = reparametrize(head, [[2.0, 1.0], [0.0, 1.0]])   # a pair: h must become A h
>>> bool(np.allclose(new.logits(h @ A.T), head.logits(h), rtol=0, atol=1e-12))
True
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from unembed._blocks import owned
from unembed._checks import UnembedError, check_vector
from unembed.errors import FORCE

if TYPE_CHECKING:  # gauges never imports head at run time: Head's methods import gauges
    from unembed.head import Head

__all__ = [
    "Symmetry",
    "center",
    "reparametrize",
    "shift_bias",
    "shift_in_null_space",
    "symmetries",
    "translate",
]

SYMMETRY_NAMES = ("translation", "bias_shift", "reparametrization", "null_space")


@dataclass(frozen=True)
class Symmetry:
    """Whether one transformation keeps every probability of a head, and why (not).

    ``holds`` is True, False, or None when it depends on what the head's source cannot tell
    (for a bare weight file: whether the trunk ends in an affine map).
    """

    name: str
    holds: bool | None
    reason: str

    def __repr__(self) -> str:
        """One line: the transformation, whether it holds, the start of the reason."""
        word = {True: "holds", False: "does not hold", None: "unknown"}[self.holds]
        why = self.reason if len(self.reason) <= 160 else self.reason[:157] + "…"
        return f"Symmetry({self.name}: {word}; {why})"

    def _repr_html_(self) -> str:
        from unembed._display import html

        return html("symmetry", self)

    def to_dict(self) -> dict[str, object]:
        return {"holds": self.holds, "reason": self.reason}


def _shift_symmetry(head: Head, name: str, what: str) -> Symmetry:
    if head.link == "sigmoid":
        return Symmetry(name, False,
                        f"sigmoid link: each label's probability depends on its own logit, so "
                        f"{what} changes probabilities")
    if head.softcap is not None:
        return Symmetry(name, False,
                        f"logits are soft-capped (cap * tanh(z / cap), cap = {head.softcap:g}): "
                        f"a uniform shift of the logits does not survive the tanh, so {what} "
                        f"changes probabilities")
    return Symmetry(name, True,
                    "softmax is invariant to adding the same amount to every logit, and "
                    f"{what} adds the same amount to every logit of every input")


def symmetries(head: Head) -> dict[str, Symmetry]:
    """Which transformations of docs/symmetries.md keep every probability of ``head``."""
    out = {
        "translation": _shift_symmetry(head, "translation", "translating every row by c"),
        "bias_shift": _shift_symmetry(head, "bias_shift", "shifting every bias by beta"),
    }
    if head.reparam is True:
        rep = Symmetry("reparametrization", True,
                       "the module producing h ends in an affine map that can absorb an "
                       "invertible A (W A^{-1} applied to A h gives the same logits)")
    elif head.reparam is False:
        rep = Symmetry("reparametrization", False,
                       head.reparam_reason or "the hidden state cannot be replaced by A h")
    else:
        rep = Symmetry("reparametrization", None,
                       "holds only if the module producing h ends in an affine map that can "
                       "absorb A; unknown for a bare weight matrix")
    out["reparametrization"] = rep
    if head.null_space is not None:
        out["null_space"] = Symmetry("null_space", True,
                                     f"every reachable h is orthogonal to a known "
                                     f"{head.null_space.shape[1]}-dimensional subspace "
                                     f"({head.null_space_reason or 'given'}); rows "
                                     f"may move within it")
    else:
        out["null_space"] = Symmetry("null_space", None,
                                     "no subspace orthogonal to every hidden state is known "
                                     "for this head")
    return out


def _require(head: Head, name: str, force: bool, func: str) -> str | None:
    """None when ``name`` is a symmetry of the head; else raise, or with ``force`` return why
    the result will not be equivalent."""
    sym = symmetries(head)[name]
    if sym.holds:
        return None
    if not force:
        raise UnembedError((f"{name} is not a symmetry of this head ({sym.reason}); pass ", FORCE,
                            " to build the non-equivalent head anyway."))
    return sym.reason


def translate(head: Head, c: ArrayLike, *, force: bool = False) -> Head:
    """Translate every row: u_i -> u_i + c, with c of shape (d,).

    Every logit moves by c . h, the same for all labels, so softmax probabilities are
    unchanged exactly (when no soft-cap sits after the logits). Raises for sigmoid or
    soft-capped heads unless ``force``.
    """
    cc = check_vector(c, "c", head.d, where="translate")
    extra = _require(head, "translation", force, "translate")
    return head.with_weights(owned(head.W + cc[None, :]), not_equivalent_because=extra)


def shift_bias(head: Head, beta: float, *, force: bool = False) -> Head:
    """Add the same beta to every bias entry (a head without bias gets one)."""
    if not np.isfinite(beta):
        raise UnembedError("must be finite", argument="beta", function="shift_bias", got=beta)
    extra = _require(head, "bias_shift", force, "shift_bias")
    return head.with_weights(b=head.bias + float(beta), not_equivalent_because=extra)


def center(head: Head, weights: ArrayLike | None = None, *, force: bool = False) -> Head:
    """Translate by c = -sum_k w_k u_k so the w-weighted mean row is zero.

    ``weights`` of shape (V,) must sum to 1 (default: uniform). Any such weighting cancels
    translation; different weightings give different centered rows for the same model.
    """
    m = weighted_mean(head.W, weights)
    return translate(head, -m, force=force)


def weighted_mean(W: NDArray[np.float64], weights: ArrayLike | None = None) -> NDArray[np.float64]:
    """sum_k w_k u_k for weights summing to 1 (uniform by default); shape (d,)."""
    if weights is None:
        return np.asarray(W.mean(axis=0), dtype=np.float64)
    w = check_vector(weights, "weights", W.shape[0], where="center")
    total = w.sum()
    if abs(total - 1.0) > 1e-9:
        raise UnembedError(f"must sum to 1. Got a sum of {total!r} instead", argument="weights",
                           function="center")
    return np.asarray(w @ W, dtype=np.float64)


def reparametrize(
    head: Head, A: ArrayLike, *, force: bool = False
) -> tuple[Head, NDArray[np.float64]]:
    """Replace W by W A^{-1}; the hidden state must become A h (returned as the map A).

    Logits (W A^{-1})(A h) = W h are unchanged exactly, for either link, provided the module
    producing h can absorb A. Returns ``(new_head, A)`` with A of shape (d, d) float64.
    """
    a = np.asarray(A, dtype=np.float64)
    if a.shape != (head.d, head.d):
        raise UnembedError(f"must have shape ({head.d}, {head.d}). Got "
                                              f"shape {a.shape} instead", argument="A",
                           function="reparametrize")
    if not np.isfinite(a).all():
        raise UnembedError("must be finite (it contains NaN or Inf)", argument="A",
                           function="reparametrize")
    cond = np.linalg.cond(a)
    if not np.isfinite(cond) or cond > 1e12:
        raise UnembedError(f"must be invertible. Got a condition number of "
                                              f"{cond:.3g} instead", argument="A",
                           function="reparametrize")
    extra = _require(head, "reparametrization", force, "reparametrize")
    a_inv = np.linalg.inv(a)
    new = head.with_weights(owned(head.W @ a_inv), not_equivalent_because=extra)
    if head.null_space is not None:
        new = replace(new, null_space=a_inv.T @ head.null_space)
    return new, a


def shift_in_null_space(head: Head, coeffs: ArrayLike) -> Head:
    """Move each row within the known null space: u_i -> u_i + N k_i, coeffs of shape (V, k)."""
    if head.null_space is None:
        raise UnembedError("No subspace orthogonal to every hidden state is known for this head, "
                           "so "
                           "no row can be shifted within one.")
    k = head.null_space.shape[1]
    cf = np.asarray(coeffs, dtype=np.float64)
    if cf.ndim == 1 and k == 1:
        cf = cf[:, None]
    if cf.shape != (head.n_labels, k):
        raise UnembedError(f"must have shape ({head.n_labels}, "
                                                         f"{k}). Got shape {cf.shape} instead",
                           argument="coeffs", function="shift_in_null_space")
    return head.with_weights(owned(head.W + cf @ head.null_space.T))
