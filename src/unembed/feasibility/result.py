"""What a feasibility question answers: the verdict, its witness or dual certificate, and what
it proves (:class:`Feasibility`, :class:`Certificate`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

Status = Literal["yes", "no", "undecided"]
#: The logits a witness realises: with the head's bias, or without it (``bias=False``).
Realises = Literal["W h + b", "W h"]
#: Where the bound on the hidden state came from: none (any h in R^d), the caller, or the
#: architecture's box recorded by the head's source.
BoundSource = Literal["none", "caller", "architecture"]


@dataclass(frozen=True, eq=False)
class SearchBound:
    """The bound on the hidden state h a question was decided under, and what it means.

    Attributes
    ----------
    source : {"none", "caller", "architecture"}
        "none": any h in R^d (the unit form); otherwise a box |h_j| <= r_j.
    meaning : str
        What "yes" and "no" then say about the model.
    radius : float or None
        The box's largest half-width max_j r_j (None without a box).
    radii : ndarray of shape (d,) or None
        The per-coordinate half-widths r_j, when they were given per coordinate.
    reason, rows : str or None
        For the architecture's box: where it comes from and which rows it applies to
        (:class:`unembed.bounds.HiddenBound`).
    """

    source: BoundSource
    meaning: str
    radius: float | None = None
    radii: NDArray[np.float64] | None = None
    reason: str | None = None
    rows: str | None = None

    @property
    def kind(self) -> str:
        """"unbounded" (no box) or "box"."""
        return "unbounded" if self.source == "none" else "box"

    @property
    def per_coordinate(self) -> bool:
        """Whether the box has its own half-width per coordinate."""
        return self.radii is not None

    def to_dict(self) -> dict[str, Any]:
        if self.source == "none":
            return {"kind": "unbounded", "source": "none", "meaning": self.meaning}
        out: dict[str, Any] = {"kind": "box", "source": self.source, "radius": self.radius,
                               "per_coordinate": self.per_coordinate}
        if self.radii is not None:
            out["radii"] = self.radii
        if self.source == "architecture":
            out["reason"] = self.reason
            out["rows"] = self.rows
        out["meaning"] = self.meaning
        return out


@dataclass(frozen=True)
class Rtol:
    """The relative tolerance used and where it came from ("given", or the default for the
    head's storage dtype)."""

    value: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "from": self.source}


@dataclass(frozen=True)
class SpanCheck:
    """How a span-theorem witness was checked: its logit margin over the other labels, the
    bound on the rounding of its recomputed logits, and max_j |h_j|."""

    logit_margin: float
    rounding_bound: float
    hidden_norm_inf: float

    def to_dict(self) -> dict[str, Any]:
        return {"logit_margin": self.logit_margin, "rounding_bound": self.rounding_bound,
                "hidden_norm_inf": self.hidden_norm_inf}


@dataclass(frozen=True)
class LpFinding:
    """What the LP alone had found before an exact answer replaced it."""

    status: Status
    margin: float

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "margin": self.margin}


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
    realises : {"W h + b", "W h"}
        The logits on which the witness shows the answer (before logit scale and soft-cap):
        ``"W h"`` only for ``bias=False`` on a head with a non-zero bias.
    lp_optimum : float or None
        The LP's optimum over the rows it had when it stopped (None without an LP).
    hidden_bound : SearchBound or None
        The bound on h the question was decided under.
    claim : str or None
        What the verdict proves about the model under that bound.
    rtol : Rtol or None
        The relative tolerance used and where it came from.
    lp_space : str or None
        Where the LP was solved, when not in R^d (the rows' span).
    reason : str or None
        Why, in words, where a rule rather than an LP decided (identical rows, the span
        theorem).
    covers : int or None
        For an infeasible ranking prefix: how many rankings it rules out.
    span : SpanCheck or None
        How a span-theorem witness was checked.
    lp : LpFinding or None
        What the LP alone had found, when an exact answer replaced it.
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
    realises: Realises = "W h + b"
    lp_optimum: float | None = None
    hidden_bound: SearchBound | None = None
    claim: str | None = None
    rtol: Rtol | None = None
    lp_space: str | None = None
    reason: str | None = None
    covers: int | None = None
    span: SpanCheck | None = None
    lp: LpFinding | None = None

    @property
    def feasible(self) -> bool:
        """True only for a "yes" backed by a witness."""
        return self.status == "yes"

    def __repr__(self) -> str:
        """One line: the question, its labels (the first six), the verdict and its evidence."""
        shown = ", ".join(repr(x) for x in self.labels[:6])
        more = f", … ({len(self.labels)} labels)" if len(self.labels) > 6 else ""
        evidence = ("witness" if self.witness is not None else
                    "certificate" if self.certificate is not None else "no witness or certificate")
        return (f"Feasibility({self.question} {shown}{more}: {self.status}, margin "
                f"{self.margin:.3g} (tol {self.tol:.2g}); {self.method}, {self.lp_solves} LPs, "
                f"{evidence})")

    def _repr_html_(self) -> str:
        from unembed._display import html

        return html("feasibility", self)

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
            **{k: v for k, v in (
                ("lp_optimum", self.lp_optimum),
                ("hidden_bound", None if self.hidden_bound is None
                 else self.hidden_bound.to_dict()),
                ("claim", self.claim),
                ("rtol", None if self.rtol is None else self.rtol.to_dict()),
                ("lp_space", self.lp_space),
                ("reason", self.reason),
                ("covers", self.covers),
                ("span", None if self.span is None else self.span.to_dict()),
                ("lp", None if self.lp is None else self.lp.to_dict())) if v is not None},
        }



def claim(status: str, bound: SearchBound) -> str:
    """What a verdict proves about the model, given the bound on h it was decided under."""
    src = bound.source
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


__all__ = ["BoundSource", "Certificate", "Feasibility", "LpFinding", "Realises", "Rtol",
           "SearchBound", "SpanCheck", "Status", "claim"]
