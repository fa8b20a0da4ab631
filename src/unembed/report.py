"""Audit results -> a self-contained HTML page (tables, PNG plots embedded as base64) and a JSON
file with every number. The only module of unembed that knows markup.

Plots use matplotlib's Agg backend (no display needed): cosine against each behavioural measure
per view, heat maps over the label set, and the before/after of the equivalent models of
claim 1.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unembed._checks import arg_error
from unembed._io import atomic_write
from unembed._json import jsonable
from unembed.audit import (
    CONTRADICTION_KINDS,
    INVARIANCE,
    SATURATED,
    AuditResult,
    Claim,
    ClaimOneDetails,
    PairClaimDetails,
    TranslationCase,
)
from unembed.behaviour import MEASURE_TITLES, MEASURES

__all__ = [
    "jsonable",
    "plot_before_after",
    "plot_heatmap",
    "plot_scatter_grid",
    "render_html",
    "summary_lines",
    "write_index",
    "write_report",
]


# ---------------------------------------------------------------------------- plots
def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any, dpi: int = 72) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    _plt().close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


@functools.cache
def _font_codepoints() -> frozenset[int]:
    """The code points the plots' font (matplotlib's default sans-serif, found as matplotlib
    finds it) has glyphs for."""
    from matplotlib import font_manager, ft2font

    path = font_manager.findfont(font_manager.FontProperties())
    return frozenset(ft2font.FT2Font(path).get_charmap())


def plot_text(label: str) -> str:
    r"""A label as a plot shows it: quoted like ``repr`` (control characters escaped), every
    character the plots' font has no glyph for written as its escape (``\u4e2d``), so that
    matplotlib never draws an empty box or warns "Glyph missing", and ``$`` escaped so that no
    label is read as mathtext.

    >>> print(plot_text("cat"), plot_text("\x07"), plot_text("$5"))
    'cat' '\x07' '\$5'
    """
    have = _font_codepoints()
    out = []
    for ch in repr(label):
        o = ord(ch)
        if o < 128 or o in have:
            out.append(ch)
        else:
            out.append(f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}")
    return "".join(out).replace("$", r"\$")


def _wrap(text: str, width: int = 34) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def plot_scatter_grid(res: AuditResult) -> Any:
    """Cosine (x) against each behavioural measure (y) over the label set's pairs: one row per
    measure, one column per view (every view of the audit). A view or measure without a
    statistic (constant up to rounding, too few pairs) gets its reason instead of a scatter.
    Returns a matplotlib figure."""
    plt = _plt()
    views = list(res.similarities)
    fig, axes = plt.subplots(len(MEASURES), len(views),
                             figsize=(2.9 * len(views), 2.5 * len(MEASURES)), squeeze=False)
    k = len(res.labels)
    iu = np.triu_indices(k, 1)
    rc = {(r.view, r.measure): r for r in res.correlations}
    for r, m in enumerate(MEASURES):
        y = res.behaviour.matrices[m][iu]
        for c, v in enumerate(views):
            ax = axes[r][c]
            st = rc.get((v, m))
            if st is None or st.rho is None:
                why = (st.reason if st is not None and st.reason else "undefined")
                ax.text(0.5, 0.5, _wrap(why), ha="center", va="center", fontsize=7,
                        transform=ax.transAxes, color="#555")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{v}: undefined", fontsize=9)
            else:
                x = res.similarities[v][iu]
                ax.scatter(x, y, s=6, alpha=0.6)
                if m == "mean_min" and np.nanmin(y) > 0:
                    ax.set_yscale("log")
                ax.set_title(f"{v}: rho = {st.rho:+.2f}", fontsize=9)
                ax.tick_params(labelsize=7)
            if r == len(MEASURES) - 1:
                ax.set_xlabel(f"{v} cosine", fontsize=8)
            if c == 0:
                ax.set_ylabel(_wrap(MEASURE_TITLES[m], 24), fontsize=8)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.06, top=0.96, wspace=0.3, hspace=0.45)
    return fig


def plot_heatmap(res: AuditResult, name: str) -> Any:
    """The heat map of one view's cosines (``name`` a view: -1 to 1) or one measure (``name`` a
    measure of :data:`unembed.behaviour.MEASURES`) over the label set, with every label as a
    quoted tick (:func:`plot_text`; legible up to about 40 labels). Returns a matplotlib figure."""
    plt = _plt()
    if name in res.similarities:
        m = res.similarities[name]
        title, cmap, lim = f"{name} cosine", "RdBu_r", (-1.0, 1.0)
        if name in res.undefined_views:
            off = m[~np.eye(m.shape[0], dtype=bool)]
            title += (f" (constant {float(np.nanmedian(off)):+.3f}: no information)"
                      if np.isfinite(off).any() else " (undefined)")
    elif name in res.behaviour.matrices:
        m = res.behaviour.matrices[name]
        title, cmap, lim = MEASURE_TITLES[name], "viridis", None
        if name in res.undefined_measures:
            title += " (constant)"
    else:
        raise arg_error("plot_heatmap", "name", "must be a view or a measure of the audit",
                        got=name)
    k = len(res.labels)
    fig, ax = plt.subplots(figsize=(6.4, 6.0))
    shown = np.where(np.eye(k, dtype=bool), np.nan, m) if lim is None else m
    im = ax.imshow(shown, cmap=cmap, vmin=None if lim is None else lim[0],
                   vmax=None if lim is None else lim[1], interpolation="nearest")
    ax.set_title(title, fontsize=10)
    if k <= 60:
        fs = 8 if k <= 25 else 6.5 if k <= 40 else 5
        ticks = [plot_text(x) for x in res.labels]
        ax.set_xticks(range(k), ticks, rotation=90, fontsize=fs)
        ax.set_yticks(range(k), ticks, fontsize=fs)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.subplots_adjust(left=0.15, right=0.88, bottom=0.15, top=0.94)
    return fig


def plot_before_after(case: TranslationCase) -> Any:
    """Claim 1 on one pair: the pair's cosine under every view before and after the translation
    (undefined views marked), and both labels' probabilities before against after on the data.
    Returns a matplotlib figure."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.4))
    views = list(case.views_before)
    x = np.arange(len(views))
    before = [case.views_before[v] for v in views]
    after = [case.views_after.get(v) for v in views]
    a1.bar(x - 0.2, [np.nan if b is None else b for b in before], 0.4, label="original")
    a1.bar(x + 0.2, [np.nan if b is None else b for b in after], 0.4, label="translated")
    for i, b in enumerate(before):
        if b is None:
            a1.text(i, 0.05, "undefined", rotation=90, ha="center", va="bottom", fontsize=7,
                    color="#555")
    a1.set_xticks(x, views, fontsize=8)
    a1.set_ylim(-1.05, 1.05)
    a1.axhline(0, color="k", lw=0.5)
    a1.set_title(f"cosine of {plot_text(case.a)} and {plot_text(case.b)} per view", fontsize=9)
    a1.legend(fontsize=7)
    pb = np.asarray(case.probs_before_sample)
    pa = np.asarray(case.probs_after_sample)
    if pb.size:
        a2.scatter(pb.ravel(), pa.ravel(), s=6)
        a2.plot([0, 1], [0, 1], color="k", lw=0.5)
    a2.set_xlabel("p (original head)", fontsize=8)
    a2.set_ylabel("p (translated head)", fontsize=8)
    dp = None if case.equivalence is None else case.equivalence.max_abs_dp
    a2.set_title(f"p of both labels on data inputs; max |dp| = "
                 f"{_f(dp)}", fontsize=9)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.9, wspace=0.25)
    return fig


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


_MARK = {"shown": "<span class='ok'>shown</span>", "not shown": "<span class='no'>not shown</span>",
         "not testable": "<span class='nt'>not testable here</span>"}
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
        rows = [[_e(_pair(c.a, c.b)), _f(c.cosine), _f(c.p_a), _f(c.p_b),
                 _f(c.measures["co_topk"]), _f(c.measures["corr_p"]),
                 _e(c.witness_text) or str(c.witness)] for c in d.cases[:TABLE_ROWS]]
        out.append("<p>The data's evidence, most negative cosine first:</p>")
        out.append(_table(["labels", f"{d.view} cosine", "p_a at witness", "p_b at witness",
                           "freq. both in top k", "corr(p_a, p_b)", "witness input"],
                          rows, left=1))
        out.append(_shown_of(min(TABLE_ROWS, len(d.cases)), len(d.cases), "pairs"))
    if d.model_evidence:
        ev = d.model_evidence
        n_yes = sum(e.status == "yes" for e in ev)
        n_no = sum(e.status == "no" for e in ev)
        out.append(f"<p>The model's own evidence, no data needed ({_e(d.model_evidence_note)}): "
                   f"{n_yes} of {len(ev)} negative-cosine pairs can be the top two labels "
                   f"together (a witness hidden state; along it p_a = p_b approach 1/2), "
                   f"{n_no} cannot (a linear-programming certificate), "
                   f"{len(ev) - n_yes - n_no} undecided.</p>")
        rows = [[_e(_pair(e.a, e.b)), _f(e.cosine), _e(e.status), _f(e.margin), _f(e.p_a),
                 _f(e.p_b)] for e in ev[:TABLE_ROWS]]
        out.append(_table(["labels", f"{d.view} cosine", "can be the top two", "margin",
                           "p_a at witness", "p_b at witness"], rows, left=1))
        out.append(_shown_of(min(TABLE_ROWS, len(ev)), len(ev), "pairs"))
    return out


def _claim_html(cl: Claim, undefined: dict[str, str]) -> str:
    out = [f"<h3>Claim {cl.number}: {_e(cl.title)} — {_MARK[cl.outcome]}</h3>",
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
           f"labels together for some hidden state (decided over all {res.model['n_labels']} "
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


def _use_html(res: AuditResult) -> str:
    rows = []
    for me, rs in res.ranking().items():
        cells = [f"{_e(r.view)} ({r.rho:+.2f})" for r in rs if r.rho is not None]
        und = [r.view for r in rs if r.rho is None]
        rows.append([_e(MEASURE_TITLES[me]), " &gt; ".join(cells) or "none defined",
                     _e(", ".join(und)) or "none"])
    return ("<h2>What to use for this model</h2><p>The views ranked by how well their cosines "
            "predict each behavioural measure here (Spearman's rho across the label set's "
            "pairs, best first). Measured on this data and this label set: another data set "
            "can rank them differently.</p>"
            + _table(["measure", "views, best first (rho)", "no statistic (undefined)"], rows,
                     left=3))


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
    rows = [[_e(v)] + [("undefined" if by[(v, me)].rho is None else _f(by[(v, me)].rho))
                       for me in MEASURES] for v in res.similarities]
    parts.append(_table(["view"] + [MEASURE_TITLES[me] for me in MEASURES], rows, left=1))
    reasons = sorted({r.reason for r in res.correlations if r.rho is None and r.reason})
    if reasons:
        parts.append("<p class='small'>Undefined: " + "; ".join(_e(x) for x in reasons)
                     + ".</p>")
    parts.append("<p class='small'>p-values (in audit.json) treat the pairs as independent, "
                 "which pairs sharing a label are not: read them as a rough guide.</p>")
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
        cells = ", ".join(f"{r.view} {r.rho:+.2f}" if r.rho is not None
                          else f"{r.view} undefined" for r in rs)
        out.append(f"  rank corr. with {MEASURE_TITLES[me]}: {cells}")
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
            extra += (f"; model: {n_yes} of {len(ev)} negative pairs decided can be the top "
                      f"two together")
        out.append(f"  claim {cl.number} {cl.outcome}: {extra}")
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
        cells += [_MARK[c.outcome] for c in res.claims]
        cells.append(_e(", ".join(res.undefined_views)) or "none")
        best = res.ranking().get("mean_min", [])
        top = next((r for r in best if r.rho is not None), None)
        cells.append("n/a" if top is None else f"{_e(top.view)} ({top.rho:+.2f})")
        park = None if res.logit is None else res.logit.park
        cells.append("n/a" if park is None else _f(park.distance))
        rows.append(cells)
    return (_table(["model", "V / d", "claim 1", "claim 2", "claim 3", "no statistic",
                    "best view (rho)", "causal gap"], rows, left=1)
            + "<p class='small'><i>No statistic</i>: views constant over the label set (no "
              "rank correlation is computed for them). <i>Best view</i>: the view whose cosine "
              "ranks the pairs most like the mean of min(p_i, p_j) on the data. <i>Causal "
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
                facts += [[f"claim {c.number}: {_MARK[c.outcome]}", _e(c.why)]
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
