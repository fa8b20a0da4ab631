"""Labels the plots cannot draw as they are (control characters, characters the font lacks,
"$" that would start mathtext) are shown escaped and quoted: no "Glyph missing" warning (the
suite turns warnings into errors), no label read as math."""

from __future__ import annotations

import numpy as np
import pytest

from unembed.audit import audit
from unembed.behaviour import ArrayInputs
from unembed.head import Head
from unembed.report import plot_before_after, plot_heatmap, plot_text
from unembed.sources.base import HeadModel

LABELS = ("\x07bell", "中文", "$x$", "a\\u4e2d", "tab\there", "plain")


class _Model(HeadModel):
    kind = "test"

    def __init__(self) -> None:
        rng = np.random.default_rng(3)
        self.a = rng.normal(size=(5, 4))
        self.head = Head(W=rng.normal(size=(6, 4)) * 2, labels=LABELS)

    def hidden_states(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(np.asarray(x, dtype=np.float64) @ self.a) * 3

    def model_logits(self, x: np.ndarray) -> np.ndarray:
        return self.head.logits(self.hidden_states(x))


def _glyphs() -> set[int]:
    """The default font's code points, read independently with fontTools-free FT2Font."""
    from matplotlib import font_manager, ft2font

    return set(ft2font.FT2Font(font_manager.findfont(font_manager.FontProperties()))
               .get_charmap())


def test_plot_text_is_drawable_and_unambiguous():
    import matplotlib.cbook as cbook

    have = _glyphs()
    shown = [plot_text(x) for x in LABELS]
    for s in shown:
        assert all(ord(c) < 128 or ord(c) in have for c in s)
        assert not cbook.is_math_text(s)
    assert len(set(shown)) == len(LABELS)
    # the escaped CJK label and the label that literally holds a backslash-u stay distinct
    if ord("中") not in have:
        assert shown[1] == "'\\u4e2d\\u6587'" and shown[3] == "'a\\\\u4e2d'"


@pytest.mark.filterwarnings("error")
def test_report_plots_draw_every_label_without_warnings():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    x = np.random.default_rng(4).normal(size=(80, 5))
    res = audit(_Model(), ArrayInputs(x), progress=False, likely=0.05)
    fig = plot_heatmap(res, "raw")
    fig.canvas.draw()  # a missing glyph warns here
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == [plot_text(x) for x in res.labels]
    plt.close(fig)
    pairs = res.claims[0].details.pairs
    if pairs:
        fig = plot_before_after(pairs[0])
        fig.canvas.draw()
        plt.close(fig)
