"""Pairs where a view and a behavioural measure disagree most: the off quadrants of their
percentile ranks over the label set's pairs (cosine in the lowest quarter with the measure in
the highest, and the reverse)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from unembed._stats import percentile_ranks

__all__ = ["CONTRADICTION_KINDS", "QUARTER", "Contradiction", "contradictions"]

#: Contradictions: the lowest / highest quarter of the pairs.
QUARTER = 0.25


@dataclass(frozen=True)
class Contradiction:
    """A pair where a view and a measure disagree: ``kind`` "low" (cosine in the lowest
    quarter of the label set's pairs, measure in the highest) or "high" (the reverse);
    ``cosine_rank`` and ``value_rank`` are percentiles in [0, 1]."""

    view: str
    measure: str
    kind: Literal["low", "high"]
    a: str
    b: str
    cosine: float
    value: float
    cosine_rank: float
    value_rank: float


#: What each contradiction kind means, in words.
CONTRADICTION_KINDS: dict[str, str] = {
    "low": f"cosine in the lowest {100 * QUARTER:g}% of pairs, measure in the highest "
           f"{100 * QUARTER:g}%",
    "high": f"cosine in the highest {100 * QUARTER:g}% of pairs, measure in the lowest "
            f"{100 * QUARTER:g}%",
}


def contradictions(similarities: Mapping[str, NDArray[np.float64]],
                   measures: Mapping[str, NDArray[np.float64]], labels: Sequence[str], *,
                   undefined: Sequence[str] = ()) -> list[Contradiction]:
    """Per defined view and measure, every pair in the two off quadrants of percentile ranks
    (see :data:`CONTRADICTION_KINDS`), the largest gap between the two percentiles first."""
    out = []
    for view, s in similarities.items():
        iu = np.triu_indices(s.shape[0], 1)
        for m, x in measures.items():
            if view in undefined or m in undefined:
                continue
            a, b = s[iu], x[iu]
            ok = np.flatnonzero(np.isfinite(a) & np.isfinite(b))
            if ok.size < 4:
                continue
            ra, rb = percentile_ranks(a[ok]), percentile_ranks(b[ok])
            quadrants: tuple[tuple[Literal["low", "high"], NDArray[np.bool_],
                                   NDArray[np.float64]], ...] = (
                ("low", (ra <= QUARTER) & (rb >= 1 - QUARTER), rb - ra),
                ("high", (ra >= 1 - QUARTER) & (rb <= QUARTER), ra - rb))
            for kind, sel, gap in quadrants:
                idx = np.flatnonzero(sel)
                for t in idx[np.argsort(-gap[idx], kind="stable")]:
                    q = ok[t]
                    i, j = int(iu[0][q]), int(iu[1][q])
                    out.append(Contradiction(view, m, kind, labels[i], labels[j], float(a[q]),
                                             float(b[q]), float(ra[t]), float(rb[t])))
    return out
