"""Claims 2 and 3 of the audit: pairs whose centered (2) or centered-and-normalised (3) cosine
is negative but which the model makes likely together on some input of the data, graded by how
negative that cosine is; beside them the model's own evidence, which needs no data: whether each
negative-cosine pair can be the top two labels together, searched within the region the data
occupy. Also the record every claim of the audit is reported in (:class:`Claim`).

Grading (docs/audit.md, "Claims 2 and 3: how strong the evidence is"): the pair of the
strongest case (the most negative cosine among the pairs likely together) is placed in the
distribution of the view's cosines over the label set's pairs: its percentile q (the share of
pairs with a cosine at most as large) and z-score. The evidence is

* ``weak`` when |cos| < :data:`WEAK_COSINE` (the two rows essentially orthogonal) or q above
  :data:`MODERATE_PERCENTILE` (not among the lowest quarter of the head's own cosines);
* ``strong`` when cos <= -:data:`WEAK_COSINE` and q <= :data:`STRONG_PERCENTILE`;
* ``moderate`` otherwise.

The witness region (:func:`witness_region`): by default the feasibility LPs search hidden
states in a box the model's hidden states are known to occupy: the final norm's bound when the
head has one (``radius="architecture"``), else the box |h_j| <= max over the data's kept hidden
states of |h_j|. ``region="any"`` searches all of R^d (a "yes" may then need hidden states far
larger than any the model produces).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed.head import Head

if TYPE_CHECKING:  # pragma: no cover
    from unembed.behaviour import Behaviour
    from unembed.claim_one import ClaimOneDetails
    from unembed.feasibility import CoTopMatrix
    from unembed.feasibility._core import Radius

__all__ = ["MODERATE_PERCENTILE", "OUTCOMES", "STRONG_PERCENTILE", "WEAK_COSINE", "Claim",
           "PairCase", "PairClaimDetails", "TopTwoEvidence", "WitnessRegion",
           "negative_pairs_claim", "witness_region"]

#: Without the co-top matrix, claims 2 and 3 decide this many of the most negative pairs.
MODEL_EVIDENCE_PAIRS = 8
#: |cos| below this: the two rows are essentially orthogonal (within about 6 degrees of 90).
WEAK_COSINE = 0.1
#: Percentile (share of the label set's pairs at or below) for "strong" evidence ...
STRONG_PERCENTILE = 0.10
#: ... and above which the evidence is "weak".
MODERATE_PERCENTILE = 0.25

Outcome = Literal["shown", "not shown", "not testable"]
#: The three outcomes of a claim on one model.
OUTCOMES: tuple[str, ...] = ("shown", "not shown", "not testable")
Grade = Literal["strong", "moderate", "weak"]


@dataclass
class Claim:
    """One of the paper's claims on this model: ``outcome`` (one of :data:`OUTCOMES`) with
    ``why`` in words, ``statement`` what was checked, ``details`` the numbers; ``grade`` how
    strong the evidence of a "shown" is (claims 2 and 3) and ``verdict`` the outcome in the
    words a report prints (e.g. "not seen in these data; possible for the model")."""

    number: int
    title: str
    statement: str
    outcome: Outcome
    why: str
    details: ClaimOneDetails | PairClaimDetails
    grade: Grade | None = None
    verdict: str = ""

    @property
    def shown(self) -> bool:
        return self.outcome == "shown"

    @property
    def verdict_line(self) -> str:
        return self.verdict or {"not testable": "not testable here"}.get(self.outcome,
                                                                         self.outcome)

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "title": self.title, "statement": self.statement,
                "outcome": self.outcome, "shown": self.shown, "grade": self.grade,
                "verdict": self.verdict_line, "why": self.why,
                "details": asdict(self.details)}


@dataclass(frozen=True)
class TopTwoEvidence:
    """The model's own evidence on one pair, with no data: can a and b be the top two labels
    together within the witness region (:func:`unembed.feasibility.can_be_top_two`)? For
    "yes", ``p_a`` and ``p_b`` are the probabilities at the hidden state ``hidden_state`` (of
    norm ``witness_norm``, inside the region) ``scale`` times along the witness (the tie kept,
    the other labels pushed down), computed in float64 from the head."""

    a: str
    b: str
    cosine: float
    status: str
    margin: float
    p_a: float | None = None
    p_b: float | None = None
    scale: float | None = None
    hidden_state: list[float] | None = None
    witness_norm: float | None = None


@dataclass
class PairCase:
    """One pair found in the data for claims 2 and 3: its cosines (None where a view is
    undefined), its behaviour, and the input where min(p_a, p_b) is largest (``witness``, with
    p_a and p_b there); ``percentile`` and ``z`` place its cosine among the label set's pairs."""

    a: str
    b: str
    cosine: float
    cosines: dict[str, float | None]
    measures: dict[str, float]
    witness: int
    p_a: float
    p_b: float
    witness_text: str = ""
    percentile: float = float("nan")
    z: float = float("nan")


@dataclass(frozen=True)
class WitnessRegion:
    """Where the model's own evidence searched hidden states: ``radius`` as the feasibility
    functions take it (None: all of R^d), ``text`` in words, ``scale`` the largest Euclidean
    norm of a hidden state of the data that was seen (None: no data kept)."""

    radius: Radius
    kind: Literal["architecture", "data", "any"]
    text: str
    scale: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "data_max_norm": self.scale}


@dataclass
class PairClaimDetails:
    """Claims 2 and 3: ``cases`` are all negative-cosine pairs likely together on one input,
    most negative first; ``model_evidence`` the top-two decisions of negative pairs within
    ``region`` (most negative first; all of them when the co-top matrix was computed, else
    the :data:`MODEL_EVIDENCE_PAIRS` most negative); ``grade`` and ``grade_reason`` how strong
    the strongest case is."""

    view: str
    likely: float
    pairs_total: int
    pairs_negative: int
    pairs_likely_together: int
    largest_min_probability: float
    cases: list[PairCase]
    model_evidence: list[TopTwoEvidence]
    model_evidence_of: int
    model_evidence_note: str
    grade: Grade | None = None
    grade_reason: str = ""
    region: str = ""
    data_max_norm: float | None = None


def witness_region(head: Head, hidden: NDArray[np.float64],
                   region: Literal["data", "any"] = "data") -> WitnessRegion:
    """The region the model's own evidence is searched in (see the module's docstring)."""
    from unembed.feasibility._core import architecture_bound

    scale = float(np.max(np.linalg.norm(hidden, axis=1))) if len(hidden) else None
    if region == "any":
        return WitnessRegion(None, "any", "any hidden state in R^d", scale)
    if head.hidden_bound is not None:
        try:
            hb = architecture_bound(head, "audit")
        except UnembedError:
            hb = None
        if hb is not None:
            return WitnessRegion("architecture", "architecture",
                                 f"the final norm's bound |h_j| <= r_j (largest r_j "
                                 f"{hb.radius:.4g}; {hb.reason})", scale)
    if len(hidden):
        r = np.max(np.abs(hidden), axis=0)
        r = np.maximum(r, 1e-9 * max(float(r.max()), 1e-300))
        return WitnessRegion(r, "data",
                             f"the box the data occupy: |h_j| <= max |h_j| over the "
                             f"{len(hidden)} hidden states kept (largest norm there "
                             f"{scale:.4g})", scale)
    return WitnessRegion(None, "any", "any hidden state in R^d (no hidden state of the data "
                                      "was kept)", scale)


def _toward_half(head: Head, i: int, j: int, w: NDArray[np.float64],
                 box: NDArray[np.float64] | None
                 ) -> tuple[float, float, float, NDArray[np.float64]]:
    """Probabilities of labels i and j at h0 + t (w - h0), t = 1, 4, 16, ..., where h0 ties
    z_i and z_j by the bias alone and the witness w ties them too: along that line the tie is
    kept and, when the witness's direction makes i and j the top two, p_i = p_j -> 1/2. Only
    the t whose point stays in the box |h_j| <= box_j are tried (t = 1, the witness, always).
    The t with the largest min(p_i, p_j) is returned with both probabilities and the state."""
    W = head.W
    delta = W[i] - W[j]
    dd = float(delta @ delta)
    b = head.bias
    h0 = -(b[i] - b[j]) / dd * delta if dd > 0 else np.zeros(head.d)
    ts = 4.0 ** np.arange(0, 32)
    H = h0 + ts[:, None] * (w - h0)
    if box is not None:
        inside = np.all(np.abs(H) <= box * (1 + 1e-9), axis=1)
        inside[0] = True
        ts, H = ts[inside], H[inside]
    P = head.probs(H)
    m = np.minimum(P[:, i], P[:, j])
    t = int(np.argmax(m))
    return float(P[t, i]), float(P[t, j]), float(ts[t]), H[t]


def _model_evidence(head: Head, idx: NDArray[np.int64], labels: Sequence[str],
                    s: NDArray[np.float64], neg: list[tuple[int, int]],
                    co_top: CoTopMatrix | None, region: WitnessRegion, n_probs: int = 24
                    ) -> tuple[list[TopTwoEvidence], str]:
    from unembed.feasibility import can_be_top_two
    from unembed.feasibility._core import resolve_radius

    if co_top is not None:
        todo = neg
        note = "decided for every negative-cosine pair over all rows"
    else:
        todo = neg[:MODEL_EVIDENCE_PAIRS]
        note = (f"decided for the {len(todo)} most negative of {len(neg)} pairs only; --co-top "
                f"decides every pair")
    note += f", within {region.text}"
    box = None
    if region.radius is not None:
        R, per, _ = resolve_radius(head, region.radius, "audit")
        box = per if per is not None else np.full(head.d, float(R or 0.0))
    out = []
    for n, (i, j) in enumerate(todo):
        r = (co_top.results[(i, j)] if co_top is not None
             else can_be_top_two(head, int(idx[i]), int(idx[j]), radius=region.radius))
        ev = TopTwoEvidence(labels[i], labels[j], float(s[i, j]), r.status, float(r.margin))
        if (r.status == "yes" and r.witness is not None and n < n_probs
                and head.link == "softmax"):
            pa, pb, t, h = _toward_half(head, int(idx[i]), int(idx[j]),
                                        np.asarray(r.witness, dtype=np.float64).ravel(), box)
            ev = replace(ev, p_a=pa, p_b=pb, scale=t, hidden_state=h.tolist(),
                         witness_norm=float(np.linalg.norm(h)))
        out.append(ev)
    return out, note


def grade_case(c: PairCase) -> tuple[Grade, str]:
    """The grade of one case (see the module's docstring) and why, in words."""
    where = (f"cosine {c.cosine:+.3f}, at the {100 * c.percentile:.0f}th percentile of the "
             f"label set's pairs (z = {c.z:+.2f})")
    if abs(c.cosine) < WEAK_COSINE:
        return "weak", (f"weak evidence: {where}; |cos| < {WEAK_COSINE:g}, the rows are "
                        f"essentially orthogonal")
    if c.percentile > MODERATE_PERCENTILE:
        return "weak", (f"weak evidence: {where}; not among the lowest "
                        f"{100 * MODERATE_PERCENTILE:g}% of the head's cosines")
    if c.percentile <= STRONG_PERCENTILE:
        return "strong", (f"strong evidence: {where}; among the lowest "
                          f"{100 * STRONG_PERCENTILE:g}% and |cos| >= {WEAK_COSINE:g}")
    return "moderate", (f"moderate evidence: {where}; among the lowest "
                        f"{100 * MODERATE_PERCENTILE:g}% and |cos| >= {WEAK_COSINE:g}")


def negative_pairs_claim(view: str, number: int, beh: Behaviour, head: Head,
                         sims: Mapping[str, NDArray[np.float64]],
                         undefined: Mapping[str, str], *, likely: float,
                         co_top: CoTopMatrix | None, region: WitnessRegion) -> Claim:
    """Claim 2 (``view`` "centered") or 3 ("normalized") on the audit's behaviour."""
    s = sims[view]
    best = beh.pairs.best_min
    k = s.shape[0]
    iu = np.triu_indices(k, 1)
    labels = beh.labels
    off = s[iu]
    fin = off[np.isfinite(off)]
    mu, sd = (float(fin.mean()), float(fin.std())) if fin.size else (0.0, 0.0)
    neg = sorted(((int(i), int(j)) for i, j in zip(*iu) if s[i, j] < 0),
                 key=lambda ij: (s[ij], -best[ij]))
    together = int(np.sum(best[iu] >= likely))
    largest = float(np.max(best[iu])) if iu[0].size else float("nan")
    cand = [ij for ij in neg if best[ij] >= likely]
    cases = [PairCase(labels[i], labels[j], float(s[i, j]),
                      {v: None if v in undefined else float(m[i, j]) for v, m in sims.items()},
                      {m: float(x[i, j]) for m, x in beh.matrices.items()},
                      int(beh.pairs.best_at[i, j]), float(beh.pairs.best_p[i, j]),
                      float(beh.pairs.best_p[j, i]),
                      percentile=float(np.mean(fin <= s[i, j])) if fin.size else float("nan"),
                      z=(float(s[i, j]) - mu) / sd if sd > 0 else float("nan"))
             for i, j in cand]
    evidence, note = ([], "") if view in undefined else _model_evidence(
        head, beh.idx, labels, s, neg, co_top, region)
    what = {"centered": "centered", "normalized": "centered and length-normalised"}[view]
    outcome: Outcome
    grade: Grade | None = None
    grade_why = ""
    verdict = ""
    n_yes = sum(e.status == "yes" for e in evidence)
    if view in undefined:
        outcome, why = "not testable", undefined[view]
    elif not neg:
        outcome, why = "not testable", (f"no pair of the label set has a negative {what} "
                                        f"cosine")
    elif cases:
        c = cases[0]
        outcome = "shown"
        grade, grade_why = grade_case(c)
        verdict = f"shown ({grade} evidence)"
        why = (f"{len(cases)} of the {len(neg)} negative-cosine pairs have an input where both "
               f"labels have p >= {likely:g}; the most negative: {c.a!r} and {c.b!r}, cosine "
               f"{c.cosine:+.3f}, p = {c.p_a:.3f} and {c.p_b:.3f} on one input; {grade_why}")
    elif together == 0:
        outcome, why = "not testable", (
            f"no two labels of the label set reach p >= {likely:g} together on any input of "
            f"the data (the largest min(p_a, p_b) on one input is {largest:.3g})")
    else:
        outcome, why = "not shown", (
            f"none of the {len(neg)} negative-cosine pairs has an input where both labels "
            f"have p >= {likely:g} ({together} pairs with a non-negative cosine do)")
    if outcome == "not shown":
        if n_yes:
            verdict = (f"not seen in these data; possible for the model ({n_yes} of "
                       f"{len(evidence)} negative-cosine pairs decided can be the top two)")
        elif evidence and all(e.status == "no" for e in evidence):
            verdict = (f"not seen in these data; not possible for the model for the "
                       f"{len(evidence)} pairs decided")
        else:
            verdict = "not seen in these data"
    statement = (f"Pairs whose {what} cosine is negative that the model nevertheless makes "
                 f"likely together: on some input of the data both labels have probability "
                 f">= {likely:g}. Beside the data, the model's own evidence: whether a "
                 f"negative-cosine pair can be the top two labels together (a witness "
                 f"hidden state within {region.text}, no data needed).")
    title = {2: "A negative centered cosine does not mean the labels are not likely together",
             3: "Nor after length normalisation"}[number]
    details = PairClaimDetails(view, likely, int(iu[0].size), len(neg), together, largest,
                               cases, evidence, len(neg), note, grade, grade_why, region.text,
                               region.scale)
    return Claim(number, title, statement, outcome, why, details, grade, verdict)
