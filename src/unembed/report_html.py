"""HTML pieces of the audit report: escaping, numbers at one precision per column, tables
(constant columns stated once above them, headers that explain themselves on hover), figures
shown at their size, and the page's style."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from unembed.plots import _png

__all__ = ["COLUMN_MAX_PX", "CSS", "PADDING_PX", "Cell", "Header", "column", "esc", "img", "num",
           "pair_text", "shown_of", "table"]

#: The page's text column: at most 1200 px, 16 px of padding each side (853 px in a 900 px
#: window with a scrollbar), so a figure of :data:`unembed.plots.WIDE_IN` inches (806 px) is
#: never shrunk from 900 px up.
COLUMN_MAX_PX = 1200
PADDING_PX = 16

CSS = f"""
body{{font-family:system-ui,sans-serif;max-width:{COLUMN_MAX_PX}px;margin:2em auto;
padding:0 {PADDING_PX}px;color:#222}}
table{{border-collapse:collapse;margin:.5em 0 1.5em;max-width:100%}}td,th{{border:1px solid #ccc;
padding:3px 7px;font-size:13px;text-align:right;overflow-wrap:break-word}}th{{background:#f3f3f3}}
td.l,th.l{{text-align:left}}.ok{{color:#070;font-weight:bold}}.no{{color:#b00;font-weight:bold}}
.nt{{color:#8a6d00;font-weight:bold}}img{{max-width:100%;height:auto}}.wide{{overflow-x:auto}}
code{{background:#f5f5f5;padding:0 3px}}.small{{font-size:12px;color:#555}}
.grid{{display:flex;flex-wrap:wrap;gap:8px}}th[title]{{text-decoration:underline dotted}}
dl.terms dt{{font-weight:bold;float:left;clear:left;
margin-right:.5em}}dl.terms dd{{margin:0 0 .2em 0}}dl.terms{{font-size:13px}}
"""


def esc(x: Any) -> str:
    return html.escape(str(x))


def num(x: Any, digits: int = 3) -> str:
    """Numbers in one format: integers as they are, |x| in [1e-3, 1e5) with ``digits``
    decimals, others in scientific notation; None and NaN as "n/a"; booleans as yes/no."""
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


def column(values: Sequence[float | None], digits: int = 3) -> list[str]:
    """One column's numbers at one precision: all with ``digits`` decimals when every finite
    nonzero value has magnitude in [10^-digits, 1e5), else all in scientific notation with 3
    significant digits; None and NaN as "n/a"."""
    fin = [float(v) for v in values if v is not None and math.isfinite(v)]
    sci = any(v != 0 and (abs(v) < 10.0 ** -digits or abs(v) >= 1e5) for v in fin)
    return ["n/a" if v is None or not math.isfinite(v)
            else f"{float(v):.2e}" if sci else f"{float(v):.{digits}f}" for v in values]


def pair_text(a: str, b: str) -> str:
    """A pair of labels, each quoted (tokens may contain spaces or slashes)."""
    return f"{a!r} & {b!r}"


#: A table cell: markup (a str, already escaped), or a number (a float or None) that the
#: table prints in its column's one format (:func:`column`).
Cell = str | float | None
#: A column header: its text, or its text and what it means (shown on hover).
Header = str | tuple[str, str]


def _th(h: Header, left: bool) -> str:
    text, tip = (h, "") if isinstance(h, str) else h
    cls = " class='l'" if left else ""
    title = f" title='{esc(tip)}'" if tip else ""
    return f"<th{cls}{title}>{esc(text)}</th>"


def table(header: Sequence[Header], rows: Sequence[Sequence[Cell]], left: int = 0, *,
           digits: dict[int, int] | None = None, fold: bool = True) -> str:
    """An HTML table. Number cells (floats, None) are printed column by column at one
    precision (:func:`column`; ``digits``: fixed decimals for the columns it names). With
    ``fold`` (the default) and a header, a column whose cells are the same in every row (of
    two or more) is left out and stated once above the table ("In every row: ...")."""
    cols = max((len(r) for r in rows), default=len(header))
    text: list[list[str]] = [[c if isinstance(c, str) else "" for c in r] for r in rows]
    for j in range(cols):
        idx = [i for i, r in enumerate(rows) if j < len(r) and not isinstance(r[j], str)]
        if idx:
            vals: list[float | None] = []
            for i in idx:
                c = rows[i][j]
                vals.append(None if c is None or isinstance(c, str) else float(c))
            given = (digits or {}).get(j)
            shown = (column(vals, 3) if given is None
                     else [num(v, given) for v in vals])  # decimals given: fixed point
            for i, t in zip(idx, shown, strict=True):
                text[i][j] = t
    keep = list(range(cols))
    note = ""
    if fold and any(header) and len(text) >= 2:
        same = [j for j in range(cols)
                if all(len(r) == cols for r in text) and len({r[j] for r in text}) == 1
                and j < len(header)]
        if same and len(same) < cols:
            keep = [j for j in keep if j not in same]
            note = ("<p class='small'>In every row: " + "; ".join(
                f"{esc(header[j] if isinstance(header[j], str) else header[j][0])} = "
                f"{text[0][j]}" for j in same) + ".</p>")
    th = "".join(_th(header[j], j < left) for j in keep if j < len(header))
    head = f"<tr>{th}</tr>" if any(header) else ""
    body = []
    for r in text:
        tds = "".join(f"<td class='l'>{r[j]}</td>" if j < left else f"<td>{r[j]}</td>"
                      for j in keep if j < len(r))
        body.append(f"<tr>{tds}</tr>")
    return f"{note}<div class='wide'><table>{head}{''.join(body)}</table></div>"


def img(fig: Any, alt: str, cls: str = "") -> str:
    """A figure as an ``<img>`` shown at its size in inches (:data:`unembed.plots.CSS_DPI`
    px per inch; CSS ``max-width: 100%`` only on screens narrower than the figure)."""
    p = _png(fig)
    c = f" class='{cls}'" if cls else ""
    return (f"<img{c} width='{p.css_width}' alt='{esc(alt)}' "
            f"src='data:image/png;base64,{p.data}'>")


def shown_of(n: int, total: int, what: str) -> str:
    return f"<p class='small'>{n} of {total} {what} shown; all {total} in audit.json.</p>"


