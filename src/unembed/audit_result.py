"""The result objects of the audit (:func:`unembed.audit.audit`): plain dataclasses, no markup
(:mod:`unembed.report` and :mod:`unembed._reprs` render them), JSON through ``to_dict``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from unembed.advice import SYMMETRY_WORDS, Advice, RankCorrelation
from unembed.behaviour import Behaviour
from unembed.claim_one import ClaimOneDetails, RandomStateCheck, TranslationCase
from unembed.contradictions import CONTRADICTION_KINDS, Contradiction
from unembed.moments import ParkDistance
from unembed.pair_claims import Claim, WitnessRegion
from unembed.views import INVARIANT_UNDER

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from unembed.pair_table import PairTable

def _invariance_text(names: frozenset[str]) -> str:
    yes = [w for k, w in SYMMETRY_WORDS.items() if k in names]
    no = [w for k, w in SYMMETRY_WORDS.items() if k not in names]
    return ", ".join(yes) + ("" if not no else "; not " + ", not ".join(no))


#: What each view is unchanged by (:data:`unembed.views.INVARIANT_UNDER`, for a softmax head
#: without a soft-cap; :func:`unembed.views.invariance` says it for one head), and the logit
#: view: every change of parameters that keeps the probabilities.
INVARIANCE: dict[str, str] = {
    **{v: _invariance_text(names) for v, names in INVARIANT_UNDER.items()},
    "logit": "translation, bias shift, null-space shifts and reparametrisation (S -> A S A^T): "
             "every change of parameters that keeps the probabilities; a property of the "
             "model and this data",
}
INVARIANCE["raw"] += " (a translation of the rows sets it to any value: claim 1)"

__all__ = ["INVARIANCE", "AuditInputs", "AuditResult", "ClaimOneDetails", "LogitViewInfo",
           "RandomStateCheck", "TranslationCase"]


# ---------------------------------------------------------------------------- results
@dataclass
class AuditInputs:
    """Every input of one audit: the files (None where not a file) and the options."""

    model: str | None = None
    bias: str | None = None
    labels: str | None = None
    data: str | None = None
    options: dict[str, object] = field(default_factory=dict)
    unembed_version: str = ""


@dataclass
class LogitViewInfo:
    """The ``logit`` view's data and its distance from the causal view's assumption."""

    source: str
    n_states: int
    park: ParkDistance | None
    park_reason: str | None


@dataclass
class AuditResult:
    """Everything the audit found; :meth:`to_dict` gives every number (JSON-ready)."""

    model: dict[str, Any]
    labels: tuple[str, ...]
    behaviour: Behaviour
    similarities: dict[str, NDArray[np.float64]]
    undefined_views: dict[str, str]
    undefined_measures: dict[str, str]
    correlations: list[RankCorrelation]
    contradictions: list[Contradiction]
    claims: list[Claim]
    timings: dict[str, float]
    advice: Advice
    region: WitnessRegion
    inputs: AuditInputs = field(default_factory=AuditInputs)
    logit: LogitViewInfo | None = None
    co_top: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def pair_table(self) -> PairTable:
        """Every pair of the label set, one row per view: label_a, label_b, view, cosine and
        each behavioural measure (long format; ``.to_frame()``, ``.write("pairs.csv")``)."""
        from unembed.pair_table import pairs_from_matrices

        return pairs_from_matrices(self.labels, self.similarities, self.behaviour.matrices)

    def to_frame(self) -> pd.DataFrame:
        """:meth:`pair_table` as a pandas DataFrame (pandas imported only here)."""
        return self.pair_table().to_frame()

    def __repr__(self) -> str:
        shown = [c.number for c in self.claims if c.shown]
        return (f"AuditResult({len(self.labels)} labels, {self.behaviour.n_predictions} "
                f"predictions, views={list(self.similarities)}, claims shown={shown})")

    def _repr_html_(self) -> str:
        from unembed._display import html

        return html("audit", self)

    def to_dict(self) -> dict[str, Any]:
        b = self.behaviour
        return {
            "inputs": asdict(self.inputs),
            "model": self.model,
            "data": {"n_predictions": b.n_predictions, "top_k": b.top_k,
                     "label_selection": b.selection},
            "labels": list(self.labels),
            "label_mean_probability": b.tally.mean_p[b.idx].tolist(),
            "label_argmax_count": b.tally.argmax_count[b.idx].tolist(),
            "similarity": {v: m.tolist() for v, m in self.similarities.items()},
            "views": {v: {"defined": v not in self.undefined_views,
                          "reason": self.undefined_views.get(v),
                          "invariant_under": INVARIANCE.get(v, "")}
                      for v in self.similarities},
            "logit_view": None if self.logit is None else {
                "data": self.logit.source, "n_states": self.logit.n_states,
                "park_distance": None if self.logit.park is None else self.logit.park.to_dict(),
                "park_distance_reason": self.logit.park_reason},
            "behaviour": {m: x.tolist() for m, x in b.matrices.items()},
            "measures": {m: {"defined": m not in self.undefined_measures,
                             "reason": self.undefined_measures.get(m),
                             "carrying_pairs": self.advice.measures[m].carrying.n_carrying,
                             "carrying_share": self.advice.measures[m].carrying.share,
                             "n_pairs": self.advice.measures[m].n_pairs}
                         for m in b.matrices},
            "witness_input": b.pairs.best_at.tolist(),
            "witness_min_probability": b.pairs.best_min.tolist(),
            "witness_probability_of_row_label": b.pairs.best_p.tolist(),
            "rank_correlations": [asdict(r) for r in self.correlations],
            "views_ranked": self.advice.views_ranked(),
            "views_not_ranked": self.advice.not_ranked,
            "advice": self.advice.to_dict(),
            "witness_region": self.region.to_dict(),
            "contradiction_kinds": CONTRADICTION_KINDS,
            "contradictions": [asdict(c) for c in self.contradictions],
            "claims": [c.to_dict() for c in self.claims],
            "co_top": None if self.co_top is None else self.co_top.to_dict(),
            "timings_seconds": self.timings,
            **self.extra,
        }


# ---------------------------------------------------------------------------- statistics
