"""``unembed.tables.feasibility_frame`` of feasibility results: the same conventions as the pair tables (text columns
categorical, float64 margins with NaN where undefined, pandas imported only then), and every
row checked against the result it came from and against the witness / geometry itself."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from unembed import Head
from unembed.feasibility import (
    argmaxable_all,
    can_be_top_two,
    co_top_matrix,
    enumerate_rankings,
)
from unembed.tables import enumeration_table, feasibility_frame

pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def head():
    # five labels on a circle and one inside their hull (never the argmax)
    ang = np.linspace(0, 2 * np.pi, 5, endpoint=False)
    W = np.vstack([np.c_[np.cos(ang), np.sin(ang)], [[0.1, 0.0]]])
    return Head(W, labels=["a", "b", "c", "d", "e", "inner"])


def test_vocabulary_frame(head):
    res = argmaxable_all(head)
    df = feasibility_frame(res)
    assert list(df.columns) == ["label", "status", "margin", "method"]
    assert isinstance(df["status"].dtype, pd.CategoricalDtype)
    assert df["margin"].dtype == np.float64 and len(df) == 6
    got = dict(zip(df["label"].astype(str), df["status"].astype(str), strict=True))
    # independent: a label on the circle is the argmax at its own direction; the inner one
    # is inside the hull of the others, so never
    assert got == {"a": "yes", "b": "yes", "c": "yes", "d": "yes", "e": "yes", "inner": "no"}


def test_co_top_frame_one_row_per_pair(head):
    res = co_top_matrix(head, ["a", "b", "c", "d"])
    df = feasibility_frame(res)
    assert list(df.columns) == ["label_a", "label_b", "status", "feasible", "margin"]
    assert len(df) == 6 and df["feasible"].dtype == bool
    pairs = list(zip(df["label_a"].astype(str), df["label_b"].astype(str), strict=True))
    assert pairs == list(itertools.combinations(["a", "b", "c", "d"], 2))
    # independent: on the regular pentagon two labels can be the top two together exactly
    # when they are neighbours on the circle (a-b, b-c, c-d; a-e would be too)
    want = {("a", "b"), ("b", "c"), ("c", "d")}
    assert {p for p, f in zip(pairs, df["feasible"], strict=True) if f} == want


def test_enumeration_frame_quotes_items(head):
    res = enumerate_rankings(head, ["a", "b", "c"])
    df = feasibility_frame(res)
    assert list(df.columns) == ["item", "status", "margin", "covers", "method"]
    n_yes = int((df["status"].astype(str) == "yes").sum())
    assert n_yes == res.n_feasible
    assert int(df.loc[df["status"].astype(str) == "no", "covers"].sum()) == res.n_infeasible
    for item in df.loc[df["status"].astype(str) == "yes", "item"].astype(str):
        ranking = [s.strip("'") for s in item.split(" > ")]
        r = next(f for f in res.feasible if list(f.labels) == ranking)
        z = head.W[[head.index(x) for x in ranking]] @ r.witness  # the witness realises it
        assert np.all(np.diff(z) < 0)
    weird = Head(np.eye(3), labels=["x > y", "z", "w"])
    t = enumeration_table(enumerate_rankings(weird, ["x > y", "z"]))
    assert "'x > y' > 'z'" in t.column("item") or "'z' > 'x > y'" in t.column("item")


def test_single_feasibility_frame(head):
    r = can_be_top_two(head, "a", "c")
    df = feasibility_frame(r)
    assert len(df) == 1 and str(df["status"][0]) == r.status
    assert str(df["labels"][0]) == "'a', 'c'" and df["margin"][0] == r.margin
