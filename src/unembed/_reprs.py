"""Notebook HTML for heads, loaded models, audit results and pair tables: the one module of
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
    from unembed.head import Head
    from unembed.model import LoadedModel
    from unembed.pair_table import PairTable

__all__ = ["audit_html", "head_html", "model_html", "pair_table_html"]


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


register_html("head", head_html)
register_html("model", model_html)
register_html("audit", audit_html)
register_html("pair_table", pair_table_html)
