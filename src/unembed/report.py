"""Audit results -> a self-contained HTML page (tables, PNG plots of :mod:`unembed.plots`
embedded as base64), a JSON file with every number, and the terminal summary. Markup lives here
(and in :mod:`unembed._reprs` for notebooks).
"""

from __future__ import annotations

import html
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
from unembed.audit import (
    CONTRADICTION_KINDS,
    INVARIANCE,
    SATURATED,
    AuditResult,
    Claim,
    ClaimOneDetails,
    PairClaimDetails,
)
from unembed.plots import (
    _png,
    plot_before_after,
    plot_heatmap,
    plot_scatter_grid,
    plot_text,
)

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


# ---------------------------------------------------------------------------- html
_CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;max-width:100%}td,th{border:1px solid #ccc;
padding:3px 7px;font-size:13px;text-align:right;overflow-wrap:break-word}th{background:#f3f3f3}
td.l,th.l{text-align:left}.ok{color:#070;font-weight:bold}.no{color:#b00;font-weight:bold}
.nt{color:#8a6d00;font-weight:bold}img{max-width:100%}.wide{overflow-x:auto}
code{background:#f5f5f5;padding:0 3px}.small{font-size:12px;color:#555}
.grid{display:flex;flex-wrap:wrap;gap:8px}img.cell{width:580px;max-width:100%}
.ok,.no,.nt{white-space:nowrap}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _f(x: Any, digits: int = 3) -> str:
    """Numbers in one format: integers as they are, |x| in [1e-3, 1e5) with ``digits``
    decimals, others in scientific notation; None and NaN as "n/a"."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    v = float(x)
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.2e}"
    return f"{v:.{digits}f}"


def _pair(a: str, b: str) -> str:
    """A pair of labels, each quoted (tokens may contain spaces or slashes)."""
    return f"{a!r} & {b!r}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 0) -> str:
    th = "".join(f"<th class='l'>{_e(h)}</th>" if i < left else f"<th>{_e(h)}</th>"
                 for i, h in enumerate(header))
    body = []
    for r in rows:
        tds = "".join(f"<td class='l'>{c}</td>" if i < left else f"<td>{c}</td>"
                      for i, c in enumerate(r))
        body.append(f"<tr>{tds}</tr>")
    head = f"<tr>{th}</tr>" if any(header) else ""
    return f"<div class='wide'><table>{head}{''.join(body)}</table></div>"


def _shown_of(n: int, total: int, what: str) -> str:
    return f"<p class='small'>{n} of {total} {what} shown; all {total} in audit.json.</p>"


def _mark(cl: Claim) -> str:
    """A claim's verdict in words (:attr:`Claim.verdict_line`), coloured by its outcome."""
    cls = {"shown": "ok", "not shown": "no", "not testable": "nt"}[cl.outcome]
    return f"<span class='{cls}'>{_e(cl.verdict_line)}</span>"


#: Rows of a table in the page; the JSON keeps every row.
TABLE_ROWS = 8


def _claim_one_html(d: ClaimOneDetails) -> list[str]:
    rows = []
    out = []
    for c in d.pairs:
        if c.refused is not None:
            rows.append([_e(c.which), _e(_pair(c.a, c.b)), _f(c.cosine_before, 6), _f(c.target),
                         "refused", _e(c.refused), "", ""])
            continue
        eq = c.equivalence
        rs = c.random_states
        rows.append([_e(c.which), _e(_pair(c.a, c.b)), _f(c.cosine_before, 6), _f(c.target),
                     _f(c.cosine_after, 12), _f(None if eq is None else eq.max_abs_dp),
                     _f(None if rs is None else rs.max_abs_dp),
                     _e(c.verdict.split(":")[0])])
    out.append(_table(["pair", "labels", "raw cosine before", "target", "raw cosine after",
                       "max |dp| on data", "max |dp| on random states", "verdict (data)"],
                      rows, left=2))
    rs0 = next((c.random_states for c in d.pairs if c.random_states is not None), None)
    sat = (f" The softmax is saturated on the data: {100 * d.saturated_share:.0f}% of the inputs "
           f"have a largest probability within {SATURATED:g} of 1, where any head that keeps "
           f"the argmax gives max |dp| near 0; the random states are the evidence."
           if d.saturated else
           f" {100 * d.saturated_share:.0f}% of the data's inputs are saturated (largest "
           f"probability within {SATURATED:g} of 1).")
    rnd = ("" if rs0 is None else
           f" Random states: {rs0.n} hidden states N(0, I)/sqrt(d) scaled by "
           f"{_f(rs0.scale)}, where the median largest probability is {_f(rs0.median_max_p)} "
           f"({100 * rs0.saturated_share:.0f}% saturated).")
    out.append(f"<p class='small'>Verified on {d.verified_on} hidden states of the audit data "
               f"(all labels compared).{_e(sat)}{_e(rnd)} Translation-invariant views keep "
               f"their values; see the bars.</p>")
    for c in d.pairs:
        if c.refused is None:
            out.append(f"<img alt='before/after' src='data:image/png;base64,"
                       f"{_png(plot_before_after(c))}'>")
    return out


def _pair_claim_html(d: PairClaimDetails, undefined: dict[str, str]) -> list[str]:
    out = [f"<p>{d.pairs_negative} of {d.pairs_total} pairs have a negative {_e(d.view)} "
           f"cosine; {len(d.cases)} of them have an input where both labels have p &ge; "
           f"{_f(d.likely)} ({d.pairs_likely_together} pairs of any cosine do; the largest "
           f"min(p_a, p_b) on one input is {_f(d.largest_min_probability)}).</p>"]
    if d.cases:
        rows = [[_e(_pair(c.a, c.b)), _f(c.cosine), f"{100 * c.percentile:.0f}%", _f(c.z, 2),
                 _f(c.p_a), _f(c.p_b), _f(c.measures["co_topk"]), _f(c.measures["corr_p"]),
                 _e(c.witness_text) or str(c.witness)] for c in d.cases[:TABLE_ROWS]]
        out.append(f"<p>The data's evidence, most negative cosine first. How strong: "
                   f"{_e(d.grade_reason)}.</p>")
        out.append(_table(["labels", f"{d.view} cosine", "percentile among the pairs",
                           "z-score", "p_a at witness", "p_b at witness",
                           "freq. both in top k", "corr(p_a, p_b)", "witness input"],
                          rows, left=1))
        out.append(_shown_of(min(TABLE_ROWS, len(d.cases)), len(d.cases), "pairs"))
    if d.model_evidence:
        ev = d.model_evidence
        n_yes = sum(e.status == "yes" for e in ev)
        n_no = sum(e.status == "no" for e in ev)
        out.append(f"<p>The model's own evidence, no data needed ({_e(d.model_evidence_note)}): "
                   f"{n_yes} of {len(ev)} negative-cosine pairs can be the top two labels "
                   f"together (a witness hidden state in the region; along it p_a = p_b, "
                   f"kept in the region), {n_no} cannot there (a linear-programming "
                   f"certificate), {len(ev) - n_yes - n_no} undecided. The largest norm of a "
                   f"hidden state of the data: {_f(d.data_max_norm)}.</p>")
        rows = [[_e(_pair(e.a, e.b)), _f(e.cosine), _e(e.status), _f(e.margin),
                 _f(e.witness_norm), _f(e.p_a), _f(e.p_b)] for e in ev[:TABLE_ROWS]]
        out.append(_table(["labels", f"{d.view} cosine", "can be the top two", "margin",
                           "witness norm", "p_a at witness", "p_b at witness"], rows,
                          left=1))
        out.append(_shown_of(min(TABLE_ROWS, len(ev)), len(ev), "pairs"))
    return out


def _claim_html(cl: Claim, undefined: dict[str, str]) -> str:
    out = [f"<h3>Claim {cl.number}: {_e(cl.title)} — {_mark(cl)}</h3>",
           f"<p>{_e(cl.statement)}</p>", f"<p><b>{_e(cl.outcome)}</b>: {_e(cl.why)}</p>"]
    if isinstance(cl.details, ClaimOneDetails):
        out += _claim_one_html(cl.details)
    else:
        out += _pair_claim_html(cl.details, undefined)
    return "\n".join(out)


def _co_top_html(res: AuditResult) -> str:
    ct = res.co_top
    feas = np.asarray(ct.feasible, dtype=bool)
    k = feas.shape[0]
    iu = np.triu_indices(k, 1)
    n_yes = int(feas[iu].sum())
    out = ["<h2>Which pairs can be the top two together (the arrangement of all rows)</h2>",
           f"<p>{n_yes} of {iu[0].size} pairs of the label set can be the two most probable "
           f"labels together for some hidden state within {_e(res.region.text)} (decided over "
           f"all {res.model['n_labels']} "
           f"rows: a witness hidden state for each yes, a linear-programming certificate for "
           f"each no). Cosine does not decide this; a third label between two others can block "
           f"them.</p>"]
    no = [(int(i), int(j)) for i, j in zip(*iu) if not feas[i, j]]
    if no:
        cen = res.similarities["centered"]
        raw = res.similarities["raw"]
        rows = [[_e(_pair(ct.labels[i], ct.labels[j])), _f(raw[i, j]), _f(cen[i, j]),
                 _f(ct.margin[i][j]), _e(ct.results[(i, j)].status)] for i, j in no[:30]]
        out.append(_table(["pair that can never be the top two", "raw cosine",
                           "centered cosine", "margin", "status"], rows, left=1))
        out.append(_shown_of(min(30, len(no)), len(no), "pairs"))
    return "\n".join(out)


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
    rows = [[_e(v), _e(_VIEW_TEXT.get(v, "")), _e(INVARIANCE.get(v, "")),
             _e(res.undefined_views.get(v, "defined"))] for v in res.similarities]
    out = ["<h2>The views</h2>",
           _table(["view", "what", "unchanged by", "status"], rows, left=4)]
    lg = res.logit
    if lg is not None:
        park = lg.park
        dist = (_e(lg.park_reason) if park is None else
                f"{park.distance:.3f} (0: the data meet the assumption and the logit and causal "
                f"views agree; sqrt(2) = 1.414: as far as possible), participation "
                f"{park.participation:.3f} of rank {park.rank}")
        out.append(
            f"<p>The <code>logit</code> view is computed from the mean and covariance S of the "
            f"{lg.n_states} hidden states of {_e(lg.source)}: it is a property of model and "
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


def rho_text(r: RankCorrelation) -> str:
    """rho with its sample size and p-value: "+0.54 (n = 45, p = 0.0001)"."""
    if r.rho is None:
        return f"undefined (n = {r.n_pairs})"
    return f"{r.rho:+.2f} (n = {r.n_pairs}, p = {p_text(r.p_value)})"


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
    rows = [[_e(MEASURE_TITLES[me]), _e(advice_text(ma)),
             f"{ma.carrying.n_carrying} of {ma.n_pairs} ({100 * ma.carrying.share:.0f}%)"]
            for me, ma in adv.measures.items()]
    out = ["<h2>What to use for this model</h2><p>Only views invariant under every symmetry "
           "of this head are ranked, so that every model with the same probabilities gets "
           "the same advice. Per measure the ranked views are ordered by Spearman's rho across "
           "the label set's pairs; the first is called best only when it beats the second "
           f"beyond the uncertainty ({_e(adv.bootstrap or 'bootstrap over labels')}: the "
           f"interval of the difference lies above 0), otherwise the views are tied. No "
           f"ranking when fewer than {adv.rules.get('min_carrying_pairs')} pairs or "
           f"{100 * float(adv.rules.get('min_carrying_share', 0)):g}% of the pairs carry the "
           f"measure (differ from its modal value). Measured on this data and this label set: "
           f"another data set can rank the views differently.</p>",
           _table(["measure", "advice", "pairs carrying the measure"], rows, left=2)]
    if adv.not_ranked:
        out.append("<p>Not ranked:</p>" + _table(
            ["view", "why"], [[_e(v), _e(w)] for v, w in adv.not_ranked.items()], left=2))
    out += [f"<p class='small'>Caveat: {_e(c)}.</p>" for c in adv.caveats]
    return "\n".join(out)


def render_html(res: AuditResult, *, title: str = "unembed audit") -> str:
    """The audit as one self-contained HTML page."""
    m = res.model
    b = res.behaviour
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>"]
    facts = [["model", _e(m.get("meta", {}).get("source", m["kind"]))],
             ["labels (V) / hidden size (d)", f"{m['n_labels']} / {m['d']}"],
             ["rows", _e(m["rows"]) + " (stored: the rows as stored; folded: the final "
              "norm's gain folded in)"],
             ["predictions analysed", str(b.n_predictions)],
             ["label set", _e(b.selection)],
             ["top k for co-occurrence", str(b.top_k)]]
    for key, val in m.items():
        if key not in ("kind", "n_labels", "d", "link", "dtype", "rows", "meta"):
            facts.append([_e(key.replace("_", " ")), _e(_f(val) if isinstance(val, float)
                                                       else val)])
    inp = res.inputs
    for key, val in (("model file", inp.model), ("bias file", inp.bias),
                     ("labels file", inp.labels), ("data file", inp.data),
                     ("unembed version", inp.unembed_version)):
        if val:
            facts.append([_e(key), _e(val)])
    parts.append(_table(["", ""], facts, left=2))
    parts.append(_views_html(res))
    parts.append("<h2>The paper's claims on this model</h2>")
    parts.extend(_claim_html(c, res.undefined_views) for c in res.claims)
    parts.append("<h2>How well each view predicts behaviour (Spearman's rho across pairs)</h2>")
    by = {(r.view, r.measure): r for r in res.correlations}
    rows = [[_e(v)] + [_e(rho_text(by[(v, me)])) for me in MEASURES] for v in res.similarities]
    parts.append(_table(["view"] + [MEASURE_TITLES[me] for me in MEASURES], rows, left=1))
    car = res.advice.measures
    parts.append("<p class='small'>Pairs carrying each measure (a value other than its modal "
                 "value): " + "; ".join(
                     f"{_e(me)} {car[me].carrying.n_carrying} of {car[me].n_pairs}"
                     for me in MEASURES if me in car) + ".</p>")
    reasons = sorted({r.reason for r in res.correlations if r.rho is None and r.reason})
    if reasons:
        parts.append("<p class='small'>Undefined: " + "; ".join(_e(x) for x in reasons)
                     + ".</p>")
    methods = sorted({r.p_method for r in res.correlations if r.p_method})
    parts.append("<p class='small'>n: the pairs of the label set. p: two-sided, by permuting "
                 "the labels of the view's matrix (a Mantel test, which keeps what pairs "
                 "sharing a label have in common); " + _e("; ".join(methods) or "none") +
                 ".</p>")
    parts.append(f"<img alt='scatter' src='data:image/png;base64,"
                 f"{_png(plot_scatter_grid(res))}'>")
    parts.append("<h2>Pairs that contradict each view most (measure: mean of min(p_i, p_j))"
                 "</h2>")
    rows = []
    total = 0
    for v in res.similarities:
        for kind in ("low", "high"):
            cs = [c for c in res.contradictions
                  if c.view == v and c.measure == "mean_min" and c.kind == kind]
            total += len(cs)
            rows += [[_e(v), _e(CONTRADICTION_KINDS[kind]), _e(_pair(c.a, c.b)), _f(c.cosine),
                      _f(c.value), _f(c.cosine_rank, 2), _f(c.value_rank, 2),
                      f"{min(3, len(cs))} of {len(cs)}"] for c in cs[:3]]
    parts.append(_table(["view", "kind", "labels", "cosine", "mean min p", "cosine pct.",
                         "behaviour pct.", "shown"], rows, left=3))
    parts.append(f"<p class='small'>Percentiles among the label set's pairs; the largest gap "
                 f"between the two first; {len(rows)} of {total} such pairs shown (every "
                 f"measure's in audit.json). Views without a statistic have none.</p>")
    if res.co_top is not None:
        parts.append(_co_top_html(res))
    parts.append("<h2>Heat maps over the label set</h2><div class='grid'>")
    parts.extend(f"<img class='cell' alt='heat map: {_e(n)}' src='data:image/png;base64,"
                 f"{_png(plot_heatmap(res, n), dpi=100)}'>"
                 for n in [*res.similarities, *MEASURES])
    parts.append("</div>")
    parts.append(_use_html(res))
    parts.append("<p class='small'>Every number above is in <code>audit.json</code> beside this "
                 "page, with the full matrices and every input of this run.</p></body></html>")
    return "\n".join(parts)


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
                f"{_pair(c.a, c.b)}: {c.cosine_before:+.3f} -> {c.cosine_after:+.3f}, max |dp| "
                f"{_f(None if c.equivalence is None else c.equivalence.max_abs_dp)} (data), "
                f"{_f(None if c.random_states is None else c.random_states.max_abs_dp)} "
                f"(random states)" if c.refused is None and c.cosine_after is not None
                else f"{_pair(c.a, c.b)}: refused" for c in d.pairs)
            if d.saturated:
                extra += "; softmax saturated on the data"
        elif d.model_evidence:
            ev = d.model_evidence
            n_yes = sum(e.status == "yes" for e in ev)
            norms = [e.witness_norm for e in ev if e.witness_norm is not None]
            scale = ("" if not norms else
                     f"; witness norm up to {_f(max(norms))} (data up to "
                     f"{_f(d.data_max_norm)})")
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
        cells = [f"<a href='{_e(name)}/report.html' title='{_e(headings.get(name, name))}'>"
                 f"{_e(name)}</a>",
                 f"{res.model['n_labels']} / {res.model['d']}"]
        cells += [_mark(c) for c in res.claims]
        cells.append(_e(", ".join(res.undefined_views)) or "none")
        ma = res.advice.measures.get("mean_min")
        if ma is None or ma.refused is not None or not ma.ranked:
            cells.append("no ranking")
        elif ma.best is not None:
            cells.append(f"{_e(ma.best)} ({ma.rho[ma.best]:+.2f}, n = {ma.n_pairs})")
        else:
            cells.append("tie: " + _e(" = ".join(ma.tied)) + f" (n = {ma.n_pairs})")
        park = None if res.logit is None else res.logit.park
        cells.append("n/a" if park is None else _f(park.distance))
        rows.append(cells)
    return (_table(["model", "V / d", "claim 1", "claim 2", "claim 3", "no statistic",
                    "best view (rho, n)", "causal gap"], rows, left=1)
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
        body = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
                f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
                f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>", _INTRO,
                "<h2>Verdicts</h2>",
                _verdicts_table(results, {s["name"]: s["heading"] for s in sections})]
        for s in sections:
            body.append(f"<h2><a href='{_e(s['name'])}/report.html'>{_e(s['heading'])}</a></h2>")
            body.append(f"<p>{_e(s.get('text', ''))}</p>")
            facts = [[_e(k), _e(v)] for k, v in s.get("facts", [])]
            if s["name"] in results:
                res = results[s["name"]]
                b = res.behaviour
                facts.append(["predictions analysed", f"{b.n_predictions} ({_e(b.selection)})"])
                facts += [[f"claim {c.number}: {_mark(c)}", _e(c.why)]
                          for c in res.claims]
            if facts:
                body.append(_table(["", ""], facts, left=2))
        body.append("<p class='small'>Numbers: <code>summary.json</code> here and "
                    "<code>NAME/audit.json</code> per model.</p></body></html>")
        (d / "index.html").write_text("\n".join(body), encoding="utf-8")
        allres = {**extra, "audits": {n: r.to_dict() for n, r in results.items()}}
        (d / "summary.json").write_text(json.dumps(jsonable(allres), indent=1),
                                        encoding="utf-8")

    return atomic_write(out, write, force=force, directory=True)
