"""What to use for this model: which similarity views predict the model's behaviour on the data,
with the uncertainty of that answer, and only among views that every equivalent model agrees on.

The rules (docs/audit.md, "What to use for this model"):

* **Only invariant views are ranked.** A view is ranked only when it is invariant under every
  symmetry the head has (:func:`unembed.gauges.symmetries`, ``holds`` True, and
  :data:`unembed.views.INVARIANT_UNDER`): two models with the same probabilities then get the
  same ranking. The other views are listed in ``views_not_ranked`` with the symmetry that moves
  them; a symmetry that is unknown for the head (``holds`` None) is a caveat, said beside the
  advice.
* **Every rho has its sample size and p-value.** Spearman's rho over the ``n_pairs`` pairs
  i < j of the label set, with the label-permutation (Mantel) p-value of
  :func:`unembed._stats.label_permutation_test` (exact up to :data:`EXACT_MAX_LABELS` labels).
* **A measure must be carried by enough pairs.** A pair *carries* a measure when its value
  differs from the modal value (:func:`unembed._stats.carrying`). With fewer than
  :data:`MIN_CARRYING_PAIRS` carrying pairs, or less than :data:`MIN_CARRYING_SHARE` of the
  pairs, the rank correlation reflects a handful of pairs against one block of tied ranks: no
  ranking is given for that measure (the rhos are still reported, with the share).
* **Best only beyond the uncertainty.** The views are ordered by rho; the first is called best
  only when the 95% interval of rho_first - rho_second over a bootstrap of the labels
  (:func:`unembed._stats.label_bootstrap`) lies above 0. Otherwise the first views whose
  difference from the first has an interval containing 0 are reported as tied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from unembed._stats import (
    BOOTSTRAP,
    EXACT_MAX_LABELS,
    LEVEL,
    Carrying,
    carrying,
    label_bootstrap,
    label_permutation_test,
    spearman,
)
from unembed.views import INVARIANT_UNDER

if TYPE_CHECKING:  # pragma: no cover
    from unembed.head import Head

__all__ = ["EXACT_MAX_LABELS", "MIN_CARRYING_PAIRS", "MIN_CARRYING_SHARE", "Advice",
           "MeasureAdvice", "RankCorrelation", "RhoDifference", "advise", "rank_correlations",
           "ranked_views"]

#: A ranking needs at least this many pairs carrying the measure ...
MIN_CARRYING_PAIRS = 10
#: ... and at least this share of the pairs.
MIN_CARRYING_SHARE = 0.10

SYMMETRY_WORDS = {"translation": "translation", "bias_shift": "bias shift",
                  "null_space": "null-space shifts", "reparametrization": "reparametrisation"}


@dataclass(frozen=True)
class RankCorrelation:
    """Spearman's rho between one view's cosines and one measure over ``n_pairs`` pairs, with
    its two-sided label-permutation p-value (``p_method`` says exact or Monte Carlo and how
    many permutations); None with ``reason`` when undefined (a constant view or measure, too
    few pairs)."""

    view: str
    measure: str
    rho: float | None
    p_value: float | None
    n_pairs: int
    reason: str | None = None
    p_method: str | None = None


@dataclass(frozen=True)
class RhoDifference:
    """rho(first) - rho(other) for one measure, with its bootstrap interval (``level``) over
    ``n_resamples`` resamples where both were defined; ``resolved`` when the interval lies
    above 0 (first beats other beyond the uncertainty)."""

    first: str
    other: str
    difference: float
    ci_low: float
    ci_high: float
    n_resamples: int
    level: float = LEVEL

    @property
    def resolved(self) -> bool:
        return bool(np.isfinite(self.ci_low) and self.ci_low > 0)

    def to_dict(self) -> dict[str, Any]:
        return {"first": self.first, "other": self.other, "difference": self.difference,
                "ci_low": self.ci_low, "ci_high": self.ci_high,
                "n_resamples": self.n_resamples, "level": self.level,
                "resolved": self.resolved}


@dataclass(frozen=True)
class MeasureAdvice:
    """The views for one measure: ``ranked`` the invariant views with a rho, largest first
    (empty when ``refused`` says why no ranking is given); ``best`` the first when it beats
    the second beyond the uncertainty, else None and ``tied`` the views tied for first;
    ``differences`` first minus each other ranked view; ``carrying`` how many pairs carry the
    measure."""

    measure: str
    ranked: tuple[str, ...]
    rho: dict[str, float]
    best: str | None
    tied: tuple[str, ...]
    differences: tuple[RhoDifference, ...]
    refused: str | None
    carrying: Carrying
    n_pairs: int

    def to_dict(self) -> dict[str, Any]:
        return {"views_ranked": list(self.ranked), "rho": self.rho, "best": self.best,
                "tied": list(self.tied), "differences": [d.to_dict() for d in self.differences],
                "refused": self.refused, "n_pairs": self.n_pairs,
                "carrying_pairs": self.carrying.n_carrying,
                "carrying_share": self.carrying.share,
                "modal_value": self.carrying.modal_value}


@dataclass(frozen=True)
class Advice:
    """Per measure, the views to use (:class:`MeasureAdvice`); ``not_ranked`` the views left
    out with why; ``caveats`` symmetries unknown for this head that would move ranked views;
    ``bootstrap`` how the intervals were made."""

    measures: dict[str, MeasureAdvice]
    not_ranked: dict[str, str]
    caveats: tuple[str, ...]
    bootstrap: str = ""
    rules: dict[str, Any] = field(default_factory=dict)

    def views_ranked(self) -> dict[str, list[str]]:
        return {m: list(a.ranked) for m, a in self.measures.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"measures": {m: a.to_dict() for m, a in self.measures.items()},
                "views_not_ranked": self.not_ranked, "caveats": list(self.caveats),
                "bootstrap": self.bootstrap, "rules": self.rules}


def rank_correlations(similarities: Mapping[str, NDArray[np.float64]],
                      measures: Mapping[str, NDArray[np.float64]], *,
                      undefined_views: Mapping[str, str] | None = None,
                      undefined_measures: Mapping[str, str] | None = None,
                      terms: Mapping[str, int] | None = None,
                      measure_terms: int = 1) -> list[RankCorrelation]:
    """Spearman's rho across the pairs i < j of every view against every measure (pairs where
    either value is NaN are left out), with its label-permutation p-value; undefined with the
    reason for an undefined view or measure, fewer than 3 pairs, or values constant up to
    rounding."""
    uv, um = undefined_views or {}, undefined_measures or {}
    out = []
    for view, s in similarities.items():
        iu = np.triu_indices(s.shape[0], 1)
        for m, x in measures.items():
            a, b = s[iu], x[iu]
            n = int((np.isfinite(a) & np.isfinite(b)).sum())
            why = uv.get(view) or um.get(m)
            if why is not None:
                out.append(RankCorrelation(view, m, None, None, n, why))
                continue
            st = spearman(a, b, what_x=f"the {view} cosine", what_y=f"the measure {m}",
                          terms_x=(terms or {}).get(view, 1), terms_y=measure_terms,
                          scale_x=1.0)
            if st.rho is None:
                out.append(RankCorrelation(view, m, None, None, st.n_pairs, st.reason))
                continue
            pt = label_permutation_test(s, x, st.rho)
            out.append(RankCorrelation(view, m, st.rho, pt.p_value, st.n_pairs, None,
                                       pt.method))
    return out


def ranked_views(head: Head, views: list[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """The views invariant under every symmetry the head has (in the order given), the others
    with the symmetries that move them, and the caveats: symmetries unknown for this head
    (``holds`` None) under which some of the ranked views are not invariant."""
    from unembed.gauges import symmetries

    syms = symmetries(head)
    ok, not_ranked, caveats = [], {}, []
    for v in views:
        moved = [n for n, s in syms.items() if s.holds and n not in INVARIANT_UNDER[v]]
        if moved:
            words = ", ".join(SYMMETRY_WORDS[n] for n in moved)
            not_ranked[v] = (f"not invariant under {words} (a symmetry of this head: "
                             f"{syms[moved[0]].reason}): equivalent models can rank it "
                             f"differently")
        else:
            ok.append(v)
    for n, s in syms.items():
        hit = [v for v in ok if n not in INVARIANT_UNDER[v]]
        if s.holds is None and hit:
            caveats.append(f"{SYMMETRY_WORDS[n]} is unknown for this head ({s.reason}); if it "
                           f"holds, {', '.join(hit)} can differ between equivalent models")
    return ok, not_ranked, caveats


def _refusal(c: Carrying, defined: list[str]) -> str | None:
    if c.n_carrying < MIN_CARRYING_PAIRS or c.share < MIN_CARRYING_SHARE:
        modal = ("" if np.isnan(c.modal_value) else
                 f" (a value other than the modal {c.modal_value:.4g})")
        return (f"no ranking: {c.n_carrying} of {c.n_pairs} pairs "
                f"({100 * c.share:.1f}%) carry the measure{modal}; a ranking needs at least "
                f"{MIN_CARRYING_PAIRS} carrying pairs and {100 * MIN_CARRYING_SHARE:g}% of "
                f"the pairs")
    if not defined:
        return "no ranking: no invariant view has a rank correlation with this measure"
    return None


def advise(head: Head, similarities: Mapping[str, NDArray[np.float64]],
           measures: Mapping[str, NDArray[np.float64]], correlations: list[RankCorrelation],
           undefined_views: Mapping[str, str], *, measure_terms: int = 1,
           n_resamples: int = BOOTSTRAP) -> Advice:
    """The advice of an audit (see the module's rules)."""
    ok, not_ranked, caveats = ranked_views(head, list(similarities))
    for v, why in undefined_views.items():
        if v in ok:
            ok.remove(v)
            not_ranked[v] = why
    by = {(r.view, r.measure): r for r in correlations}
    out: dict[str, MeasureAdvice] = {}
    methods = set()
    for me, x in measures.items():
        iu = np.triu_indices(x.shape[0], 1)
        c = carrying(x[iu], terms=measure_terms)
        rs = [by[(v, me)] for v in ok if (v, me) in by and by[(v, me)].rho is not None]
        rs.sort(key=lambda r: -(r.rho or 0.0))
        rho = {r.view: float(r.rho) for r in rs if r.rho is not None}
        refused = _refusal(c, list(rho))
        if refused is not None:
            out[me] = MeasureAdvice(me, (), rho, None, (), (), refused, c, int(iu[0].size))
            continue
        order = tuple(r.view for r in rs)
        if len(order) == 1:
            out[me] = MeasureAdvice(me, order, rho, order[0], (), (), None, c,
                                    int(iu[0].size))
            continue
        bs = label_bootstrap({v: similarities[v] for v in order}, x, n_resamples=n_resamples)
        methods.add(bs.method)
        diffs = []
        for v in order[1:]:
            lo, hi, n = bs.difference(order[0], v)
            diffs.append(RhoDifference(order[0], v, rho[order[0]] - rho[v], lo, hi, n))
        best = order[0] if diffs[0].resolved else None
        tied = () if best else (order[0], *(d.other for d in diffs if not d.resolved))
        out[me] = MeasureAdvice(me, order, rho, best, tied, tuple(diffs), None, c,
                                int(iu[0].size))
    rules = {"min_carrying_pairs": MIN_CARRYING_PAIRS, "min_carrying_share": MIN_CARRYING_SHARE,
             "level": LEVEL, "n_resamples": n_resamples,
             "exact_p_up_to_labels": EXACT_MAX_LABELS}
    return Advice(out, not_ranked, tuple(caveats), "; ".join(sorted(methods)), rules)
