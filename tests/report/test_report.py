"""The report: a self-contained HTML page with embedded PNGs, strict JSON with every number,
written atomically."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from unembed import UnembedError
from unembed.audit import audit
from unembed.behaviour import ArrayInputs
from unembed.head import Head
from unembed.report import jsonable, render_html, summary_lines, write_index, write_report
from unembed.sources.base import HeadModel


class _Model(HeadModel):
    """A fixed random tanh feature map and a softmax head over 6 labels; ``gain`` scales the
    hidden states (a large gain saturates the softmax)."""

    kind = "test"

    def __init__(self, gain: float = 3.0) -> None:
        rng = np.random.default_rng(3)
        self.a = rng.normal(size=(5, 4))
        self.gain = gain
        self.head = Head(W=rng.normal(size=(6, 4)) * 2, labels=tuple("abcdef"))

    def hidden_states(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(np.asarray(x, dtype=np.float64) @ self.a) * self.gain

    def model_logits(self, x: np.ndarray) -> np.ndarray:
        return self.head.logits(self.hidden_states(x))


@pytest.fixture(scope="module")
def result():
    x = np.random.default_rng(4).normal(size=(120, 5))
    return audit(_Model(), ArrayInputs(x), progress=False, likely=0.05)


@pytest.fixture(scope="module")
def written(result, tmp_path_factory):
    root = tmp_path_factory.mktemp("rep")
    out = write_index(root / "demo", "t <&>", [
        {"name": "one", "heading": "First", "text": "t", "facts": [("acc", "0.99")]}],
        {"one": result}, {"seconds": {"total": 1.5}})
    return root, out


def test_report_files(result, written) -> None:
    _, root = written
    out = root / "one"
    page = (out / "report.html").read_text()
    assert "<title>t &lt;&amp;&gt;: one</title>" in page
    assert "src='http" not in page and "src=\"http" not in page  # self-contained
    pngs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(pngs) >= 4  # scatter grid, heat maps, two before/after figures
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    data = json.loads((out / "audit.json").read_text(),
                      parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert data["labels"] == list("abcdef")
    np.testing.assert_allclose(np.asarray(data["behaviour"]["mean_min"]),
                               result.behaviour.matrices["mean_min"], rtol=0, atol=0)
    assert [c["number"] for c in data["claims"]] == [1, 2, 3]
    # the page quotes this run's numbers
    c1 = result.claims[0].details.pairs[0]
    assert f"{c1.cosine_before:.6f}" in page
    # every input recorded
    assert data["inputs"]["unembed_version"] and data["inputs"]["options"]["likely"] == 0.05


def test_index_links_reports(written) -> None:
    _, out = written
    page = (out / "index.html").read_text()
    assert "href='one/report.html'" in page and "0.99" in page
    # the page says what it shows: the claims, how to read a report, one row of verdicts per
    # model; no preformatted dumps
    assert "Raw cosine can be set to -1 or +1 without changing the model." in page
    assert "How to read a report." in page and "<h2>Verdicts</h2>" in page
    assert "<pre>" not in page
    summ = json.loads((out / "summary.json").read_text())
    assert summ["seconds"]["total"] == 1.5 and "one" in summ["audits"]


def test_existing_output_needs_force(result, tmp_path) -> None:
    out = tmp_path / "rep"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(UnembedError, match="already exists; pass --force"):
        write_report(result, out)
    assert (out / "keep.txt").exists()
    write_report(result, out, force=True)
    assert not (out / "keep.txt").exists() and (out / "report.html").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]  # no temp dirs left behind


def test_summary_and_jsonable(result) -> None:
    lines = summary_lines(result, name="m")
    assert lines[0].startswith("m: 120 predictions, 6 labels")
    assert any(line.startswith("  claim 1 shown") for line in lines)
    assert jsonable({"a": np.float64("nan"), "b": [np.int64(2), np.bool_(True)]}) == {
        "a": None, "b": [2, True]}


def test_constant_measure_gets_no_statistic(tmp_path) -> None:
    """top_k = V: every pair is always in the top k, so that measure is constant."""
    x = np.random.default_rng(4).normal(size=(60, 5))
    res = audit(_Model(), ArrayInputs(x), progress=False, likely=0.05, top_k=6)
    assert "co_topk" in res.undefined_measures
    rs = [r for r in res.correlations if r.measure == "co_topk"]
    assert rs and all(r.rho is None and "constant (+1" in (r.reason or "") for r in rs)
    assert not [c for c in res.contradictions if c.measure == "co_topk"]
    write_report(res, tmp_path / "r")
    d = json.loads((tmp_path / "r" / "audit.json").read_text())
    assert d["measures"]["co_topk"]["defined"] is False
    assert all(r["rho"] is None and r["reason"] for r in d["rank_correlations"]
               if r["measure"] == "co_topk")
    page = (tmp_path / "r" / "report.html").read_text()
    assert "undefined" in page and "the measure co_topk is constant" in page
    assert any("co_topk: undefined: the measure co_topk is constant" in line
               for line in summary_lines(res))


def test_saturated_softmax_says_so() -> None:
    """Hidden states 10^4 times larger: one-hot probabilities on the data. Claim 1 rests on
    random states where the softmax is not saturated; claims 2 and 3 cannot be tested."""
    x = np.random.default_rng(4).normal(size=(80, 5))
    model = _Model(gain=1e4)
    p = model.head.probs(model.hidden_states(x))
    assert np.all(p.max(axis=1) > 1 - 1e-6)
    res = audit(model, ArrayInputs(x), progress=False)
    c1 = res.claims[0]
    assert c1.details.saturated and c1.outcome == "shown" and "saturated" in c1.why
    for case in c1.details.pairs:
        rs = case.random_states
        assert rs is not None and 0.2 < rs.median_max_p < 0.8 and rs.saturated_share < 0.5
    for cl in res.claims[1:]:
        assert cl.outcome == "not testable"
        assert "no two labels of the label set reach p >= 0.1 together" in cl.why
    page = render_html(res)
    assert page.count("not testable here") == 2 and "<span class='no'>" not in page


def test_tables_say_how_many_rows_they_show(result) -> None:
    page = render_html(result)
    total = sum(1 for c in result.contradictions if c.measure == "mean_min")
    assert f"of {total} such pairs shown" in page
    assert "cosine in the highest 25% of pairs, measure in the lowest 25%" in page


def test_every_plot_is_a_public_function(result) -> None:
    import matplotlib
    import matplotlib.figure

    import unembed
    from unembed.behaviour import MEASURES

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    figs = [unembed.plot_scatter_grid(result), unembed.plot_heatmap(result, "logit"),
            unembed.plot_heatmap(result, "mean_min"),
            unembed.plot_before_after(result.claims[0].details.pairs[0])]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figs)
    # the scatter grid has a panel for every view (the logit view included) and measure
    assert len(figs[0].axes) == len(MEASURES) * len(result.similarities)
    assert "logit" in result.similarities
    for f in figs:
        plt.close(f)
    with pytest.raises(UnembedError, match="'name' argument of plot_heatmap"):
        unembed.plot_heatmap(result, "nope")
