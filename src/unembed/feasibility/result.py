"""What a feasibility question answers: the verdict, its witness or dual certificate, and what
it proves (:class:`Feasibility`, :class:`Certificate`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import pandas as pd

Status = Literal["yes", "no", "undecided"]
#: The logits a witness realises: with the head's bias, or without it (``bias=False``).
Realises = Literal["W h + b", "W h"]


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
