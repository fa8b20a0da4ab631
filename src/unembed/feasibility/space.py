"""The head's rows as the LP sees them (:class:`Space`): the bias used, the box on the hidden
state (none, a radius, per-coordinate half-widths, or the architecture's box), the tolerance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed.bounds import HiddenBound, checked_box
from unembed.feasibility.result import Realises, SearchBound
from unembed.head import Head

if TYPE_CHECKING:
    from unembed.feasibility.bases import Simplex, SpanBasis

#: LPs of wide heads (radius None, 2 V <= d) are solved in the rows' span (benchmarks set it
#: False to time the LPs in R^d).
SPAN_LPS = True


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

@dataclass(frozen=True, eq=False)
class Space:
    """The head's rows as the LP sees them: W (V, d) float64, the bias used, the box.

    ``radius`` is None (any h, unit form) or the largest half-width of the box; ``box`` (d,)
    holds the per-coordinate half-widths r_j when they differ (None: r_j = radius for all j);
    ``bound`` is the bound on h the results are decided under.
    """

    W: NDArray[np.float64]
    b: NDArray[np.float64]  # zeros when the bias is not used
    radius: float | None
    rtol: float
    centered: bool = True  # softmax: the scale is taken on centered rows (gauge invariant)
    box: NDArray[np.float64] | None = None
    bound: SearchBound = field(default_factory=lambda: SearchBound("none", MEANING["unbounded"]))
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

    @cached_property
    def tol(self) -> float:
        """rtol times the largest value a row can take in the box: 2 max_i |u_i - m| . r
        + 2 max_i |b_i| (m the rows' mean and b centered for softmax; computed once)."""
        from unembed._blocks import row_blocks

        W, b = self.W, self.b
        m = W.mean(axis=0) if self.centered else np.zeros(W.shape[1])
        if self.centered:
            b = b - b.mean()
        r = self.r
        top = max(float((np.abs(W[s:e] - m) @ r).max())  # in row blocks: no (V, d) copy
                  for s, e in row_blocks(*W.shape))
        scale = 2 * top + 2 * float(np.abs(b).max(initial=0.0))
        return float(self.rtol * scale)

    @cached_property
    def span(self) -> SpanBasis | None:
        """The rows' span as an orthonormal basis when the LPs are solved there (``radius``
        None and 2 V <= d; see :mod:`unembed.feasibility.span`), else None."""
        from unembed.feasibility.bases import span_basis

        V, d = self.W.shape
        return span_basis(self.W) if SPAN_LPS and self.radius is None and 2 * V <= d else None

    @cached_property
    def simplex(self) -> Simplex | None:
        """The rows as a simplex when the span theorem can apply (see
        :func:`unembed.feasibility.bases.simplex_of`), else None; computed once."""
        from unembed.feasibility.bases import simplex_of

        return simplex_of(self.W, self.radius)

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
                   ) -> tuple[float | None, NDArray[np.float64] | None, SearchBound]:
    """``radius`` as (largest half-width or None, per-coordinate box or None, the bound)."""
    if radius is None:
        return None, None, SearchBound("none", MEANING["unbounded"])
    if isinstance(radius, str):
        if radius not in ("architecture", "arch"):
            raise UnembedError("must be a positive number, an array "
                               f"of shape ({head.d},), 'architecture' or None. Got {radius!r} "
                               f"instead.", argument="radius", function=func)
        hb = architecture_bound(head, func)
        r = hb.radii
        return float(r.max()), r, SearchBound("architecture", MEANING["architecture"],
                                              float(r.max()), r, hb.reason, hb.rows)
    arr = np.asarray(radius, dtype=np.float64) if not np.isscalar(radius) else None
    if arr is not None and arr.ndim == 1:
        if arr.shape != (head.d,) or not (np.isfinite(arr).all() and (arr > 0).all()):
            raise UnembedError("must be positive finite with shape "
                               f"({head.d},). Got shape {arr.shape} instead.", argument="radius",
                               function=func)
        return float(arr.max()), arr, SearchBound("caller", MEANING["caller"],
                                                  float(arr.max()), arr)
    try:
        R = float(radius)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        R = np.nan
    if not (np.isfinite(R) and R > 0):
        raise UnembedError("must be a positive number or None. "
                           f"Got {radius!r} instead.", argument="radius", function=func)
    return R, None, SearchBound("caller", MEANING["caller"], R)


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
