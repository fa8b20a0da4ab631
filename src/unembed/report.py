"""Audit results -> a self-contained HTML page (tables, PNG plots embedded as base64) and a JSON
file with every number. The only module of unembed that knows markup.

Plots use matplotlib's Agg backend (no display needed): cosine against each behavioural measure
per view, heat maps over the label set, and the before/after of the equivalent models of
claim 1.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unembed._io import atomic_write
from unembed._json import jsonable
from unembed.audit import AuditResult
from unembed.behaviour import MEASURE_TITLES, MEASURES

__all__ = ["jsonable", "render_html", "summary_lines", "write_index", "write_report"]


# ---------------------------------------------------------------------------- plots
def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72)
    _plt().close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _scatter_grid(res: AuditResult) -> str:
    plt = _plt()
    views = list(res.similarities)
    fig, axes = plt.subplots(len(MEASURES), len(views),
                             figsize=(3.0 * len(views), 2.5 * len(MEASURES)), squeeze=False)
    k = len(res.labels)
    iu = np.triu_indices(k, 1)
    rho = {(r.view, r.measure): r.rho for r in res.correlations}
    for r, m in enumerate(MEASURES):
        y = res.behaviour.matrices[m][iu]
        for c, v in enumerate(views):
            ax = axes[r][c]
            x = res.similarities[v][iu]
            ax.scatter(x, y, s=6, alpha=0.6)
            if m == "mean_min" and np.nanmin(y) > 0:
                ax.set_yscale("log")
            ax.set_title(f"{v}: rho = {rho.get((v, m), float('nan')):+.2f}", fontsize=9)
            if r == len(MEASURES) - 1:
                ax.set_xlabel(f"{v} cosine", fontsize=8)
            if c == 0:
                ax.set_ylabel(MEASURE_TITLES[m], fontsize=8)
            ax.tick_params(labelsize=7)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.06, top=0.96, wspace=0.3, hspace=0.45)
    return _png(fig)


def _heatmaps(res: AuditResult) -> str:
    plt = _plt()
    mats: list[tuple[str, Any, str, tuple[int, int] | None]] = [
        (f"{v} cosine", res.similarities[v], "RdBu_r", (-1, 1)) for v in res.similarities]
    mats += [(MEASURE_TITLES[m], res.behaviour.matrices[m], "viridis", None) for m in MEASURES]
    cols = 5
    rows = math.ceil(len(mats) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 4.3 * rows), squeeze=False)
    k = len(res.labels)
    ticks = k <= 40
    for ax, (title, m, cmap, lim) in zip(axes.ravel(), mats):
        shown = np.where(np.eye(k, dtype=bool), np.nan, m) if lim is None else m
        im = ax.imshow(shown, cmap=cmap, vmin=None if lim is None else lim[0],
                       vmax=None if lim is None else lim[1], interpolation="nearest")
        ax.set_title(title, fontsize=9)
        if ticks:
            ax.set_xticks(range(k), res.labels, rotation=90, fontsize=6)
            ax.set_yticks(range(k), res.labels, fontsize=6)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    for ax in axes.ravel()[len(mats):]:
        ax.axis("off")
    fig.subplots_adjust(left=0.05, right=0.97, bottom=0.08, top=0.94, wspace=0.45, hspace=0.4)
    return _png(fig)


def _before_after(case: dict[str, Any]) -> str:
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    views = list(case["views_before"])
    x = np.arange(len(views))
    a1.bar(x - 0.2, [case["views_before"][v] for v in views], 0.4, label="original")
    a1.bar(x + 0.2, [case["views_after"][v] for v in views], 0.4, label="translated")
    a1.set_xticks(x, views, fontsize=8)
    a1.set_ylim(-1.05, 1.05)
    a1.axhline(0, color="k", lw=0.5)
    a1.set_title(f"cosine of {case['a']!r} and {case['b']!r} per view", fontsize=9)
    a1.legend(fontsize=7)
    pb = np.asarray(case.get("probs_before_sample", []))
    pa = np.asarray(case.get("probs_after_sample", []))
    if pb.size:
        a2.scatter(pb.ravel(), pa.ravel(), s=6)
        a2.plot([0, 1], [0, 1], color="k", lw=0.5)
    a2.set_xlabel("p (original head)", fontsize=8)
    a2.set_ylabel("p (translated head)", fontsize=8)
    a2.set_title(f"p of both labels on data inputs; max |dp| = "
                 f"{case['equivalence']['max_abs_dp']:.1e}", fontsize=9)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.9, wspace=0.25)
    return _png(fig)


# ---------------------------------------------------------------------------- html
_CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 7px;
font-size:13px;text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}
.ok{color:#070;font-weight:bold}.no{color:#b00;font-weight:bold}img{max-width:100%}
code{background:#f5f5f5;padding:0 3px}.small{font-size:12px;color:#555}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _f(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    v = float(x)
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.2e}"
    return f"{v:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 0) -> str:
    th = "".join(f"<th class='l'>{_e(h)}</th>" if i < left else f"<th>{_e(h)}</th>"
                 for i, h in enumerate(header))
    body = []
    for r in rows:
        tds = "".join(f"<td class='l'>{c}</td>" if i < left else f"<td>{c}</td>"
                      for i, c in enumerate(r))
        body.append(f"<tr>{tds}</tr>")
    return f"<table><tr>{th}</tr>{''.join(body)}</table>"


def _claim_html(cl: dict[str, Any]) -> str:
    mark = "<span class='ok'>shown</span>" if cl["shown"] else "<span class='no'>not shown</span>"
    out = [f"<h3>Claim {cl['number']}: {_e(cl['title'])} — {mark}</h3>",
           f"<p>{_e(cl['statement'])}</p>"]
    d = cl["details"]
    if cl["number"] == 1:
        rows = []
        for c in d["pairs"]:
            if "refused" in c:
                rows.append([_e(c["which"]), _e(f"{c['a']} / {c['b']}"), _f(c["cosine_before"]),
                             _f(c["target"]), "refused", _e(c["refused"]), "", ""])
                continue
            eq = c["equivalence"]
            rows.append([_e(c["which"]), _e(f"{c['a']} / {c['b']}"), _f(c["cosine_before"], 6),
                         _f(c["target"]), _f(c["cosine_after"], 12), _f(eq["max_abs_dp"]),
                         _f(eq["max_abs_dlogp"]), _e(eq["verdict"].split(":")[0])])
        out.append(_table(["pair", "labels", "raw cosine before", "target", "raw cosine after",
                           "max |dp|", "max |dlog p|", "verdict"], rows, left=2))
        out.append(f"<p class='small'>Verified on {d['verified_on']} hidden states of the audit "
                   f"data (all labels compared). Translation-invariant views keep their values; "
                   f"see the bars.</p>")
        for c in d["pairs"]:
            if "refused" not in c:
                out.append(f"<img alt='before/after' src='data:image/png;base64,"
                           f"{_before_after(c)}'>")
    else:
        out.append(f"<p>{d['pairs_below_threshold']} of {d['pairs_total']} pairs have "
                   f"{_e(d['view'])} cosine &le; {_f(d['threshold'])}; {d['pairs_found']} of "
                   f"them have an input where both labels have p &ge; {_f(d['likely'])} "
                   f"({d['pairs_negative_found']} of the {d['pairs_negative']} pairs with a "
                   f"negative cosine).</p>")
        rows = [[_e(f"{c['a']} / {c['b']}"), _f(c["cosine"]), _f(c["p_a"]), _f(c["p_b"]),
                 _f(c["measures"]["co_topk"]), _f(c["measures"]["corr_p"]),
                 _e(c.get("witness_text", "")) or str(c["witness"])]
                for c in d["cases"]]
        if rows:
            out.append(_table(["labels", f"{d['view']} cosine", "p_a at witness",
                               "p_b at witness", "freq. both in top k", "corr(p_a, p_b)",
                               "witness input"], rows, left=1))
    return "\n".join(out)


def _co_top_html(d: dict[str, Any]) -> str:
    ct = d["co_top"]
    feas = np.asarray(ct["feasible"], dtype=bool)
    k = feas.shape[0]
    iu = np.triu_indices(k, 1)
    n_yes = int(feas[iu].sum())
    out = ["<h2>Which pairs can be the top two together (the arrangement of all rows)</h2>",
           f"<p>{n_yes} of {iu[0].size} pairs of the label set can be the two most probable "
           f"labels together for some hidden state (decided over all {d['model']['n_labels']} "
           f"rows: a witness hidden state for each yes, a linear-programming certificate for "
           f"each no). Cosine does not decide this; a third label between two others can block "
           f"them.</p>"]
    no = [(int(i), int(j)) for i, j in zip(*iu) if not feas[i, j]]
    if no:
        cen = np.asarray(d["similarity"]["centered"], dtype=float)
        raw = np.asarray(d["similarity"]["raw"], dtype=float)
        rows = [[_e(f"{ct['labels'][i]} / {ct['labels'][j]}"), _f(raw[i, j]), _f(cen[i, j]),
                 _f(ct["margin"][i][j]), _e(ct["status"].get(f"{ct['labels'][i]}|"
                                                             f"{ct['labels'][j]}", ""))]
                for i, j in no[:30]]
        out.append(_table(["pair that can never be the top two", "raw cosine",
                           "centered cosine", "margin", "status"], rows, left=1))
    return "\n".join(out)


def render_html(res: AuditResult, *, title: str = "unembed audit") -> str:
    """The audit as one self-contained HTML page."""
    d = jsonable(res.to_dict())
    m = d["model"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>"]
    facts = [["model", _e(m.get("meta", {}).get("source", m["kind"]))],
             ["labels (V) / hidden size (d)", f"{m['n_labels']} / {m['d']}"],
             ["rows", _e(m["rows"]) + " (stored: the rows as stored; folded: the final "
              "norm's gain folded in)"],
             ["predictions analysed", str(d["data"]["n_predictions"])],
             ["label set", _e(d["data"]["label_selection"])],
             ["top k for co-occurrence", str(d["data"]["top_k"])]]
    for key, val in m.items():
        if key not in ("kind", "n_labels", "d", "link", "dtype", "rows", "meta"):
            facts.append([_e(key.replace("_", " ")), _e(_f(val) if isinstance(val, float)
                                                       else val)])
    parts.append(_table(["", ""], facts, left=2))
    parts.append("<h2>The paper's claims on this model</h2>")
    parts.extend(_claim_html(c) for c in d["claims"])
    parts.append("<h2>How well each view predicts behaviour (Spearman's rho across pairs)</h2>")
    by = {(r["view"], r["measure"]): r for r in d["rank_correlations"]}
    views = list(d["similarity"])
    rows = [[_e(v)] + [_f(by[(v, me)]["rho"]) for me in MEASURES] for v in views]
    parts.append(_table(["view"] + [MEASURE_TITLES[me] for me in MEASURES], rows, left=1))
    parts.append(f"<img alt='scatter' src='data:image/png;base64,{_scatter_grid(res)}'>")
    parts.append("<h2>Pairs that contradict each view most (measure: mean of min(p_i, p_j))"
                 "</h2>")
    rows = [[_e(c["view"]), _e(c["kind"]), _e(f"{c['a']} / {c['b']}"), _f(c["cosine"]),
             _f(c["value"]), _f(c["cosine_rank"], 2), _f(c["value_rank"], 2)]
            for c in d["contradictions"] if c["measure"] == "mean_min"]
    parts.append(_table(["view", "kind", "labels", "cosine", "mean min p", "cosine pct.",
                         "behaviour pct."], rows, left=3))
    if d.get("co_top"):
        parts.append(_co_top_html(d))
    parts.append("<h2>Heat maps over the label set</h2>")
    parts.append(f"<img alt='heat maps' src='data:image/png;base64,{_heatmaps(res)}'>")
    parts.append("<p class='small'>Every number above is in <code>audit.json</code> beside this "
                 "page, with the full matrices.</p></body></html>")
    return "\n".join(parts)


def summary_lines(res: AuditResult, *, name: str = "") -> list[str]:
    """A short terminal summary: the data, the best view per measure, the three claims."""
    d = res.to_dict()
    out = [f"{name or d['model']['kind']}: {d['data']['n_predictions']} predictions, "
           f"{len(res.labels)} labels ({d['data']['label_selection']})"]
    for me in MEASURES:
        rs = [r for r in res.correlations if r.measure == me and math.isfinite(r.rho)]
        if rs:
            cells = ", ".join(f"{r.view} {r.rho:+.2f}" for r in rs)
            out.append(f"  rank corr. with {MEASURE_TITLES[me]}: {cells}")
    for cl in res.claims:
        mark = "shown" if cl.shown else "NOT shown"
        extra = ""
        if cl.number == 1:
            extra = "; ".join(
                f"{c['a']}/{c['b']}: {c['cosine_before']:+.3f} -> {c['cosine_after']:+.3f}, "
                f"max |dp| {c['equivalence']['max_abs_dp']:.1e}" if "refused" not in c
                else f"{c['a']}/{c['b']}: refused" for c in cl.details["pairs"])
        else:
            extra = f"{cl.details['pairs_found']} pairs"
            if cl.details["cases"]:
                c = cl.details["cases"][0]
                extra += (f", e.g. {c['a']}/{c['b']}: cosine {c['cosine']:+.3f}, "
                          f"p = {c['p_a']:.2f} and {c['p_b']:.2f} on one input")
        out.append(f"  claim {cl.number} {mark}: {extra}")
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


def write_index(out: str | os.PathLike[str], title: str, sections: Sequence[dict[str, Any]],
                results: dict[str, AuditResult], extra: dict[str, Any], *,
                force: bool = False) -> Path:
    """A directory with one report per result (``out/NAME/``), an ``index.html`` linking them
    with each section's facts, and ``summary.json`` with ``extra`` and every audit."""

    def write(d: Path) -> None:
        for name, res in results.items():
            (d / name).mkdir()
            _write_files(res, d / name, f"{title}: {name}")
        body = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
                f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>"]
        for s in sections:
            body.append(f"<h2><a href='{_e(s['name'])}/report.html'>{_e(s['heading'])}</a></h2>")
            body.append(f"<p>{_e(s.get('text', ''))}</p>")
            if s.get("facts"):
                body.append(_table(["", ""], [[_e(k), _e(v)] for k, v in s["facts"]], left=2))
            if s["name"] in results:
                lines = summary_lines(results[s["name"]], name=s["name"])
                body.append("<pre>" + _e("\n".join(lines)) + "</pre>")
        body.append("<p class='small'>Numbers: <code>summary.json</code> here and "
                    "<code>NAME/audit.json</code> per model.</p></body></html>")
        (d / "index.html").write_text("\n".join(body), encoding="utf-8")
        allres = {**extra, "audits": {n: r.to_dict() for n, r in results.items()}}
        (d / "summary.json").write_text(json.dumps(jsonable(allres), indent=1),
                                        encoding="utf-8")

    return atomic_write(out, write, force=force, directory=True)
