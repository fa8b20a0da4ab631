"""The result of claim 1 of the audit (a translation of the rows, which keeps every
probability, sets the raw cosine of any pair to any value): per pair the translation and the
views before and after, and the check of the new head against the old on the data and on
random hidden states where the softmax is not saturated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from unembed.equivalence import Equivalence

__all__ = ["ClaimOneDetails", "RandomStateCheck", "TranslationCase"]


@dataclass
class RandomStateCheck:
    """Claim 1 on random hidden states at a scale where the softmax is not saturated: n states
    N(0, I) / sqrt(d) times ``scale``; ``median_max_p`` their median largest probability."""

    n: int
    scale: float
    median_max_p: float
    saturated_share: float
    max_abs_dp: float
    max_abs_dlogp: float
    tolerance: float
    equivalent: bool


@dataclass
class TranslationCase:
    """Claim 1 on one pair: the translation c, the raw cosine before and after, every view
    before and after (None where undefined), and the equivalence on data and random states."""

    which: str
    a: str
    b: str
    target: float
    cosine_before: float
    refused: str | None = None
    cosine_after: float | None = None
    cosine_after_stored: float | None = None
    translation_norm: float | None = None
    translation: list[float] = field(default_factory=list)
    method: str = ""
    equivalence: Equivalence | None = None
    verdict: str = ""
    views_before: dict[str, float | None] = field(default_factory=dict)
    views_after: dict[str, float | None] = field(default_factory=dict)
    set_similarity_after_raw: list[list[float]] = field(default_factory=list)
    probs_before_sample: list[list[float]] = field(default_factory=list)
    probs_after_sample: list[list[float]] = field(default_factory=list)
    max_abs_dp_all_labels_sample: float | None = None
    random_states: RandomStateCheck | None = None


@dataclass
class ClaimOneDetails:
    """Claim 1: the two pairs, how many data states verified it, and how saturated the
    softmax is on them (``saturated_share``: inputs whose largest p is within
    :data:`unembed.audit.SATURATED` of 1; the data are called saturated when at least 90% are)."""

    pairs: list[TranslationCase]
    verified_on: int
    saturated_share: float
    saturated: bool
