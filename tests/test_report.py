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
from unembed.report import jsonable, summary_lines, write_index, write_report


class _Model:
    """A fixed random tanh feature map and a softmax head over 6 labels."""

    kind = "test"

    def __init__(self) -> None:
        rng = np.random.default_rng(3)
        self.a = rng.normal(size=(5, 4))
        self.head = Head(W=rng.normal(size=(6, 4)) * 2, labels=tuple("abcdef"))

    def hidden_states(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(np.asarray(x, dtype=np.float64) @ self.a) * 3

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
    c1 = result.claims[0].details["pairs"][0]
    assert f"{c1['cosine_before']:.6f}" in page


def test_index_links_reports(written) -> None:
    _, out = written
    page = (out / "index.html").read_text()
    assert "href='one/report.html'" in page and "0.99" in page
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
