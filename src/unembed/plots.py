"""The audit's plots (matplotlib, Agg backend: no display needed): cosine against each
behavioural measure per view, heat maps over the label set, and the before/after of the
equivalent models of claim 1. :mod:`unembed.report` embeds them in the HTML page."""

from __future__ import annotations

import base64
import functools
import io
from typing import Any

import numpy as np

from unembed._checks import UnembedError
from unembed.accumulators import MEASURE_TITLES, MEASURES
from unembed.audit import AuditResult, TranslationCase

__all__ = ["plot_before_after", "plot_heatmap", "plot_scatter_grid", "plot_text"]


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
                ax.set_title(f"{v}: rho = {st.rho:+.2f} (n = {st.n_pairs})", fontsize=9)
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
        raise UnembedError("must be a view or a measure of the audit", argument="name",
                           function="plot_heatmap", got=name)
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
    a2.set_title("p of both labels on data inputs; max |dp| = "
                 + ("n/a" if dp is None else f"{dp:.2e}"), fontsize=9)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.9, wspace=0.25)
    return fig


