"""Notebook HTML for heads, loaded models, audit results, pair tables and the analyses' results
(feasibility answers, constructions, equivalence checks, neighbours...): the one module of
``repr`` markup. Each renderer is registered with :mod:`unembed._display` when this module is
imported (importing ``unembed`` does), so the values answer ``_repr_html_`` without importing
this room.

Plain HTML (a small table, escaped text, no scripts or styles beyond inline ones), so Jupyter,
VS Code and GitHub previews all render it.

Examples
--------
>>> import numpy as np
>>> from unembed import Head, load
>>> m = load(Head(np.eye(3), labels=["a", "b", "c"]))
>>> m
FileModel(kind='file', head=Head(V=3, d=3, link='softmax', dtype=float64), source=None)
>>> "<table" in head_html(m.head) and "<table" in m._repr_html_()
True
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np

from unembed._display import register_html

if TYPE_CHECKING:  # pragma: no cover
    from unembed.audit import AuditResult
    from unembed.construct import AllPairsConstruction, CosineConstruction, MultiConstruction
    from unembed.equivalence import Equivalence
    from unembed.export import ExportResult
    from unembed.feasibility import CoTopMatrix, Enumeration, Feasibility, VocabularyResult
    from unembed.gauges import Symmetry
    from unembed.head import Head
    from unembed.keep_cosines import KeepCosines
    from unembed.model import LoadedModel
    from unembed.neighbours import Neighbours
    from unembed.pair_table import PairTable

__all__ = ["audit_html", "co_top_html", "construction_html", "enumeration_html",
           "equivalence_html", "export_html", "feasibility_html", "head_html",
           "keep_cosines_html", "model_html", "neighbours_html", "pair_table_html",
           "symmetry_html", "vocabulary_html"]


def _rows(items: list[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                   f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
                   for k, v in items if v is not None and v != "")


def _labels_preview(labels: tuple[str, ...], n: int = 8) -> str:
    shown = ", ".join(repr(x) for x in labels[:n])
    return shown + (f", … ({len(labels)} in all)" if len(labels) > n else "")


def head_html(head: Head) -> str:
    """An HTML table: shape, link, dtype, rows (stored or folded), source, bias, soft-cap,
    labels, row norms, notes."""
    norms = np.linalg.norm(head.W, axis=1)
    items: list[tuple[str, Any]] = [
        ("shape", f"V = {head.n_labels} labels × d = {head.d}"),
        ("link", head.link),
        ("stored as", head.dtype),
        ("rows", head.rows),
        ("source", head.source),
        ("bias", "yes" if head.b is not None else "no"),
        ("soft-cap", head.softcap),
        ("logit scale", head.logit_scale if head.logit_scale != 1.0 else None),
        ("labels", _labels_preview(head.labels)),
        ("row norms", f"min {norms.min():.4g}, median {np.median(norms):.4g}, "
                      f"max {norms.max():.4g}"),
    ]
    for note in head.meta.get("notes", []):
        items.append(("note", note))
    return f"<div><b>{html.escape(repr(head))}</b><table>{_rows(items)}</table></div>"


def model_html(model: LoadedModel) -> str:
    """The head's table under a title naming the model's kind."""
    return (f"<div><b>{html.escape(type(model).__name__)}</b> (kind "
            f"<code>{html.escape(str(model.kind))}</code>){head_html(model.head)}</div>")


def audit_html(result: AuditResult) -> str:
    """The audit's claims (shown, not shown, not testable here) and its strongest rank
    correlations (undefined ones left out)."""
    claims = "".join(
        f"<tr><td>{c.number}</td><td>{html.escape(c.verdict_line)}</td>"
        f"<td style='text-align:left'>{html.escape(c.title)}</td></tr>" for c in result.claims)
    corr = sorted((r for r in result.correlations if r.rho is not None),
                  key=lambda r: -abs(r.rho or 0.0))[:6]
    rows = "".join(f"<tr><td>{html.escape(r.view)}</td><td>{html.escape(r.measure)}</td>"
                   f"<td>{r.rho:+.3f}</td><td>{r.n_pairs}</td>"
                   f"<td>{'n/a' if r.p_value is None else f'{r.p_value:.2g}'}</td></tr>"
                   for r in corr)
    b = result.behaviour
    return (f"<div><b>AuditResult</b>: {len(result.labels)} labels, {b.n_predictions} "
            f"predictions ({html.escape(b.selection)})"
            f"<table><tr><th>claim</th><th>on this model</th><th></th></tr>{claims}</table>"
            f"<table><tr><th>view</th><th>measure</th><th>Spearman ρ</th><th>pairs</th>"
            f"<th>p (label permutations)</th></tr>"
            f"{rows}</table><p>.pair_table().to_frame() for every pair</p></div>")


def pair_table_html(table: PairTable, max_rows: int = 20) -> str:
    """The first ``max_rows`` rows of a pair table, cosines to 4 places."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = []
    for row in table.records(max_rows):
        cells = [f"<td>{v:+.4f}</td>" if isinstance(v, float) else
                 f"<td>{html.escape(str(v))}</td>" for v in row.values()]
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (f"<p>… {len(table) - max_rows} more rows (.to_frame() for all)</p>"
            if len(table) > max_rows else "")
    return (f"<div><b>PairTable</b>: {len(table)} rows<table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>{more}</div>")


def _titled(obj: object, items: list[tuple[str, Any]], extra: str = "") -> str:
    """The value's one-line repr as a title over a two-column table of ``items``."""
    return (f"<div><b>{html.escape(repr(obj))}</b><table>{_rows(items)}</table>"
            f"{extra}</div>")


def _grid(header: list[str], rows: list[list[Any]], more: int = 0) -> str:
    """A small table with a header row; ``more`` rows left out are said below it."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in r) + "</tr>"
                   for r in rows)
    tail = f"<p>… {more} more rows (.to_frame() for all)</p>" if more > 0 else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{tail}"


def _cell(v: Any) -> str:
    return f"{v:+.4g}" if isinstance(v, float) else str(v)


def feasibility_html(r: Feasibility) -> str:
    """The question, verdict, margin against its tolerance, method, evidence."""
    evidence = ("witness hidden state" if r.witness is not None else
                "dual certificate" if r.certificate is not None else "none")
    return _titled(r, [("question", r.question), ("labels", _labels_preview(r.labels)),
                       ("answer", r.status), ("margin", f"{r.margin:.4g} (tol {r.tol:.2g})"),
                       ("method", f"{r.method}, {r.lp_solves} LPs"), ("evidence", evidence),
                       ("realised on", r.realises), ("bounds", r.formulation)])


def vocabulary_html(r: VocabularyResult, max_rows: int = 10) -> str:
    """Counts by answer and by method, and the narrowest argmaxable labels."""
    counts = {k: int((r.status == k).sum()) for k in ("yes", "no", "undecided")}
    how = {k: int((r.method == k).sum()) for k in ("fast", "span", "lp", "identical")}
    narrow = [[n.labels[0], n.margin] for n in r.narrowest[:max_rows]]
    title = ("narrowest argmaxable labels (exact)" if r.narrowest_exact else
             "narrowest argmaxable labels (not proven the narrowest)")
    return _titled(r, [
        ("labels", len(r.labels)),
        ("argmaxable", f"{counts['yes']} yes, {counts['no']} no, {counts['undecided']} "
                       "undecided"),
        ("decided by", ", ".join(f"{k} {v}" for k, v in how.items())),
        ("not argmaxable", _labels_preview(tuple(r.unargmaxable))),
        ("tolerance", f"{r.tol:.2g}"), ("bounds", r.formulation)],
        f"<p>{title}</p>" + _grid(["label", "margin"], narrow, len(r.narrowest) - len(narrow)))


def co_top_html(r: CoTopMatrix, max_labels: int = 12) -> str:
    """Which pairs can be the top two: the matrix when small, else the counts."""
    if len(r.labels) > max_labels:
        return _titled(r, [("labels", _labels_preview(r.labels))],
                       "<p>.to_frame() for every pair</p>")
    rows = [[a] + ["" if i == j else ("yes" if r.feasible[i, j] else "no")
                   for j in range(len(r.labels))] for i, a in enumerate(r.labels)]
    return _titled(r, [], _grid(["can lead with", *r.labels], rows))


def enumeration_html(r: Enumeration, max_rows: int = 10) -> str:
    """The counts and the first feasible items."""
    rows = [[" > ".join(f.labels) if r.kind == "ranking" else ", ".join(f.labels), f.margin]
            for f in r.feasible[:max_rows]]
    return _titled(r, [("kind", r.kind), ("within", _labels_preview(r.labels)),
                       ("items", r.total), ("feasible", r.n_feasible),
                       ("infeasible", r.n_infeasible), ("undecided", len(r.undecided))],
                   _grid(["feasible item", "margin"], rows, r.n_feasible - len(rows)))


def equivalence_html(e: Equivalence) -> str:
    """The verdict and the figures behind it."""
    return _titled(e, [("verdict", "equivalent" if e.equivalent else "NOT equivalent"),
                       ("inputs", e.n_inputs),
                       ("max |Δp|", f"{e.max_abs_dp:.3g} (tolerance {e.tolerance:.0e}, "
                                    f"{e.dtype})"),
                       ("max |Δlog p|", f"{e.max_abs_dlogp:.3g}"),
                       ("mean KL", f"{e.mean_kl:.3g}"),
                       ("argmax agreement", f"{100 * e.argmax_agreement:.2f}%")])


def construction_html(r: CosineConstruction | MultiConstruction | AllPairsConstruction) -> str:
    """The pairs' cosines before and after, and the equivalence check."""
    from unembed.construct import AllPairsConstruction, CosineConstruction

    if isinstance(r, CosineConstruction):
        rows = [[f"{r.labels[0]} · {r.labels[1]}", r.cosine_before, r.cosine_after, r.target,
                 "yes" if r.reached else "no"]]
    elif isinstance(r, AllPairsConstruction):
        rows = []
    else:
        rows = [[f"{p.labels[0]} · {p.labels[1]}", p.cosine_before, p.cosine_after, p.target,
                 "yes" if p.reached else "no"] for p in r.pairs[:20]]
    table = _grid(["pair", "raw cosine before", "after", "target", "reached"], rows) \
        if rows else ""
    eq = "" if r.equivalence is None else equivalence_html(r.equivalence)
    return _titled(r, [("translation |c|", f"{float(np.linalg.norm(r.c)):.4g}"),
                       ("new head", repr(r.head))], table + eq)


def keep_cosines_html(r: KeepCosines) -> str:
    """The behaviour before and after, and the rows rescaled."""
    moved = int(np.count_nonzero(r.scales != 1.0))
    return _titled(r, [("question", f"{r.question} {', '.join(r.labels)}"),
                       ("before", r.before.status), ("after", r.after.status),
                       ("rows rescaled", f"{moved} of {r.scales.size}"),
                       ("max raw cosine change", f"{r.cosine_change:.2g}")])


def export_html(r: ExportResult) -> str:
    """Where the model was written, and the equivalence check of the written model."""
    items: list[tuple[str, Any]] = [("written", str(r.out)), ("kind", r.kind),
                                    ("head re-read", repr(r.head))]
    items += [("note", n) for n in r.notes]
    return _titled(r, items, equivalence_html(r.equivalence))


def symmetry_html(s: Symmetry) -> str:
    """Whether the transformation keeps the probabilities, and why."""
    word = {True: "holds", False: "does not hold", None: "unknown"}[s.holds]
    return _titled(s, [("transformation", s.name), ("keeps every probability", word),
                       ("why", s.reason)])


def neighbours_html(nb: Neighbours, max_labels: int = 8, per_label: int = 5) -> str:
    """Each query label's nearest labels (the first ``per_label``), for at most
    ``max_labels`` labels."""
    rows = [[lab, r, n.label, n.cosine] for lab, nbs in list(nb.items())[:max_labels]
            for r, n in enumerate(nbs[:per_label], start=1)]
    total = sum(len(v) for v in nb.values())
    return _titled(nb, [], _grid(["label", "rank", "neighbour",
                                  "co-probability" if nb.view == "coprob" else "cosine"],
                                 rows, total - len(rows)))


register_html("head", head_html)
register_html("model", model_html)
register_html("audit", audit_html)
register_html("pair_table", pair_table_html)
register_html("feasibility", feasibility_html)
register_html("vocabulary", vocabulary_html)
register_html("co_top", co_top_html)
register_html("enumeration", enumeration_html)
register_html("equivalence", equivalence_html)
register_html("construction", construction_html)
register_html("keep_cosines", keep_cosines_html)
register_html("export", export_html)
register_html("symmetry", symmetry_html)
register_html("neighbours", neighbours_html)
