"""The report reads at a glance at 900 and 1400 px browser widths: every figure's smallest
text is at least 10 CSS px as displayed (computed from the PNG's own pixel size and dpi, the
``<img>`` width and the page's CSS), heat maps carry no more labels than they can show and
say which were kept, and the text has no doubled words, no Python booleans, no constant table
columns and one precision per column."""

from __future__ import annotations

import base64
import itertools
import re
import struct
from html.parser import HTMLParser

import numpy as np
import pytest

from unembed.audit import audit
from unembed.behaviour import MEASURES, ArrayInputs
from unembed.head import Head
from unembed.plots import HEATMAP_MAX_LABELS, plot_before_after, plot_heatmap, plot_scatter_grid
from unembed.report import render_html
from unembed.sources.base import HeadModel

#: Browser window widths the report must read at, and the vertical scrollbar's width there.
WINDOWS = (900, 1400)
SCROLLBAR_PX = 17
MIN_DISPLAYED_PX = 10.0


class _Model(HeadModel):
    """A fixed random tanh feature map (5 -> d) and a softmax head over ``n`` labels."""

    kind = "test"

    def __init__(self, n: int, d: int = 4) -> None:
        rng = np.random.default_rng(3)
        self.a = rng.normal(size=(5, d))
        self.head = Head(W=rng.normal(size=(n, d)) * 2,
                         labels=tuple(f"label{i:02d}" for i in range(n)))

    def hidden_states(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(np.asarray(x, dtype=np.float64) @ self.a) * 3

    def model_logits(self, x: np.ndarray) -> np.ndarray:
        return self.head.logits(self.hidden_states(x))


X = np.random.default_rng(4).normal(size=(150, 5))


@pytest.fixture(scope="module")
def small():
    """Six labels (every one on the heat maps); the demo's boolean option among the facts."""
    model = _Model(6)
    return model, audit(model, ArrayInputs(X), progress=False, likely=0.05,
                        info={"quick": False, "steps": 3})


@pytest.fixture(scope="module")
def large():
    """40 labels, more than a heat map shows."""
    model = _Model(40, d=6)
    return model, audit(model, ArrayInputs(X), progress=False, likely=0.05, top_n=40,
                        co_top=False)


class _Page(HTMLParser):
    """The page's images (attributes) and tables (rows of cell texts), and its visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.tables: list[list[list[str]]] = []  # rows of td cells (header rows empty)
        self.text: list[str] = []
        self._cell: list[str] | None = None
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "img":
            self.images.append(a)
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag == "td":
            self._cell = []
        elif tag in ("style", "title"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag in ("style", "title"):
            self._skip -= 1

    def handle_data(self, data):
        if self._skip:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    return p


def _png_geometry(data: bytes) -> tuple[int, float]:
    """(pixel width, dots per inch) read from a PNG's IHDR and pHYs chunks."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width = struct.unpack(">I", data[16:20])[0]
    i = data.index(b"pHYs")
    ppm_x, _ppm_y, unit = struct.unpack(">IIB", data[i + 4:i + 13])
    assert unit == 1  # pixels per metre
    return width, ppm_x * 0.0254


def _column_px(page: str, window: int) -> float:
    """The text column's width in a browser window, from the page's own CSS: body max-width
    and horizontal padding, a scrollbar taken off."""
    css = re.search(r"<style>(.*?)</style>", page, re.S)
    assert css is not None
    body = re.search(r"body\{([^}]*)\}", css.group(1))
    assert body is not None
    max_w = float(re.search(r"max-width:(\d+)px", body.group(1)).group(1))
    pad = float(re.search(r"padding:0 (\d+)px", body.group(1)).group(1))
    return min(max_w, window - SCROLLBAR_PX - 2 * pad)


def _figure_of(res, alt: str):
    kind, _, name = alt.partition(": ")
    if kind == "scatter":
        return plot_scatter_grid(res, (name,))
    if kind == "heat map":
        return plot_heatmap(res, name)
    assert kind == "before/after"
    cases = [c for c in res.claims[0].details.pairs if c.refused is None]
    return plot_before_after(next(c for c in cases if f"{c.a!r} & {c.b!r}" == name))


def _smallest_text_pt(fig) -> float:
    import matplotlib.text

    fig.canvas.draw()
    sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text)
             if t.get_visible() and t.get_text().strip()]
    return min(sizes)


@pytest.mark.parametrize("which", ["small", "large"])
def test_every_figure_text_is_at_least_10px_at_900_and_1400(which, request) -> None:
    import matplotlib.pyplot as plt

    _, res = request.getfixturevalue(which)
    page = render_html(res)
    imgs = _parse(page).images
    alts = {im["alt"] for im in imgs}
    # every figure of the report is here: a scatter grid per measure, a heat map per view and
    # measure, claim 1's before/after per pair
    assert {f"scatter: {m}" for m in MEASURES} <= alts
    assert {f"heat map: {n}" for n in [*res.similarities, *MEASURES]} <= alts
    assert sum(a.startswith("before/after") for a in alts) == sum(
        c.refused is None for c in res.claims[0].details.pairs)
    for im in imgs:
        png = base64.b64decode(im["src"].split(",", 1)[1])
        png_w, dpi = _png_geometry(png)
        css_w = float(im["width"])
        fig = _figure_of(res, im["alt"])
        # the PNG is this figure at its dpi
        assert abs(png_w - fig.get_figwidth() * dpi) <= 1
        pt = _smallest_text_pt(fig)
        plt.close(fig)
        for window in WINDOWS:
            shown_w = min(css_w, _column_px(page, window))  # CSS max-width: 100%
            px = pt * dpi / 72 * shown_w / png_w
            assert px >= MIN_DISPLAYED_PX, (im["alt"], window, px)
            # one figure per row never shrinks from 900 px up: the grid is not squeezed
            assert shown_w == css_w, (im["alt"], window, css_w)


def _overlaps(boxes) -> bool:
    return any(a.overlaps(b) for a, b in itertools.pairwise(boxes))


def test_heat_map_keeps_at_most_its_labels_and_says_which(large) -> None:
    import matplotlib.pyplot as plt

    model, res = large
    assert len(res.labels) == 40 > HEATMAP_MAX_LABELS
    # independently: the mean probability of each label over the data, largest first
    mean_p = model.head.probs(model.hidden_states(X)).mean(axis=0)
    top = {model.head.labels[i] for i in np.argsort(-mean_p)[:HEATMAP_MAX_LABELS]}
    for name in ("raw", "mean_min"):
        fig = plot_heatmap(res, name)
        fig.canvas.draw()
        ax = fig.axes[0]
        xt = [t for t in ax.get_xticklabels() if t.get_text()]
        yt = [t for t in ax.get_yticklabels() if t.get_text()]
        assert len(xt) == len(yt) == HEATMAP_MAX_LABELS
        assert {t.get_text().strip("'") for t in yt} == top
        r = fig.canvas.get_renderer()
        assert not _overlaps([t.get_window_extent(r) for t in yt])
        assert not _overlaps([t.get_window_extent(r) for t in xt])
        assert "of the 40 in the label set" in ax.get_title()
        # the colour bar has values and says what they are
        bar = fig.axes[1]
        assert [t for t in bar.get_yticklabels() if t.get_text()] and bar.get_ylabel()
        plt.close(fig)
    page = render_html(res)
    assert (f"the {HEATMAP_MAX_LABELS} labels of largest mean probability of the 40 in the "
            f"label set") in page and "audit.json" in page


def test_small_heat_map_keeps_every_label(small) -> None:
    import matplotlib.pyplot as plt

    _, res = small
    fig = plot_heatmap(res, "centered")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [repr(x) for x in res.labels]
    plt.close(fig)


_NUMBER = re.compile(r"^[+-]?\d+\.(\d+)(e[+-]\d+)?$")


@pytest.mark.parametrize("which", ["small", "large"])
def test_report_text_has_no_defects(which, request) -> None:
    _, res = request.getfixturevalue(which)
    page = render_html(res)
    p = _parse(page)
    text = " ".join(" ".join(p.text).split())
    assert "undefined: undefined" not in text.lower()
    assert not re.search(r"\b(True|False|None)\b", text), re.findall(
        r".{40}\b(?:True|False|None)\b.{20}", text)
    assert "the caller" not in text and "labels from" not in text
    if which == "small":
        assert "quick run (barely trained models, for tests) no" in text
    # margins carry their scale
    assert "margin" not in text or "margin (logits" in text
    for t in p.tables:
        rows = [r for r in t if r]
        ncol = {len(r) for r in rows}
        if len(rows) < 2 or len(ncol) != 1:
            continue
        for j in range(ncol.pop()):
            col = [r[j] for r in rows]
            assert len(set(col)) > 1, ("constant column", j, col[0], rows[0])
            nums = [_NUMBER.match(c) for c in col]
            if all(nums):
                styles = {(len(m.group(1)), bool(m.group(2))) for m in nums if m}
                assert len(styles) == 1, ("precisions differ in a column", j, col)


def test_docs_state_the_report_geometry() -> None:
    """docs/audit.md quotes the figures' geometry; it cannot drift from the constants."""
    from pathlib import Path

    from unembed.plots import CSS_DPI, MIN_FONT_PT, WIDE_IN

    text = " ".join((Path(__file__).parents[2] / "docs" / "audit.md").read_text().split())
    assert f"at most {HEATMAP_MAX_LABELS} labels" in text
    assert f"never wider than {round(WIDE_IN * CSS_DPI)} px" in text
    assert f"{MIN_FONT_PT:g} pt, is {MIN_FONT_PT * CSS_DPI / 72:.1f} px" in text
