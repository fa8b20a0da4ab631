"""Bounds on the hidden states a model can produce, produced by sources and consumed by the
feasibility questions through this one module.

A source that knows the architecture puts a final LayerNorm / RMSNorm right before the head
records a :class:`HiddenBound` on the head (``Head.hidden_bound``): a box |h_j| <= r_j that
contains every hidden state the model can produce (:func:`norm_box`). The feasibility LPs read
it back with :func:`checked_box` (``radius="architecture"``). The box is a relaxation (the
normalised state also lies on a sphere): a "no" under it is a proof about the model, a "yes"
a witness in the box that the model may not reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError

__all__ = ["HiddenBound", "Rows", "checked_box", "norm_box"]

#: Which rows a head holds: as stored in the checkpoint, or with the final norm's gain (and
#: shift) folded in.
Rows = Literal["stored", "folded"]

_UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11,
                  "bfloat16": 2.0**-8}


@dataclass(frozen=True, eq=False)
class HiddenBound:
    """A box |h_j| <= ``radii[j]`` (d,) containing every hidden state of the head's input.

    ``reason`` says where it comes from; ``rows`` which rows of the head it applies to (the
    hidden state differs between stored and folded rows); ``norm`` the final norm's kind.
    """

    radii: NDArray[np.float64]
    reason: str
    rows: Rows
    norm: str

    @property
    def radius(self) -> float:
        """The largest half-width, max_j r_j."""
        return float(self.radii.max())

    def to_dict(self) -> dict[str, object]:
        return {"kind": "box", "radius": self.radius, "radii": self.radii,
                "reason": self.reason, "rows": self.rows, "norm": self.norm}


def norm_box(kind: str, gain: NDArray[np.float64], shift: NDArray[np.float64] | None,
             rows: Rows, dtype: str) -> HiddenBound:
    """The box every hidden state lies in after a final norm with gain g (and shift beta).

    The normalised state n has |n|_2 <= sqrt(d) (RMSNorm) or |n|_2 <= sqrt(d) with sum(n) = 0
    (LayerNorm), so |n_j| <= c with c = sqrt(d) or sqrt(d - 1). Then

    * stored rows (h = g * n + beta): |h_j| <= |g_j| c + |beta_j|;
    * folded rows (h = n): |h_j| <= c;

    each enlarged by a relative 4 u (u the unit roundoff of the model's dtype; 1e-12 for folded
    rows, where n is recomputed in float64) for the rounding of the computed state.

    >>> b = norm_box("rmsnorm", np.array([1.0, 2.0, 0.5, 1.0]), None, "stored", "float64")
    >>> b.radii.round(6).tolist(), b.rows
    ([2.0, 4.0, 1.0, 2.0], 'stored')
    """
    d = gain.shape[0]
    layer = kind == "layernorm"
    c = float(np.sqrt(d - 1 if layer and d > 1 else d))
    what = ("LayerNorm: |n|_2 <= sqrt(d) and sum(n) = 0, so |n_j| <= sqrt(d-1)" if layer else
            "RMSNorm: |n|_2 <= sqrt(d), so |n_j| <= sqrt(d)")
    g_name = "(1 + weight)" if kind == "rmsnorm_1p" else "g"
    if rows == "folded":
        slack = 1e-12
        radii = np.full(d, c * (1 + slack))
        reason = f"final {what}; folded rows, h = n: |h_j| <= {c:.6g}"
    else:
        slack = 4 * _UNIT_ROUNDOFF.get(dtype, 2.0**-24)
        beta = np.zeros(d) if shift is None else np.abs(shift)
        radii = (np.abs(gain) * c + beta) * (1 + slack)
        reason = (f"final {what}; stored rows, h = {g_name} * n"
                  + (" + beta: |h_j| <= |g_j| sqrt(d-1) + |beta_j|" if layer else
                     ": |h_j| <= |g_j| sqrt(d)"))
        if not np.all(radii > 0):  # a zero gain pins h_j = beta_j = 0: keep the box open
            radii = np.maximum(radii, c * 1e-12)
    reason += (f" (enlarged by a relative {slack:.2g} for rounding: n recomputed in float64)"
               if rows == "folded" else
               f" (enlarged by a relative {slack:.2g} for rounding in {dtype})")
    radii = np.array(radii, dtype=np.float64)
    radii.setflags(write=False)
    return HiddenBound(radii, reason, rows, kind)


def checked_box(bound: HiddenBound | None, d: int, *, equivalent: bool, where: str,
                family: str, func: str) -> HiddenBound:
    """The head's recorded bound, checked for use by ``func`` (``radius="architecture"``).

    Raises UnembedError when there is none (``family`` names the source), when the head was
    changed by a map that is not a symmetry (the bound no longer applies), or when its radii do
    not fit d.
    """
    if bound is None:
        raise UnembedError(f"is 'architecture', but {where} records "
                           f"no bound on its hidden states ({family}: no final LayerNorm/RMSNorm "
                           f"right "
                           f"before the head is known); pass a number or None.", argument="radius",
                           function=func)
    if not equivalent:
        raise UnembedError("is 'architecture', but this head (from "
                           f"{where}) was changed by a map that is not a symmetry, so the recorded "
                           f"bound on its hidden states no longer applies.", argument="radius",
                           function=func)
    r = bound.radii
    if r.shape != (d,) or not (np.isfinite(r).all() and (r > 0).all()):
        raise UnembedError(f"{where}: the recorded hidden_bound must have {d} positive finite "
                           f"radii. Got shape {r.shape} instead.")
    return bound
