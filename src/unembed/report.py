"""Audit results -> a self-contained HTML page (tables, PNG plots of :mod:`unembed.plots`
embedded as base64), a JSON file with every number, and the terminal summary. Markup lives here,
in :mod:`unembed.report_claims` (the claims' sections), :mod:`unembed.report_html` (tables,
numbers, figures) and :mod:`unembed._reprs` (notebooks).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unembed._io import atomic_write
from unembed._json import jsonable
from unembed.accumulators import MEASURE_TITLES, MEASURES
from unembed.advice import MeasureAdvice, RankCorrelation, RhoDifference
from unembed.audit import CONTRADICTION_KINDS, INVARIANCE, AuditResult, ClaimOneDetails
from unembed.plots import (
    HEATMAP_MAX_LABELS,
    heatmap_labels,
    plot_before_after,
    plot_heatmap,
    plot_scatter_grid,
    plot_text,
)
from unembed.report_claims import claim_html, co_top_html, mark
from unembed.report_html import CSS, Cell, esc, img, num, pair_text, table

__all__ = [
    "jsonable",
    "plot_before_after",
    "plot_heatmap",
    "plot_scatter_grid",
    "plot_text",
    "render_html",
    "summary_lines",
    "write_index",
    "write_report",
]


_VIEW_TEXT = {
    "raw": "cos(u_i, u_j) of the rows as stored",
    "centered": "cosine of u_i - m, m the mean row",
    "normalized": "centered rows scaled to unit length, centered again",
    "causal": "Park et al.'s causal inner product: centered rows whitened by Cov(rows)^-1/2",
    "differences": "min over third labels k of cos(u_i - u_k, u_j - u_k)",
    "logit": "correlation over the data of the two labels' centered logits "
             "z_i - mean_k z_k: the cosine of (u_i - m)^T S (u_j - m), S the hidden states' "
             "covariance",
}


def _views_html(res: AuditResult) -> str:
    rows = [[esc(v), esc(_VIEW_TEXT.get(v, "")), esc(INVARIANCE.get(v, "")),
             esc(res.undefined_views.get(v, "defined"))] for v in res.similarities]
    out = ["<h2>The views</h2><p>A <i>view</i> is one way of comparing two labels' rows "
           "u_i, u_j of the head (the unembedding matrix U, one row per label; m the mean "
           "row); each gives a cosine in [-1, 1].</p>",
           table(["view", "what", ("unchanged by", "the changes of the head's parameters "
                                    "that keep every probability and leave this view's "
                                    "cosines as they are"), "status"], rows, left=4,
                  fold=True)]
    lg = res.logit
    if lg is not None:
        park = lg.park
        dist = (esc(lg.park_reason) if park is None else
                f"{park.distance:.3f} (0: the data meet the assumption and the logit and causal "
                f"views agree; sqrt(2) = 1.414: as far as possible); participation "
                f"{park.participation:.3f} (the share of the rows' {park.rank} directions the "
                f"data's centered logits effectively use; 1: all alike)")
        out.append(
            f"<p>The <code>logit</code> view is computed from the mean and covariance S of the "
            f"{lg.n_states} hidden states of {esc(lg.source)}: it is a property of model and "
            f"data together. Park et al.'s causal view is its special case S = Cov(rows)^-1 "
            f"(an assumption about the data). How far this data is from that assumption: "
            f"|K/|K| - P/|P||_F with K the covariance of the centered logits and P the "
            f"projection onto the rows' span (the causal view's Gram matrix up to scale) = "
            f"{dist}.</p>")
    return "\n".join(out)


def p_text(p: float | None) -> str:
    """A p-value as printed: two significant digits, "n/a" when undefined; never "0" (the
    permutation p-values are at least 1 / (number of permutations))."""
    if p is None or not math.isfinite(p):
        return "n/a"
    return "< 1e-300" if p < 1e-300 else f"{p:.2g}"


def rho_text(r: RankCorrelation, *, n: bool = True, p: bool = True) -> str:
    """rho with its sample size and p-value: "+0.54 (n = 45, p = 0.0001)"; without the
    sample size or the p-value where a table states it once ("+0.54 (p = 0.0001)",
    "+0.54")."""
    inner = ([f"n = {r.n_pairs}"] if n else []) + (
        [f"p = {p_text(r.p_value)}"] if p and r.rho is not None else [])
    tail = f" ({', '.join(inner)})" if inner else ""
    return ("undefined" if r.rho is None else f"{r.rho:+.2f}") + tail


def _ci(d: RhoDifference) -> str:
    return (f"difference {d.difference:+.2f}, {100 * d.level:g}% CI [{d.ci_low:+.2f}, "
            f"{d.ci_high:+.2f}]")


def advice_text(ma: MeasureAdvice) -> str:
    """The advice for one measure in words: the best view with its margin over the runner-up,
    a tie with the intervals that make it one, or why no ranking is given."""
    if ma.refused is not None:
        return ma.refused
    rho = ma.rho
    if ma.best is not None:
        out = f"{ma.best} (rho {rho[ma.best]:+.2f}, n = {ma.n_pairs})"
        if ma.differences:
            d = ma.differences[0]
            out += f" beats {d.other} ({rho[d.other]:+.2f}): {_ci(d)}"
        rest = ma.ranked[2:]
    else:
        tied = ma.tied
        diffs = "; ".join(f"{d.first} - {d.other}: {_ci(d)}" for d in ma.differences
                          if d.other in tied)
        out = (f"tie: {' = '.join(f'{v} ({rho[v]:+.2f})' for v in tied)}, n = {ma.n_pairs} "
               f"({diffs})")
        rest = tuple(v for v in ma.ranked if v not in tied)
    if rest:
        out += "; below: " + ", ".join(f"{v} ({rho[v]:+.2f})" for v in rest)
    return out


def advice_lines(res: AuditResult) -> list[str]:
    """The advice of an audit for the terminal, one line per measure, then the views not
    ranked and the caveats."""
    adv = res.advice
    out = [f"  use for {MEASURE_TITLES[me]}: {advice_text(ma)}"
           for me, ma in adv.measures.items()]
    out += [f"  not ranked: {v}: {why}" for v, why in adv.not_ranked.items()]
    out += [f"  caveat: {c}" for c in adv.caveats]
    return out


def _use_html(res: AuditResult) -> str:
    adv = res.advice
    rows = [[esc(MEASURE_TITLES[me]), esc(advice_text(ma)),
             f"{ma.carrying.n_carrying} of {ma.n_pairs} ({100 * ma.carrying.share:.0f}%)"]
            for me, ma in adv.measures.items()]
    out = ["<h2>What to use for this model</h2><p>Only views invariant under every symmetry "
           "of this head are ranked, so that every model with the same probabilities gets "
           "the same advice. Per measure the ranked views are ordered by Spearman's rho across "
           "the label set's pairs; the first is called best only when it beats the second "
           f"beyond the uncertainty ({esc(adv.bootstrap or 'bootstrap over labels')}: the "
           f"interval of the difference lies above 0), otherwise the views are tied. No "
           f"ranking when fewer than {adv.rules.get('min_carrying_pairs')} pairs or "
           f"{100 * float(adv.rules.get('min_carrying_share', 0)):g}% of the pairs carry the "
           f"measure (differ from its modal value). Measured on this data and this label set: "
           f"another data set can rank the views differently.</p>",
           table(["measure", "advice", "pairs carrying the measure"], rows, left=2)]
    if adv.not_ranked:
        out.append("<p>Not ranked:</p>" + table(
            ["view", "why"], [[esc(v), esc(w)] for v, w in adv.not_ranked.items()], left=2))
    out += [f"<p class='small'>Caveat: {esc(c)}.</p>" for c in adv.caveats]
    return "\n".join(out)


#: Names of the model facts in the report's first table (the rest: the key, "_" as " ").
_FACT_NAMES = {
    "labels_from": "label names from",
    "quick": "quick run (barely trained models, for tests)",
    "vocab": "vocabulary size",
    "context": "context (tokens)",
    "layers": "transformer blocks",
    "steps": "training steps",
    "train_seconds": "training time (s)",
    "n_train": "training inputs",
    "n_heldout": "held-out inputs",
    "heldout_accuracy": "held-out accuracy",
    "heldout_perplexity": "held-out perplexity",
    "heldout_tokens": "held-out tokens",
    "train_tokens": "training tokens",
}


def labels_from_text(source: str | None) -> str:
    """Where a head's label names came from (:attr:`unembed.head.Head.labels_from`), in words
    a reader understands."""
    if source is None or source == "row numbers":
        return "none found: the labels are the row numbers 0 .. V-1"
    if source == "the caller":
        return "given with the head by the program or command that ran the audit"
    if source == "tokenizer":
        return "the model's tokenizer (one token per row)"
    if source == "classes_":
        return "the estimator's classes_"
    if source == "id2label":
        return "the model configuration's id2label"
    return source if source.startswith("the ") else f"the file {source}"


def _fact_text(key: str, val: Any) -> str:
    if key == "labels_from":
        return labels_from_text(None if val is None else str(val))
    return num(val) if isinstance(val, (bool, np.bool_, float)) else str(val)


_TERMS = [
    ("label set", "the labels whose pairs are analysed (the first table says which)"),
    ("pair", "two labels i, j of the label set"),
    ("prediction", "one input of the data (one position of a text window for a language "
                   "model), giving probabilities p_i for every label i"),
    ("view, cosine", "a way of comparing two labels' rows of the head, giving a cosine in "
                     "[-1, 1] (next section)"),
    ("measure", "what the model does with a pair on the data: " + "; ".join(
        MEASURE_TITLES[m] for m in MEASURES) + " (each over the predictions)"),
    ("rho", "Spearman's rank correlation across the label set's pairs between a view's "
            "cosine and a measure (n: the number of pairs; p: its two-sided p-value)"),
    ("witness", "an input (from the data) or a hidden state (from the model alone) that "
                "shows a claim"),
    ("logits", "z = U h + b: the scores softmax turns into probabilities; margins are "
               "differences of logits"),
]


def _terms_html() -> str:
    return ("<dl class='terms'>" + "".join(f"<dt>{esc(t)}:</dt><dd>{esc(d)}</dd>"
                                            for t, d in _TERMS) + "</dl>")


def render_html(res: AuditResult, *, title: str = "unembed audit") -> str:
    """The audit as one self-contained HTML page."""
    m = res.model
    b = res.behaviour
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>"]
    rows_text = {"stored": "as stored in the model", "folded": "with the final norm's gain "
                 "folded in (the rows the hidden states meet)"}
    facts: list[list[Cell]] = [
        ["model", esc(m.get("meta", {}).get("source", m["kind"]))],
        ["labels (V) / hidden size (d)", f"{m['n_labels']} / {m['d']}"],
        ["rows of the head", esc(rows_text.get(str(m["rows"]), m["rows"]))],
        ["predictions analysed", str(b.n_predictions)],
        ["label set", esc(b.selection)],
        ["top k (for how often two labels are both among the k most probable)", str(b.top_k)]]
    for key, val in m.items():
        if key not in ("kind", "n_labels", "d", "link", "dtype", "rows", "meta"):
            facts.append([esc(_FACT_NAMES.get(key, key.replace("_", " "))),
                          esc(_fact_text(key, val))])
    inp = res.inputs
    for key, val in (("model file", inp.model), ("bias file", inp.bias),
                     ("labels file", inp.labels), ("data file", inp.data),
                     ("unembed version", inp.unembed_version)):
        if val:
            facts.append([esc(key), esc(val)])
    parts.append(table(["", ""], facts, left=2))
    parts.append("<p class='small'>Terms used on this page (column headers with a dotted "
                 "underline say more on hover):</p>" + _terms_html())
    parts.append(_views_html(res))
    parts.append("<h2>The paper's claims on this model</h2>")
    parts.extend(claim_html(c, res.undefined_views, res.region.kind) for c in res.claims)
    parts.append("<h2>How well each view predicts behaviour (Spearman's rho across pairs)</h2>")
    by = {(r.view, r.measure): r for r in res.correlations}
    ns = {r.n_pairs for r in res.correlations}
    one_n = len(ns) == 1
    ps = {p_text(r.p_value) for r in res.correlations if r.rho is not None}
    one_p = len(ps) == 1 and len(res.correlations) > 1
    rows = [[esc(v)] + [esc(rho_text(by[(v, me)], n=not one_n, p=not one_p))
                        for me in MEASURES] for v in res.similarities]
    if one_n or one_p:
        said = ([f"n = {next(iter(ns))} pairs"] if one_n else []) + (
            [f"p = {next(iter(ps))} (the two-sided p-value, below)"] if one_p else [])
        parts.append(f"<p>In every cell: {'; '.join(said)}.</p>")
    parts.append(table(["view"] + [MEASURE_TITLES[me] for me in MEASURES], rows, left=1))
    car = res.advice.measures
    parts.append("<p class='small'>Pairs carrying each measure (a value other than its modal "
                 "value): " + "; ".join(
                     f"{esc(MEASURE_TITLES[me])} {car[me].carrying.n_carrying} of "
                     f"{car[me].n_pairs}" for me in MEASURES if me in car) + ".</p>")
    reasons = sorted({_strip_undefined(r.reason) for r in res.correlations
                      if r.rho is None and r.reason})
    if reasons:
        parts.append("<p class='small'>Undefined (no statistic), because: "
                     + "; ".join(esc(x) for x in reasons) + ".</p>")
    methods = sorted({r.p_method for r in res.correlations if r.p_method})
    parts.append("<p class='small'>n: the pairs of the label set. p: two-sided, by permuting "
                 "the labels of the view's matrix (a Mantel test, which keeps what pairs "
                 "sharing a label have in common); " + esc("; ".join(methods) or "none") +
                 ".</p>")
    parts.append("<p>Each view's cosine (x) against each measure (y), one point per pair; "
                 "the panel's title gives rho and n.</p>")
    for me in MEASURES:
        parts.append(f"<h3>{esc(MEASURE_TITLES[me])}</h3>")
        parts.append(img(plot_scatter_grid(res, (me,)), f"scatter: {me}"))
    parts.append("<h2>Pairs that contradict each view most (measure: mean of min(p_i, p_j))"
                 "</h2>")
    rows2: list[list[Cell]] = []
    total = 0
    for v in res.similarities:
        for kind in ("low", "high"):
            cs = [c for c in res.contradictions
                  if c.view == v and c.measure == "mean_min" and c.kind == kind]
            total += len(cs)
            rows2 += [[esc(v), esc(_KIND_SHORT[kind]), esc(pair_text(c.a, c.b)), c.cosine, c.value,
                       c.cosine_rank, c.value_rank, f"{min(3, len(cs))} of {len(cs)}"]
                      for c in cs[:3]]
    parts.append(table(["view", ("kind", "; ".join(CONTRADICTION_KINDS.values())),
                         "labels", "cosine", "mean min p",
                         ("cosine pct.", "the pair's percentile among the label set's pairs, "
                                         "by cosine (0 to 1)"),
                         ("behaviour pct.", "the pair's percentile by mean min p (0 to 1)"),
                         ("shown", "rows shown of the pairs of this view and kind")],
                        rows2, left=3, digits={5: 2, 6: 2}, fold=True))
    parts.append(f"<p class='small'>Kind: {esc(_KIND_SHORT['low'])}: "
                 f"{esc(CONTRADICTION_KINDS['low'])}; {esc(_KIND_SHORT['high'])}: "
                 f"{esc(CONTRADICTION_KINDS['high'])}. Percentiles among the label set's pairs; "
                 f"the largest gap between the two first; {len(rows2)} of {total} such pairs "
                 f"shown (every measure's in audit.json). Views without a statistic have "
                 f"none.</p>")
    if res.co_top is not None:
        parts.append(co_top_html(res))
    keep = heatmap_labels(res)
    note = ("every label of the label set" if not keep.rule else
            f"{keep.rule} (at most {HEATMAP_MAX_LABELS} labels stay readable); every pair's "
            f"values are in audit.json and in <code>result.pair_table()</code> "
            f"(<code>unembed audit --pairs pairs.csv</code>)")
    parts.append(f"<h2>Heat maps over the label set</h2><p class='small'>Each shows {note}. "
                 f"The colour bar gives the values.</p><div class='grid'>")
    parts.extend(img(plot_heatmap(res, n), f"heat map: {n}", "cell")
                 for n in [*res.similarities, *MEASURES])
    parts.append("</div>")
    parts.append(_use_html(res))
    parts.append("<p class='small'>Every number above is in <code>audit.json</code> beside this "
                 "page, with the full matrices and every input of this run.</p></body></html>")
    return "\n".join(parts)


_KIND_SHORT = {"low": "low cosine, high measure", "high": "high cosine, low measure"}


def _strip_undefined(reason: str) -> str:
    """A reason without its leading "undefined: " (the sentence around it says so)."""
    return reason[len("undefined: "):] if reason.startswith("undefined: ") else reason


def summary_lines(res: AuditResult, *, name: str = "") -> list[str]:
    """A short terminal summary: the data, each view's rank correlations, the three claims."""
    b = res.behaviour
    out = [f"{name or res.model['kind']}: {b.n_predictions} predictions, "
           f"{len(res.labels)} labels ({b.selection})"]
    for v, why in res.undefined_views.items():
        out.append(f"  {v} view: {why}")
    for me, why in res.undefined_measures.items():
        out.append(f"  {me}: {why}")
    for me in MEASURES:
        rs = [r for r in res.correlations if r.measure == me]
        cells = ", ".join(f"{r.view} {r.rho:+.2f} (p {p_text(r.p_value)})" if r.rho is not None
                          else f"{r.view} undefined" for r in rs)
        ma = res.advice.measures.get(me)
        n = "" if ma is None else (f" (n = {ma.n_pairs} pairs, {ma.carrying.n_carrying} "
                                   f"carrying it)")
        out.append(f"  rank corr. with {MEASURE_TITLES[me]}{n}: {cells}")
    out += advice_lines(res)
    if res.logit is not None and res.logit.park is not None:
        out.append(f"  logit view vs the causal view's assumption: distance "
                   f"{res.logit.park.distance:.3f} (0 = meets it, max 1.414)")
    for cl in res.claims:
        extra = cl.why
        d = cl.details
        if isinstance(d, ClaimOneDetails):
            extra = "; ".join(
                f"{pair_text(c.a, c.b)}: {c.cosine_before:+.3f} -> {c.cosine_after:+.3f}, max |dp| "
                f"{num(None if c.equivalence is None else c.equivalence.max_abs_dp)} (data), "
                f"{num(None if c.random_states is None else c.random_states.max_abs_dp)} "
                f"(random states)" if c.refused is None and c.cosine_after is not None
                else f"{pair_text(c.a, c.b)}: refused" for c in d.pairs)
            if d.saturated:
                extra += "; softmax saturated on the data"
        elif d.model_evidence:
            ev = d.model_evidence
            n_yes = sum(e.status == "yes" for e in ev)
            norms = [e.witness_norm for e in ev if e.witness_norm is not None]
            scale = ("" if not norms else
                     f"; witness norm up to {num(max(norms))} (data up to "
                     f"{num(d.data_max_norm)})")
            extra += (f"; model: {n_yes} of {len(ev)} negative pairs decided can be the top "
                      f"two together within {d.region}{scale}")
        out.append(f"  claim {cl.number} {cl.verdict_line}: {extra}")
    return out


def _write_files(res: AuditResult, d: Path, title: str) -> None:
    (d / "audit.json").write_text(json.dumps(jsonable(res.to_dict()), indent=1),
                                  encoding="utf-8")
    (d / "report.html").write_text(render_html(res, title=title), encoding="utf-8")


def write_report(res: AuditResult, out: str | os.PathLike[str], *, title: str = "unembed audit",
                 force: bool = False) -> Path:
    """Write ``out/report.html`` and ``out/audit.json`` (atomically: a temp directory moved into
    place; an existing ``out`` needs ``force``). Returns ``out``."""
    return atomic_write(out, lambda d: _write_files(res, d, title), force=force,
                        directory=True)


_INTRO = """
<p>A classifier turns a hidden state h into logits z = U h + b; row u_i of U is label i's
representation (its <i>unembedding</i>), and people compare labels by the cosine of two rows.
These reports check, on each model and its held-out data, what that cosine does and does not say
about the model's probabilities (Nielsen &amp; Grivas, arXiv 2603.29488).</p>
<ol>
<li><b>Raw cosine can be set to -1 or +1 without changing the model.</b> Adding the same vector
to every row changes no probability of a softmax classifier; it moves the cosine of any pair to
any value in [-1, 1].</li>
<li><b>A negative centered cosine does not mean the labels are not likely together.</b>
Centering removes that translation, but whether two labels are probable together depends on the
arrangement of all rows, not on the angle between two of them.</li>
<li><b>Nor after length normalisation.</b> Scaling the centered rows to unit length keeps the
same blind spot: pairs at a negative cosine can still share the top of the distribution.</li>
</ol>
<p><b>How to read a report.</b> Each report lists the <i>views</i> (ways of comparing two rows)
and what each is unchanged by; then each claim with its outcome: <span class='ok'>shown</span>
(this model and data show it), <span class='no'>not shown</span> (the data hold no such pair),
or <span class='nt'>not testable here</span> (with the reason). Then how well each view's
cosine predicts behaviour on the data (Spearman's rho over pairs of labels; "undefined", with
the reason, where a view or measure is constant), the pairs that contradict each view, heat
maps, and the views ranked for this model. Every number is in <code>audit.json</code>.</p>
"""


def _verdicts_table(results: dict[str, AuditResult], headings: dict[str, str]) -> str:
    rows = []
    for name, res in results.items():
        cells = [f"<a href='{esc(name)}/report.html' title='{esc(headings.get(name, name))}'>"
                 f"{esc(name)}</a>",
                 f"{res.model['n_labels']} / {res.model['d']}"]
        cells += [mark(c) for c in res.claims]
        cells.append(esc(", ".join(res.undefined_views)) or "none")
        ma = res.advice.measures.get("mean_min")
        if ma is None or ma.refused is not None or not ma.ranked:
            cells.append("no ranking")
        elif ma.best is not None:
            cells.append(f"{esc(ma.best)} ({ma.rho[ma.best]:+.2f}, n = {ma.n_pairs})")
        else:
            cells.append("tie: " + esc(" = ".join(ma.tied)) + f" (n = {ma.n_pairs})")
        park = None if res.logit is None else res.logit.park
        cells.append("n/a" if park is None else num(park.distance))
        rows.append(cells)
    return (table(["model", "V / d", "claim 1", "claim 2", "claim 3", "no statistic",
                    "best view (rho, n)", "causal gap"], rows, left=1, fold=True)
            + "<p class='small'><i>No statistic</i>: views constant over the label set (no "
              "rank correlation is computed for them). <i>Best view</i>: among the views "
              "invariant under every symmetry of the head, the one whose cosine ranks the pairs "
              "most like the mean of min(p_i, p_j) on the data, beyond the uncertainty of the "
              "difference (else a tie). <i>Causal "
              "gap</i>: how far the data's hidden-state covariance is from the causal view's "
              "assumption (0 to 1.414; 0: the logit and causal views agree).</p>")


def write_index(out: str | os.PathLike[str], title: str, sections: Sequence[dict[str, Any]],
                results: dict[str, AuditResult], extra: dict[str, Any], *,
                force: bool = False) -> Path:
    """A directory with one report per result (``out/NAME/``), an ``index.html`` that says
    what the reader is looking at (the paper's claims, how to read a report, one row of
    verdicts per model) and links the reports with each section's facts, and ``summary.json``
    with ``extra`` and every audit."""

    def write(d: Path) -> None:
        for name, res in results.items():
            (d / name).mkdir()
            _write_files(res, d / name, f"{title}: {name}")
        body = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
                f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
                f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>", _INTRO,
                "<h2>Verdicts</h2>",
                _verdicts_table(results, {s["name"]: s["heading"] for s in sections})]
        for s in sections:
            body.append(f"<h2><a href='{esc(s['name'])}/report.html'>{esc(s['heading'])}</a></h2>")
            body.append(f"<p>{esc(s.get('text', ''))}</p>")
            facts = [[esc(k), esc(v)] for k, v in s.get("facts", [])]
            if s["name"] in results:
                res = results[s["name"]]
                b = res.behaviour
                facts.append(["predictions analysed", f"{b.n_predictions} ({esc(b.selection)})"])
                facts += [[f"claim {c.number}: {mark(c)}", esc(c.why)]
                          for c in res.claims]
            if facts:
                body.append(table(["", ""], facts, left=2))
        body.append("<p class='small'>Numbers: <code>summary.json</code> here and "
                    "<code>NAME/audit.json</code> per model.</p></body></html>")
        (d / "index.html").write_text("\n".join(body), encoding="utf-8")
        allres = {**extra, "audits": {n: r.to_dict() for n, r in results.items()}}
        (d / "summary.json").write_text(json.dumps(jsonable(allres), indent=1),
                                        encoding="utf-8")

    return atomic_write(out, write, force=force, directory=True)
