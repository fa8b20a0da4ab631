"""The audit: what each similarity view of the label representations says about the model's
behaviour on data, and the paper's three claims checked on this model. Plain result objects,
no markup (:mod:`unembed.report` renders them).

For a label set of k labels and every pair (i, j):

* every view of :data:`unembed.views.VIEWS` gives a cosine; every measure of
  :data:`unembed.behaviour.MEASURES` gives a behavioural number from the data;
* per view and measure: Spearman's rank correlation across pairs, and the pairs that contradict
  the view most (low cosine with high co-probability; high cosine with low co-probability),
  ranked by the gap between their percentile ranks;
* claim 1: the most and the least similar pairs (raw cosine) get an equivalent model in which
  their cosine is -1 and +1; the new head is compared with the old on the audit data's hidden
  states (max |dp|);
* claims 2 and 3: pairs whose centered (2) or centered-and-normalised (3) cosine is low (below
  ``low_cosine``, or among the ``low_quantile`` least similar pairs of the label set) but which
  the model makes likely together on some input of the data (both probabilities at least
  ``likely`` there), with that input named.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError, fail
from unembed.behaviour import Behaviour, DataSource, collect
from unembed.head import Head, LabelRef
from unembed.views import VIEWS, similarity_matrix

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from unembed.engine import Sharded
    from unembed.tables import PairTable

#: Above this many labels, claim 1 does not recompute the causal view of the translated head.
CAUSAL_AFTER_MAX_LABELS = 4096
#: Above this many labels, the audit decides co-top feasibility only when asked.
CO_TOP_MAX_LABELS = 5000

__all__ = ["AuditResult", "Claim", "Contradiction", "PairCase", "RankCorrelation", "audit"]


@dataclass(frozen=True)
class RankCorrelation:
    """Spearman's rho between one view's cosines and one measure, over ``n_pairs`` pairs."""

    view: str
    measure: str
    rho: float
    p_value: float
    n_pairs: int


@dataclass(frozen=True)
class Contradiction:
    """A pair where a view and a measure disagree most: ``kind`` is "low cosine, high
    co-probability" or "high cosine, low co-probability"; ranks are percentiles in [0, 1]."""

    view: str
    measure: str
    kind: str
    a: str
    b: str
    cosine: float
    value: float
    cosine_rank: float
    value_rank: float


@dataclass(frozen=True)
class PairCase:
    """One pair found in the data for claims 2 and 3: its cosines, its behaviour, and the input
    where min(p_a, p_b) is largest (``witness``, with p_a and p_b there)."""

    a: str
    b: str
    cosine: float
    cosines: dict[str, float]
    measures: dict[str, float]
    witness: int
    p_a: float
    p_b: float
    witness_text: str = ""


@dataclass
class Claim:
    """One of the paper's claims on this model: ``shown`` says whether this run's numbers show
    it, ``statement`` says what was checked, ``details`` holds the numbers."""

    number: int
    title: str
    statement: str
    shown: bool
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class AuditResult:
    """Everything the audit found; :meth:`to_dict` gives every number (JSON-ready)."""

    model: dict[str, Any]
    labels: tuple[str, ...]
    behaviour: Behaviour
    similarities: dict[str, NDArray[np.float64]]
    correlations: list[RankCorrelation]
    contradictions: list[Contradiction]
    claims: list[Claim]
    timings: dict[str, float]
    co_top: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def pair_table(self) -> PairTable:
        """Every pair of the label set, one row per view: label_a, label_b, view, cosine and
        each behavioural measure (long format; ``.to_frame()``, ``.write("pairs.csv")``)."""
        from unembed.tables import pairs_from_matrices

        return pairs_from_matrices(self.labels, self.similarities, self.behaviour.matrices)

    def to_frame(self) -> pd.DataFrame:
        """:meth:`pair_table` as a pandas DataFrame (pandas imported only here)."""
        return self.pair_table().to_frame()

    def __repr__(self) -> str:
        shown = [c.number for c in self.claims if c.shown]
        return (f"AuditResult({len(self.labels)} labels, {self.behaviour.n_predictions} "
                f"predictions, views={list(self.similarities)}, claims shown={shown})")

    def _repr_html_(self) -> str:
        from unembed._reprs import audit_html

        return audit_html(self)

    def to_dict(self) -> dict[str, Any]:
        b = self.behaviour
        return {
            "model": self.model,
            "data": {"n_predictions": b.n_predictions, "top_k": b.top_k,
                     "label_selection": b.selection},
            "labels": list(self.labels),
            "label_mean_probability": b.tally.mean_p[b.idx].tolist(),
            "label_argmax_count": b.tally.argmax_count[b.idx].tolist(),
            "similarity": {v: m.tolist() for v, m in self.similarities.items()},
            "behaviour": {m: x.tolist() for m, x in b.matrices.items()},
            "witness_input": b.pairs.best_at.tolist(),
            "witness_min_probability": b.pairs.best_min.tolist(),
            "witness_probability_of_row_label": b.pairs.best_p.tolist(),
            "rank_correlations": [asdict(r) for r in self.correlations],
            "contradictions": [asdict(c) for c in self.contradictions],
            "claims": [asdict(c) for c in self.claims],
            "co_top": None if self.co_top is None else self.co_top.to_dict(),
            "timings_seconds": self.timings,
            **self.extra,
        }


def _pairs(k: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    return np.triu_indices(k, 1)


def _percentile_ranks(x: NDArray[np.float64]) -> NDArray[np.float64]:
    from scipy.stats import rankdata

    if x.size < 2:
        return np.zeros_like(x)
    out: NDArray[np.float64] = (rankdata(x) - 1) / (x.size - 1)
    return out


def rank_correlations(similarities: dict[str, NDArray[np.float64]],
                      measures: dict[str, NDArray[np.float64]]) -> list[RankCorrelation]:
    """Spearman's rho across the pairs i < j of every view against every measure (pairs where
    either value is NaN are left out)."""
    from scipy.stats import spearmanr

    out = []
    for view, s in similarities.items():
        iu = _pairs(s.shape[0])
        for m, x in measures.items():
            a, b = s[iu], x[iu]
            ok = np.isfinite(a) & np.isfinite(b)
            if ok.sum() >= 3 and np.ptp(a[ok]) > 0 and np.ptp(b[ok]) > 0:
                r = spearmanr(a[ok], b[ok])
                rho, pv = float(r.statistic), float(r.pvalue)
            else:
                rho, pv = float("nan"), float("nan")
            out.append(RankCorrelation(view, m, rho, pv, int(ok.sum())))
    return out


def contradictions(similarities: dict[str, NDArray[np.float64]],
                   measures: dict[str, NDArray[np.float64]], labels: Sequence[str], *,
                   per_kind: int = 3) -> list[Contradiction]:
    """Per view and measure, the ``per_kind`` pairs with the largest gap between the percentile
    rank of the measure and that of the cosine, in each direction."""
    out = []
    for view, s in similarities.items():
        iu = _pairs(s.shape[0])
        for m, x in measures.items():
            a, b = s[iu], x[iu]
            ok = np.flatnonzero(np.isfinite(a) & np.isfinite(b))
            if ok.size < 2:
                continue
            ra, rb = _percentile_ranks(a[ok]), _percentile_ranks(b[ok])
            for kind, gap in (("low cosine, high co-probability", rb - ra),
                              ("high cosine, low co-probability", ra - rb)):
                for t in np.argsort(-gap, kind="stable")[:per_kind]:
                    q = ok[t]
                    i, j = int(iu[0][q]), int(iu[1][q])
                    out.append(Contradiction(view, m, kind, labels[i], labels[j], float(a[q]),
                                             float(b[q]), float(ra[t]), float(rb[t])))
    return out


def _claim_one(head: Head, sims: dict[str, NDArray[np.float64]], idx: NDArray[np.int64],
               hidden: NDArray[np.float64]) -> Claim:
    from unembed.construct import translation_for_cosine

    labels = [head.labels[i] for i in idx]
    k = len(labels)
    iu = _pairs(k)
    vals = sims["raw"][iu]
    # the causal view whitens all V rows (an SVD of the whole head): recomputed after the
    # translation only for heads small enough that this is cheap
    after_views = [v for v in VIEWS if v != "differences"
                   and (v != "causal" or head.n_labels <= CAUSAL_AFTER_MAX_LABELS)]
    hi, lo = int(np.argmax(vals)), int(np.argmin(vals))
    cases = []
    shown = True
    # up to 1000 hidden states of the data, fewer for large vocabularies (about 10^7
    # probabilities compared per check)
    sample = hidden[: min(len(hidden), max(64, min(1000, 10_000_000 // head.n_labels)))]
    for which, q, target in (("most similar", hi, -1.0), ("least similar", lo, 1.0)):
        qa, qb = int(iu[0][q]), int(iu[1][q])
        a, b = int(idx[qa]), int(idx[qb])
        case: dict[str, Any] = {"which": which, "a": head.labels[a], "b": head.labels[b],
                                "target": target, "cosine_before": float(vals[q])}
        try:
            res = translation_for_cosine(head, a, b, target,
                                         inputs=sample if len(sample) else None)
        except UnembedError as e:
            case["refused"] = str(e)
            shown = False
            cases.append(case)
            continue
        eq = res.equivalence
        sel = [head.labels[i] for i in idx]
        case.update({
            "cosine_after": res.cosine_after,
            "cosine_after_stored": res.cosine_after_stored,
            "translation_norm": float(np.linalg.norm(res.c)),
            "translation": res.c.tolist(),
            "method": res.method,
            "equivalence": eq.to_dict(),
            "views_before": {v: float(sims[v][qa, qb]) for v in after_views},
            "views_after": {v: float(similarity_matrix(res.head, [a, b], v)[0, 1])
                            for v in after_views},
            "set_similarity_after_raw": similarity_matrix(res.head, sel, "raw").tolist(),
        })
        n_show = min(len(sample), 300)
        if n_show:
            pb = head.probs(sample[:n_show])
            pa = res.head.probs(sample[:n_show])
            case["probs_before_sample"] = pb[:, [a, b]].tolist()
            case["probs_after_sample"] = pa[:, [a, b]].tolist()
            case["max_abs_dp_all_labels_sample"] = float(np.max(np.abs(pa - pb)))
        shown = shown and bool(eq.equivalent) and abs(res.cosine_after - target) <= 1e-9
        cases.append(case)
    statement = ("For the most similar pair (largest raw cosine in the label set) a translation "
                 "of every row gives cosine -1, and for the least similar pair cosine +1; the new "
                 "heads give the same probabilities on the audit data's hidden states.")
    return Claim(1, "Raw cosine can be set to -1 or +1 without changing the model", statement,
                 shown, {"pairs": cases, "verified_on": len(sample)})


def _low_cosine_cases(view: str, beh: Behaviour, sims: dict[str, NDArray[np.float64]], *,
                      low_cosine: float, low_quantile: float, likely: float, n_cases: int,
                      number: int) -> Claim:
    s = sims[view]
    pairs = beh.pairs
    k = s.shape[0]
    iu = _pairs(k)
    vals = s[iu]
    finite = vals[np.isfinite(vals)]
    q = float(np.quantile(finite, low_quantile)) if finite.size else float("nan")
    threshold = max(low_cosine, q) if finite.size else low_cosine
    low = [(int(i), int(j)) for i, j in zip(*iu) if np.isfinite(s[i, j]) and s[i, j] <= threshold]
    cand = [ij for ij in low if pairs.best_min[ij] >= likely]
    cand.sort(key=lambda ij: (-pairs.best_min[ij], s[ij]))
    cases = []
    for i, j in cand[:n_cases]:
        cases.append(asdict(PairCase(
            beh.labels[i], beh.labels[j], float(s[i, j]),
            {v: float(m[i, j]) for v, m in sims.items()},
            {m: float(x[i, j]) for m, x in beh.matrices.items()},
            int(pairs.best_at[i, j]), float(pairs.best_p[i, j]), float(pairs.best_p[j, i]))))
    what = {"centered": "centered", "normalized": "centered and length-normalised"}[view]
    statement = (f"Pairs whose {what} cosine is low (below {low_cosine:g}, or among the "
                 f"{100 * low_quantile:g}% least similar pairs of the label set: cosine <= "
                 f"{threshold:.3f} here) that the model nevertheless makes likely together: on "
                 f"some input of the data both labels have probability >= {likely:g}.")
    title = {2: "Low centered cosine does not mean the labels are not likely together",
             3: "Nor after length normalisation"}[number]
    return Claim(number, title, statement, bool(cases),
                 {"view": view, "low_cosine": low_cosine, "low_quantile": low_quantile,
                  "quantile_cosine": q, "threshold": threshold, "likely": likely,
                  "pairs_below_threshold": len(low),
                  "pairs_negative": int(np.sum(finite < 0)),
                  "pairs_negative_found": sum(1 for ij in cand if s[ij] < 0),
                  "pairs_found": len(cand), "pairs_total": int(iu[0].size), "cases": cases})


def audit(
    model: Any,
    data: DataSource,
    *,
    labels: Sequence[LabelRef] | None = None,
    top_n: int = 40,
    top_k: int = 5,
    batch_size: int = 32,
    low_cosine: float = 0.0,
    low_quantile: float = 0.25,
    likely: float = 0.1,
    keep_hidden: int = 4096,
    progress: bool = True,
    describe: bool = True,
    info: dict[str, Any] | None = None,
    logits: Literal["model", "head"] = "model",
    co_top: bool | None = None,
    sharded: Sharded | None = None,
) -> AuditResult:
    """Audit a model on data: behaviour per pair, every view, rank correlations,
    contradictions and the three claims.

    Parameters
    ----------
    model : LoadedModel
        Its head (V, d) and hidden states. By default (``logits="model"``) the probabilities
        come from the model's own logits of the same forward pass, in the model's precision
        (float32 for most models), widened exactly to float64 where they are used: the
        log-normaliser, the log-probabilities and every statistic are float64.
        ``logits="head"`` computes the logits in float64 from the hidden states instead.
    data : DataSource
        From :func:`unembed.behaviour.open_data` (text windows, arrays).
    labels, top_n, top_k, batch_size, logits
        See :func:`unembed.behaviour.collect`.
    low_cosine, low_quantile, likely : float
        Claims 2 and 3: a pair counts when its cosine is below ``low_cosine`` or in the lowest
        ``low_quantile`` of the label set's pairs, and both its labels reach probability
        ``likely`` on one input.
    info : dict, optional
        Extra facts about the model (training metrics) carried into the result.
    co_top : bool, optional
        Also decide, per pair of the label set, whether the pair can be the top two of the
        whole head together (:func:`unembed.feasibility.co_top_matrix`: a property of the
        arrangement of all rows, with a witness or an LP certificate per pair). Default: only
        for heads of at most :data:`CO_TOP_MAX_LABELS` labels (the LPs grow with V).
    sharded : Sharded, optional
        Run the streaming pass in shards on an engine (:mod:`unembed.engine`; Ray): workers
        load the model and open the data themselves, the driver merges their accumulators
        (the same numbers: counts identical, sums and moments to float64 rounding).
    """
    if not (0.0 <= low_quantile <= 1.0):
        raise fail(f"The 'low_quantile' argument of audit must be in [0, 1]. "
                   f"Got {low_quantile!r} instead.")
    if not (0.0 < likely <= 0.5):
        raise fail(f"The 'likely' argument of audit must be in (0, 0.5]. Got {likely!r} instead.")
    head: Head = model.head
    t0 = time.perf_counter()
    if sharded is None:
        beh = collect(model, data, labels=labels, top_n=top_n, top_k=top_k,
                      batch_size=batch_size, keep_hidden=keep_hidden, progress=progress,
                      logits=logits)
    else:
        beh = sharded.engine.collect(head, sharded.load_model, sharded.open_data, labels=labels,
                                     top_n=top_n, top_k=top_k, batch_size=batch_size,
                                     keep_hidden=keep_hidden, progress=progress, logits=logits)
    t1 = time.perf_counter()
    sel = [int(i) for i in beh.idx]
    sims = {v: similarity_matrix(head, sel, v) for v in VIEWS}
    corr = rank_correlations(sims, beh.matrices)
    contra = contradictions(sims, beh.matrices, beh.labels)
    t2 = time.perf_counter()
    claim1 = _claim_one(head, sims, beh.idx, beh.hidden)
    claims = [claim1] + [
        _low_cosine_cases(v, beh, sims, low_cosine=low_cosine, low_quantile=low_quantile,
                          likely=likely, n_cases=8, number=n)
        for n, v in ((2, "centered"), (3, "normalized"))]
    if describe:
        wanted = sorted({c["witness"] for cl in claims[1:] for c in cl.details["cases"]})
        texts = data.describe(wanted, model) if wanted else {}
        for cl in claims[1:]:
            for c in cl.details["cases"]:
                c["witness_text"] = texts.get(c["witness"], "")
    t3 = time.perf_counter()
    cot = None
    if co_top if co_top is not None else head.n_labels <= CO_TOP_MAX_LABELS:
        from unembed.feasibility import co_top_matrix

        cot = co_top_matrix(head, sel)
    t4 = time.perf_counter()
    meta = {k: v for k, v in head.meta.items() if isinstance(v, (str, int, float, bool))}
    model_info = {"kind": getattr(model, "kind", type(model).__name__),
                  "n_labels": head.n_labels, "d": head.d, "link": head.link,
                  "dtype": head.dtype, "view": head.meta.get("view", "raw"), "meta": meta,
                  **(info or {})}
    return AuditResult(
        model=model_info, labels=beh.labels, behaviour=beh, similarities=sims,
        correlations=corr, contradictions=contra, claims=claims, co_top=cot,
        timings={"behaviour": t1 - t0, "views": t2 - t1, "claims": t3 - t2,
                 "co_top": t4 - t3, "total": t4 - t0},
    )

