"""Labelled tables (pair tables, frames, CSV and Parquet), notebook reprs, and the docstring
examples of the modules that build them."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from unembed import Head, load
from unembed.tables import pair_table, similarity_frame


def _head(seed: int = 0, v: int = 6, d: int = 4, bias: bool = True) -> Head:
    rng = np.random.default_rng(seed)
    return Head(rng.normal(size=(v, d)), b=rng.normal(size=v) if bias else None,
                labels=[f"l{i}" for i in range(v)])


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_pair_table_is_every_pair_and_view():
    head = _head()
    t = pair_table(head, views=("raw", "centered"))
    assert len(t) == 2 * 15 and t.columns == ("label_a", "label_b", "view", "cosine")
    W = head.W
    m = W.mean(0)
    for r in t.records():
        i, j = int(r["label_a"][1:]), int(r["label_b"][1:])
        assert i < j
        want = _cos(W[i], W[j]) if r["view"] == "raw" else _cos(W[i] - m, W[j] - m)
        assert abs(r["cosine"] - want) < 1e-12


def test_frames_csv_and_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    head = _head()
    f = similarity_frame(head, ["l1", "l3", "l4"], view="raw")
    assert list(f.index) == ["l1", "l3", "l4"] and list(f.columns) == ["l1", "l3", "l4"]
    assert abs(f.loc["l1", "l4"] - _cos(head.W[1], head.W[4])) < 1e-12
    t = pair_table(head)
    df = t.to_frame()
    assert len(df) == len(t) and set(df["view"]) == {"raw", "centered", "normalized",
                                                      "causal", "differences"}
    t.write(tmp_path / "p.csv")
    with open(tmp_path / "p.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(t) and float(rows[0]["cosine"]) == t.records()[0]["cosine"]
    t.write(tmp_path / "p.parquet")
    back = pd.read_parquet(tmp_path / "p.parquet")
    assert np.array_equal(back["cosine"].to_numpy(), df["cosine"].to_numpy())


def test_reprs():
    head = _head()
    html = head._repr_html_()
    assert "V = 6 labels" in html and "&#x27;l0&#x27;" in html
    m = load(head)
    assert repr(m).startswith("FileModel(kind='file', head=Head(V=6, d=4")
    assert "FileModel" in m._repr_html_()


@pytest.mark.parametrize("name", ["unembed.tables", "unembed._reprs",
                                  "unembed.sources.sidecar"])
def test_docstring_examples(name):
    import doctest
    import importlib

    res = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0
