"""The audit's plots (matplotlib, Agg backend: no display needed): cosine against each
behavioural measure per view, heat maps over the label set, and the before/after of the
equivalent models of claim 1. :mod:`unembed.report` embeds them in the HTML page.

Geometry: a figure is shown at its size in inches, 96 CSS pixels per inch (:data:`CSS_DPI`),
so a point of text is 96/72 = 1.33 CSS pixels and the smallest text (:data:`MIN_FONT_PT`,
8 pt) is 10.7 px. No figure is wider than :data:`WIDE_IN` (8.4 in, 806 px), narrower than the
text column of a 900 px browser window, so no browser width from 900 px up shrinks one. The
PNG holds :data:`PNG_DPI` pixels per inch (1.5 per CSS pixel: sharp on dense screens).
"""

from __future__ import annotations

import base64
import functools
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from unembed._checks import UnembedError
from unembed.accumulators import MEASURE_TITLES, MEASURES
from unembed.audit import AuditResult, TranslationCase

__all__ = [
    "CSS_DPI",
    "HEATMAP_MAX_LABELS",
    "MIN_FONT_PT",
    "PNG_DPI",
    "WIDE_IN",
    "HeatmapLabels",
    "heatmap_labels",
    "plot_before_after",
    "plot_heatmap",
    "plot_scatter_grid",
    "plot_text",
]

#: CSS pixels per inch: the ``<img>`` width of a figure is its width in inches times this.
CSS_DPI = 96
#: PNG pixels per inch of figure (1.5 device pixels per CSS pixel).
PNG_DPI = 144
#: The smallest text of every figure (tick labels, legends, colour-bar values), in points:
#: 8 pt * 96/72 = 10.7 CSS px as displayed.
MIN_FONT_PT = 8.0
_LABEL_PT = 9.0
_TITLE_PT = 10.0
#: The widest figure, in inches (806 CSS px: the text column of a 900 px window is 853 px).
WIDE_IN = 8.4
#: A heat map's size, in inches (576 CSS px: two side by side in a 1400 px window, one per
#: row at 900 px).
HEATMAP_IN = 6.0
#: The most labels a heat map carries: 24 ticks on its ~400 px axis are 16 px apart, room for
#: 10.7 px text. A larger label set is shown as the 24 labels of largest mean probability.
HEATMAP_MAX_LABELS = 24
#: Tick labels longer than this many characters are cut with "…".
TICK_CHARS = 18


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


@dataclass(frozen=True)
class PngFigure:
    """A figure as the report embeds it: the PNG (base64) and the width in CSS pixels at
    which it is shown (its width in inches times :data:`CSS_DPI`)."""

    data: str
    css_width: int


def _png(fig: Any) -> PngFigure:
    buf = io.BytesIO()
    width = round(float(fig.get_figwidth()) * CSS_DPI)
    fig.savefig(buf, format="png", dpi=PNG_DPI)
    _plt().close(fig)
    return PngFigure(base64.b64encode(buf.getvalue()).decode("ascii"), width)


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


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def _tick(label: str) -> str:
    """A label as a tick shows it: :func:`plot_text`, cut to :data:`TICK_CHARS` characters."""
    t = plot_text(label)
    return t if len(t) <= TICK_CHARS else t[:TICK_CHARS - 1] + "…"


def _ticks(ax: Any) -> None:
    ax.tick_params(labelsize=MIN_FONT_PT)


#: Panels per row of the scatter grid.
SCATTER_COLUMNS = 3


def plot_scatter_grid(res: AuditResult, measures: tuple[str, ...] | None = None) -> Any:
    """Cosine (x) against each behavioural measure (y) over the label set's pairs: for each
    measure of ``measures`` (default: all of :data:`unembed.behaviour.MEASURES`) one panel per
    view (every view of the audit), :data:`SCATTER_COLUMNS` panels a row, :data:`WIDE_IN`
    inches wide. A view or measure without a statistic (constant up to rounding, too few
    pairs) gets its reason instead of a scatter. Returns a matplotlib figure."""
    plt = _plt()
    ms = MEASURES if measures is None else measures
    for m in ms:
        if m not in res.behaviour.matrices:
            raise UnembedError("must name measures of the audit", argument="measures",
                               function="plot_scatter_grid", got=m)
    views = list(res.similarities)
    cols = min(SCATTER_COLUMNS, len(views))
    per = math.ceil(len(views) / cols)
    fig, axes = plt.subplots(per * len(ms), cols, squeeze=False,
                             figsize=(WIDE_IN, 2.65 * per * len(ms)))
    k = len(res.labels)
    iu = np.triu_indices(k, 1)
    rc = {(r.view, r.measure): r for r in res.correlations}
    for r0, m in enumerate(ms):
        y = res.behaviour.matrices[m][iu]
        for c, v in enumerate(views):
            ax = axes[r0 * per + c // cols][c % cols]
            st = rc.get((v, m))
            if st is None or st.rho is None:
                why = (st.reason if st is not None and st.reason else "undefined")
                ax.text(0.5, 0.5, _wrap(why, 30), ha="center", va="center",
                        fontsize=MIN_FONT_PT, transform=ax.transAxes, color="#555")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{v}: no statistic", fontsize=_LABEL_PT)
            else:
                x = res.similarities[v][iu]
                ax.scatter(x, y, s=6, alpha=0.6)
                if m == "mean_min" and np.nanmin(y) > 0:
                    ax.set_yscale("log")
                ax.set_title(f"{v}: rho {st.rho:+.2f}, n = {st.n_pairs}", fontsize=_LABEL_PT)
                _ticks(ax)
                ax.xaxis.set_major_locator(plt.MaxNLocator(4))
            ax.set_xlabel(f"{v} cosine", fontsize=_LABEL_PT)
            if c % cols == 0:
                ax.set_ylabel(_wrap(MEASURE_TITLES[m], 22), fontsize=_LABEL_PT)
        for c in range(len(views), per * cols):
            axes[r0 * per + c // cols][c % cols].set_visible(False)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.09 / len(ms) / per * 2,
                        top=1 - 0.06 / len(ms) / per * 2, wspace=0.32, hspace=0.62)
    return fig


@dataclass(frozen=True)
class HeatmapLabels:
    """The labels a heat map carries: ``kept`` (indices into the label set, in its order) of
    ``total``; ``rule`` says which were kept in words ("" when all are)."""

    kept: tuple[int, ...]
    total: int
    rule: str


def heatmap_labels(res: AuditResult, limit: int = HEATMAP_MAX_LABELS) -> HeatmapLabels:
    """The labels of the audit's heat maps: all of the label set when it has at most ``limit``,
    else the ``limit`` of largest mean probability on the data (ties: label-set order), kept in
    label-set order."""
    k = len(res.labels)
    if k <= limit:
        return HeatmapLabels(tuple(range(k)), k, "")
    b = res.behaviour
    mean_p = np.asarray(b.tally.mean_p, dtype=np.float64)[np.asarray(b.idx)]
    top = np.argsort(-mean_p, kind="stable")[:limit]
    return HeatmapLabels(tuple(sorted(int(i) for i in top)), k,
                         f"the {limit} labels of largest mean probability of the {k} "
                         f"in the label set")


def plot_heatmap(res: AuditResult, name: str) -> Any:
    """The heat map of one view's cosines (``name`` a view: -1 to 1) or one measure (``name`` a
    measure of :data:`unembed.behaviour.MEASURES`) over the labels of :func:`heatmap_labels`
    (at most :data:`HEATMAP_MAX_LABELS`, each a quoted tick: :func:`plot_text`), with a colour
    bar of values. Returns a matplotlib figure."""
    plt = _plt()
    if name in res.similarities:
        m = res.similarities[name]
        title, cmap, lim, unit = f"{name} cosine", "RdBu_r", (-1.0, 1.0), f"{name} cosine"
        if name in res.undefined_views:
            off = m[~np.eye(m.shape[0], dtype=bool)]
            title += (f" (constant {float(np.nanmedian(off)):+.3f}: no information)"
                      if np.isfinite(off).any() else " (undefined)")
    elif name in res.behaviour.matrices:
        m = res.behaviour.matrices[name]
        title, cmap, lim, unit = MEASURE_TITLES[name], "viridis", None, MEASURE_TITLES[name]
        if name in res.undefined_measures:
            title += " (constant)"
    else:
        raise UnembedError("must be a view or a measure of the audit", argument="name",
                           function="plot_heatmap", got=name)
    keep = heatmap_labels(res)
    sel = np.asarray(keep.kept, dtype=np.int64)
    m = np.asarray(m)[np.ix_(sel, sel)]
    k = sel.size
    fig, ax = plt.subplots(figsize=(HEATMAP_IN, HEATMAP_IN), layout="constrained")
    shown = np.where(np.eye(k, dtype=bool), np.nan, m) if lim is None else m
    im = ax.imshow(shown, cmap=cmap, vmin=None if lim is None else lim[0],
                   vmax=None if lim is None else lim[1], interpolation="nearest")
    ax.set_title(title if not keep.rule else f"{title}\n({keep.rule})", fontsize=_LABEL_PT)
    ticks = [_tick(res.labels[i]) for i in keep.kept]
    ax.set_xticks(range(k), ticks, rotation=90, fontsize=MIN_FONT_PT)
    ax.set_yticks(range(k), ticks, fontsize=MIN_FONT_PT)
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    bar.ax.tick_params(labelsize=MIN_FONT_PT)
    bar.set_label(unit, fontsize=_LABEL_PT)
    return fig


def plot_before_after(case: TranslationCase) -> Any:
    """Claim 1 on one pair: the pair's cosine under every view before and after the translation
    (undefined views marked), and both labels' probabilities before against after on the data.
    Returns a matplotlib figure."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(WIDE_IN, 3.8), width_ratios=(1.25, 1))
    views = list(case.views_before)
    x = np.arange(len(views))
    before = [case.views_before[v] for v in views]
    after = [case.views_after.get(v) for v in views]
    a1.bar(x - 0.2, [np.nan if b is None else b for b in before], 0.4, label="original")
    a1.bar(x + 0.2, [np.nan if b is None else b for b in after], 0.4, label="translated")
    for i, b in enumerate(before):
        if b is None:
            a1.text(i, 0.05, "undefined", rotation=90, ha="center", va="bottom",
                    fontsize=MIN_FONT_PT, color="#555")
    a1.set_xticks(x, views, fontsize=MIN_FONT_PT, rotation=30, ha="right")
    a1.tick_params(axis="y", labelsize=MIN_FONT_PT)
    a1.set_ylim(-1.05, 1.05)
    a1.set_ylabel("cosine", fontsize=_LABEL_PT)
    a1.axhline(0, color="k", lw=0.5)
    a1.set_title(_wrap(f"cosine of {plot_text(case.a)} and {plot_text(case.b)} per view", 44),
                 fontsize=_LABEL_PT)
    a1.legend(fontsize=MIN_FONT_PT)
    pb = np.asarray(case.probs_before_sample)
    pa = np.asarray(case.probs_after_sample)
    if pb.size:
        a2.scatter(pb.ravel(), pa.ravel(), s=6)
        a2.plot([0, 1], [0, 1], color="k", lw=0.5)
    a2.tick_params(labelsize=MIN_FONT_PT)
    a2.set_xlabel("p (original head)", fontsize=_LABEL_PT)
    a2.set_ylabel("p (translated head)", fontsize=_LABEL_PT)
    dp = None if case.equivalence is None else case.equivalence.max_abs_dp
    a2.set_title("p of both labels on data inputs\nmax |dp| = "
                 + ("n/a" if dp is None else f"{dp:.2e}"), fontsize=_LABEL_PT)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.22, top=0.86, wspace=0.3)
    return fig
