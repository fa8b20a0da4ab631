"""The audit: what each similarity view of the label representations says about the model's
behaviour on data, and the paper's three claims checked on this model. Plain result objects
(dataclasses, no markup: :mod:`unembed.report` renders them).

For a label set of k labels and every pair (i, j):

* every view (:data:`AUDIT_VIEWS`: those of :mod:`unembed.views` and ``logit``, the correlation
  over the data of the two labels' centered logits, :func:`unembed.moments.logit_cosines`)
  gives a cosine; every measure of :data:`unembed.behaviour.MEASURES` a behavioural number;
* a view or measure whose values over the label set are constant up to float64 rounding
  (:func:`unembed._stats.constant_reason`; e.g. the ``causal`` view of every head whose centered
  rows have rank V - 1, such as any head with V <= d and rows in general position) gets no
  statistic: every rank correlation, contradiction and plot of it is undefined, with the reason;
* per view and measure: Spearman's rank correlation across pairs (undefined below 3 pairs) with
  its label-permutation p-value, and the contradicting pairs (:mod:`unembed.contradictions`);
* the advice (:mod:`unembed.advice`): per measure, the views invariant under every symmetry of
  the head ranked by rho, a best view only beyond a label-bootstrap interval (else a tie), and
  no ranking for a measure too few pairs carry;
* claim 1: the most and the least similar pairs (raw cosine) get an equivalent model in which
  their cosine is -1 and +1; the new head is compared with the old on the audit data's hidden
  states and on random hidden states at a scale where the softmax is not saturated;
* claims 2 and 3 (:mod:`unembed.pair_claims`): pairs whose centered (2) or
  centered-and-normalised (3) cosine is *negative* but which the model makes likely together on
  some input of the data, graded by how negative that cosine is among the head's; beside them
  the model's own evidence: whether each negative-cosine pair can be the top two labels
  together within the region the data occupy.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed._stats import constant_reason, rounding_tolerance
from unembed.advice import (
    Advice,
    RankCorrelation,
    advise,
    rank_correlations,
)
from unembed.audit_result import (
    INVARIANCE,
    AuditInputs,
    AuditResult,
    ClaimOneDetails,
    LogitViewInfo,
    RandomStateCheck,
    TranslationCase,
)
from unembed.behaviour import Behaviour, PassOptions, collect_with, label_selection
from unembed.contradictions import CONTRADICTION_KINDS, Contradiction, contradictions
from unembed.data import DataSource
from unembed.head import Head, LabelRef
from unembed.moments import logit_cosines, park_distance
from unembed.pair_claims import (
    OUTCOMES,
    Claim,
    Outcome,
    PairCase,
    PairClaimDetails,
    TopTwoEvidence,
    negative_pairs_claim,
    witness_region,
)
from unembed.undefined_views import view_terms
from unembed.views import VIEWS, causal_rank, similarity_matrix

if TYPE_CHECKING:  # pragma: no cover

    from unembed.engine import Sharded
    from unembed.model import LoadedModel

#: Above this many labels, claim 1 does not recompute the causal view of the translated head.
CAUSAL_AFTER_MAX_LABELS = 4096
#: Above this many labels, the audit decides co-top feasibility only when asked.
CO_TOP_MAX_LABELS = 5000
#: An input is saturated when its largest probability is within this of 1.
SATURATED = 1e-6

#: Every view of the audit, in report order.
AUDIT_VIEWS: tuple[str, ...] = (*(v for v in VIEWS if v != "logit"), "logit")


__all__ = [
    "AUDIT_VIEWS",
    "CONTRADICTION_KINDS",
    "INVARIANCE",
    "OUTCOMES",
    "Advice",
    "AuditInputs",
    "AuditResult",
    "Claim",
    "ClaimOneDetails",
    "Contradiction",
    "PairCase",
    "PairClaimDetails",
    "RandomStateCheck",
    "RankCorrelation",
    "TopTwoEvidence",
    "TranslationCase",
    "audit",
    "view_terms",
]


def _pairs(k: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    return np.triu_indices(k, 1)


def _view_reasons(head: Head, sims: Mapping[str, NDArray[np.float64]], n_states: int,
                  preset: Mapping[str, str]) -> dict[str, str]:
    out = dict(preset)
    iu = _pairs(next(iter(sims.values())).shape[0])
    for v, s in sims.items():
        if v in out:
            continue
        why = constant_reason(s[iu], what=f"the {v} cosine over the label set",
                              terms=view_terms(v, head, n_states), scale=1.0)
        if v == "causal" and causal_rank(head) == head.n_labels - 1:
            V = head.n_labels
            off = s[iu]
            spread = float(np.ptp(off[np.isfinite(off)])) if np.isfinite(off).any() else 0.0
            tol = rounding_tolerance(off, terms=view_terms(v, head, n_states), scale=1.0)
            why = (f"undefined: the centered rows have rank V - 1 = {V - 1}, so the whitened "
                   f"rows are equiangular: every causal cosine is -1/(V - 1) = "
                   f"{-1 / (V - 1):+.6f} (spread over the label set {spread:.1e}; float64 "
                   f"rounding {tol:.1e})")
        if why is not None:
            out[v] = why
    return out


def _measure_reasons(beh: Behaviour) -> dict[str, str]:
    out = {}
    iu = _pairs(len(beh.labels))
    for m, x in beh.matrices.items():
        why = constant_reason(x[iu], what=f"the measure {m}", terms=beh.n_predictions)
        if why is not None:
            out[m] = why
    return out


# ---------------------------------------------------------------------------- claim 1
def unsaturated_states(head: Head, n: int = 256, *, seed: int = 0
                       ) -> tuple[NDArray[np.float64], float, float]:
    """n random hidden states N(0, I) / sqrt(d) times the scale (on a grid of powers of 2)
    at which the median largest probability of ``head`` is closest to 1/2: states where the
    softmax is not saturated, so that a change of probabilities would show. Returns the
    states, the scale and that median."""
    rng = np.random.default_rng([seed, 0xC1A1])
    G = rng.standard_normal((n, head.d)) / np.sqrt(head.d)
    probe = G[: min(n, 32)]
    z0 = probe @ head.W.T
    spread = float(np.std(z0 - z0.mean(axis=1, keepdims=True))) or 1.0
    best = (np.inf, 1.0, 1.0)
    for e in range(-24, 25):
        s = 2.0 ** e / spread
        p = head.probs(probe * s)
        med = float(np.median(p.max(axis=1)))
        best = min(best, (abs(med - 0.5), s, med))
    _, s, med = best
    return G * s, s, med


def _pair_view(head: Head, a: int, b: int, view: str, beh: Behaviour) -> float:
    if view == "logit" and beh.moments is not None:
        return float(logit_cosines(head.W, beh.moments, [a, b])[0, 1])
    return float(similarity_matrix(head, [a, b], view)[0, 1])


def _claim_one(head: Head, sims: Mapping[str, NDArray[np.float64]], idx: NDArray[np.int64],
               hidden: NDArray[np.float64], undefined: Mapping[str, str],
               beh: Behaviour) -> Claim:
    from unembed.construct import translation_for_cosine
    from unembed.equivalence import compare_heads

    labels = [head.labels[i] for i in idx]
    k = len(labels)
    iu = _pairs(k)
    vals = sims["raw"][iu]
    # the causal view whitens all V rows (an SVD of the whole head): recomputed after the
    # translation only for heads small enough that this is cheap
    after_views = [v for v in sims if v != "differences"
                   and (v != "causal" or head.n_labels <= CAUSAL_AFTER_MAX_LABELS)]
    hi, lo = int(np.argmax(vals)), int(np.argmin(vals))
    cases = []
    # up to 1000 hidden states of the data, fewer for large vocabularies (about 10^7
    # probabilities compared per check)
    sample = hidden[: min(len(hidden), max(64, min(1000, 10_000_000 // head.n_labels)))]
    saturated_share = (float(np.mean(1.0 - head.probs(sample).max(axis=1) <= SATURATED))
                       if len(sample) and head.link == "softmax" else 0.0)
    saturated = saturated_share >= 0.9
    rand, scale, med = unsaturated_states(head)
    ok_all, refusals = True, []
    for which, q, target in (("most similar", hi, -1.0), ("least similar", lo, 1.0)):
        qa, qb = int(iu[0][q]), int(iu[1][q])
        a, b = int(idx[qa]), int(idx[qb])
        case = TranslationCase(which, head.labels[a], head.labels[b], target, float(vals[q]))
        try:
            res = translation_for_cosine(head, a, b, target,
                                         inputs=sample if len(sample) else None)
        except UnembedError as e:
            case.refused = str(e)
            refusals.append(str(e))
            cases.append(case)
            continue
        eq = res.equivalence

        rq = compare_heads(head, res.head, rand)
        case.cosine_after = res.cosine_after
        case.cosine_after_stored = res.cosine_after_stored
        case.translation_norm = float(np.linalg.norm(res.c))
        case.translation = res.c.tolist()
        case.method = res.method
        case.equivalence = eq
        case.verdict = eq.verdict
        case.views_before = {v: None if v in undefined else float(sims[v][qa, qb])
                             for v in after_views}
        case.views_after = {v: None if v in undefined else _pair_view(res.head, a, b, v, beh)
                            for v in after_views}
        case.set_similarity_after_raw = similarity_matrix(res.head, labels, "raw").tolist()
        case.random_states = RandomStateCheck(rq.n_inputs, scale, med,
                                              float(np.mean(1.0 - head.probs(rand).max(axis=1)
                                                            <= SATURATED)),
                                              rq.max_abs_dp, rq.max_abs_dlogp, rq.tolerance,
                                              rq.equivalent)
        n_show = min(len(sample), 300)
        if n_show:
            pb = head.probs(sample[:n_show])
            pa = res.head.probs(sample[:n_show])
            case.probs_before_sample = pb[:, [a, b]].tolist()
            case.probs_after_sample = pa[:, [a, b]].tolist()
            case.max_abs_dp_all_labels_sample = float(np.max(np.abs(pa - pb)))
        ok_data = bool(eq.equivalent) or saturated
        ok_all = (ok_all and ok_data and rq.equivalent
                  and res.cosine_after is not None and abs(res.cosine_after - target) <= 1e-9)
        cases.append(case)
    statement = ("For the most similar pair (largest raw cosine in the label set) a translation "
                 "of every row gives cosine -1, and for the least similar pair cosine +1; the new "
                 "heads give the same probabilities on the audit data's hidden states and on "
                 f"{len(rand)} random hidden states at a scale where the softmax is not "
                 f"saturated (median largest probability {med:.2f}).")
    outcome: Outcome
    if refusals:
        outcome, why = "not testable", refusals[0]
    elif ok_all:
        outcome = "shown"
        why = ("cosines reached their targets; same probabilities on the data and on random "
               "hidden states")
        if saturated:
            why = (f"the softmax is saturated on the data ({100 * saturated_share:.0f}% of "
                   f"inputs have a largest probability within {SATURATED:g} of 1, so max |dp| "
                   f"there is near 0 whatever the head): the evidence is the random hidden "
                   f"states, where max |dp| = "
                   f"{max(c.random_states.max_abs_dp for c in cases if c.random_states):.1e}")
    else:
        outcome, why = "not shown", "a translated head changed the probabilities (see the table)"
    return Claim(1, "Raw cosine can be set to -1 or +1 without changing the model", statement,
                 outcome, why, ClaimOneDetails(cases, len(sample), saturated_share, saturated))


# ---------------------------------------------------------------------------- the audit
def audit(
    model: LoadedModel,
    data: DataSource,
    *,
    label_set: Sequence[LabelRef] | None = None,
    top_n: int = 40,
    top_k: int = 5,
    batch_size: int = 32,
    likely: float = 0.1,
    keep_hidden: int = 4096,
    progress: bool = True,
    describe: bool = True,
    info: dict[str, Any] | None = None,
    logits: Literal["model", "head"] = "model",
    co_top: bool | None = None,
    inputs: AuditInputs | None = None,
    sharded: Sharded | None = None,
    labels: Sequence[LabelRef] | None = None,
    region: Literal["data", "any"] = "data",
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
    label_set, top_n, top_k, batch_size, logits
        See :func:`unembed.behaviour.collect`: the pair statistics are kept for
        ``label_set`` (label names or ``"#N"``; ``--label-set``) when given, else the
        ``top_n`` labels of largest mean probability (all when V <= ``top_n``). ``labels`` is
        the deprecated spelling of ``label_set`` (a DeprecationWarning): everywhere else
        ``labels`` means the names of a head's rows.
    likely : float
        Claims 2 and 3: a negative-cosine pair counts when both its labels reach probability
        ``likely`` on one input.
    info : dict, optional
        Extra facts about the model (training metrics) carried into the result.
    co_top : bool, optional
        Also decide, per pair of the label set, whether the pair can be the top two of the
        whole head together (:func:`unembed.feasibility.co_top_matrix`: a property of the
        arrangement of all rows, with a witness or an LP certificate per pair). Default: only
        for heads of at most :data:`CO_TOP_MAX_LABELS` labels (the LPs grow with V).
    inputs : AuditInputs, optional
        The files the model and data came from, recorded in the result with the options.
    sharded : Sharded, optional
        Run the streaming pass in shards on an engine (:mod:`unembed.engine`; Ray): workers
        load the model and open the data themselves, the driver merges their accumulators
        (the same numbers: counts identical, sums and moments to float64 rounding).
    region : {"data", "any"}
        Where the model's own evidence of claims 2 and 3 and the co-top matrix search hidden
        states (:func:`unembed.pair_claims.witness_region`): by default the final norm's bound
        when the head has one, else the box of the data's kept hidden states; "any" for all
        of R^d.
    """
    if not (0.0 < likely <= 0.5):
        raise UnembedError(f"must be in (0, 0.5]. Got {likely!r} instead.", argument="likely",
                           function="audit")
    from unembed import __version__

    head: Head = model.head
    t0 = time.perf_counter()
    choice = label_selection(label_set, top_n, 8192, labels=labels, where="audit")
    opts = PassOptions(top_k, batch_size, keep_hidden, logits)
    if sharded is None:
        beh = collect_with(model, data, choice, opts, progress=progress)
    else:
        beh = sharded.engine.collect_selected(head, sharded.load_model, sharded.open_data,
                                              choice, opts, progress=progress,
                                              units=sharded.units)
    t1 = time.perf_counter()
    sel = [int(i) for i in beh.idx]
    sims = {v: similarity_matrix(head, sel, v) for v in AUDIT_VIEWS if v != "logit"}
    preset: dict[str, str] = {}
    logit_info = None
    mom = beh.moments
    if mom is not None and inputs is not None and inputs.data:
        mom.source = inputs.data
    if mom is not None and mom.n >= 2:
        sims["logit"] = logit_cosines(head.W, mom, sel)
        try:
            park, park_why = park_distance(head.W, mom), None
        except UnembedError as e:
            park, park_why = None, f"undefined: {e}"
        logit_info = LogitViewInfo(mom.source, mom.n, park, park_why)
    else:
        n_seen = 0 if mom is None else mom.n
        sims["logit"] = np.full((len(sel), len(sel)), np.nan)
        preset["logit"] = (f"undefined: the hidden-state covariance needs at least 2 states; "
                           f"{n_seen} were seen")
    n_states = 0 if mom is None else mom.n
    undefined = _view_reasons(head, sims, n_states, preset)
    undefined_m = _measure_reasons(beh)
    terms = {v: view_terms(v, head, n_states) for v in sims}
    corr = rank_correlations(sims, beh.matrices, undefined_views=undefined,
                             undefined_measures=undefined_m, terms=terms,
                             measure_terms=beh.n_predictions)
    contra = contradictions(sims, beh.matrices, beh.labels,
                            undefined=[*undefined, *undefined_m])
    adv = advise(head, sims, beh.matrices, corr, undefined, measure_terms=beh.n_predictions)
    t2 = time.perf_counter()
    cot = None
    where = witness_region(head, beh.hidden, region)
    if co_top if co_top is not None else head.n_labels <= CO_TOP_MAX_LABELS:
        from unembed.feasibility import co_top_matrix

        cot = co_top_matrix(head, sel, radius=where.radius)
    t3 = time.perf_counter()
    claims = [_claim_one(head, sims, beh.idx, beh.hidden, undefined, beh)] + [
        negative_pairs_claim(v, n, beh, head, sims, undefined, likely=likely, co_top=cot,
                             region=where)
        for n, v in ((2, "centered"), (3, "normalized"))]
    if describe:
        pair_details = [cl.details for cl in claims if isinstance(cl.details, PairClaimDetails)]
        wanted = sorted({c.witness for d in pair_details for c in d.cases[:20]})
        texts = data.describe(wanted, model) if wanted else {}
        for d in pair_details:
            for c in d.cases:
                c.witness_text = texts.get(c.witness, "")
    t4 = time.perf_counter()
    meta = {k: v for k, v in head.meta.items() if isinstance(v, (str, int, float, bool))}
    model_info = {"kind": model.kind,
                  "n_labels": head.n_labels, "d": head.d, "link": head.link,
                  "dtype": head.dtype, "rows": head.rows, "labels_from": head.labels_from,
                  "meta": meta,
                  **(info or {})}
    rec = AuditInputs() if inputs is None else inputs
    rec.model = rec.model or head.source
    rec.options = {"labels": None if labels is None else [str(x) for x in labels],
                   "top_n": top_n, "top_k": top_k, "batch_size": batch_size, "likely": likely,
                   "keep_hidden": keep_hidden, "logits": logits, "co_top": co_top,
                   "region": region,
                   "python": sys.version.split()[0], **rec.options}
    rec.unembed_version = __version__
    return AuditResult(
        model=model_info, labels=beh.labels, behaviour=beh, similarities=sims,
        undefined_views=undefined, undefined_measures=undefined_m,
        correlations=corr, contradictions=contra, claims=claims, co_top=cot, advice=adv,
        region=where,
        inputs=rec, logit=logit_info,
        timings={"behaviour": t1 - t0, "views": t2 - t1, "co_top": t3 - t2,
                 "claims": t4 - t3, "total": t4 - t0},
    )
