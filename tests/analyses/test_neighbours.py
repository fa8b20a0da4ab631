"""Neighbours over the whole vocabulary: exact top-k (checked against a full similarity matrix
sorted independently), ties by label index, blocks of any size, the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from unembed import Head
from unembed.cli import main
from unembed.neighbours import nearest, neighbours


def _brute(U: np.ndarray, q: int, k: int) -> list[tuple[int, float]]:
    """Full cosine row of q, sorted by (-cosine, index) with Python's sort."""
    n = np.linalg.norm(U, axis=1)
    c = (U @ U[q]) / (n * n[q])
    pairs = sorted((-float(c[j]), j) for j in range(len(U)) if j != q)
    return [(j, -v) for v, j in pairs[:k]]


@pytest.mark.parametrize("view", ["raw", "centered", "normalized", "causal"])
@pytest.mark.parametrize("block", [3, 7, None])
def test_top_k_is_exact_against_the_full_matrix(view, block):
    rng = np.random.default_rng(5)
    head = Head(rng.standard_normal((40, 6)) + 0.5)
    from unembed.views import view_rows

    R = view_rows(head, view)  # the view's rows, formed whole (an independent path)
    q = np.arange(0, 40, 3)
    bi, bv = nearest(head, q, k=5, view=view, block=block)
    for a, i in enumerate(q):
        want = _brute(R, int(i), 5)
        assert bi[a].tolist() == [j for j, _ in want]
        np.testing.assert_allclose(bv[a], [c for _, c in want], atol=1e-12)


@pytest.mark.parametrize("block", [2, 3, None])
def test_ties_are_broken_by_label_index(block):
    # cosines with label 0 ([1, 0]): rows 3, 1, 2 all 0 exactly, row 4 is 1/sqrt(2)
    W = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, -1.0], [0.0, 3.0], [1.0, 1.0], [-1.0, 0.0]])
    head = Head(W)
    bi, bv = nearest(head, np.array([0]), k=3, view="raw", block=block)
    assert bi[0].tolist() == [4, 1, 2] and bv[0][1] == 0.0 and bv[0][2] == 0.0


def test_api_and_command_line(tmp_path, capsys):
    rng = np.random.default_rng(1)
    W = rng.standard_normal((30, 4))
    np.save(tmp_path / "W.npy", W)
    head = Head(W)
    api = neighbours(head, ["#3", "7"], k=4, view="centered")
    assert list(api) == ["3", "7"] and len(api["3"]) == 4
    assert main(["neighbours", str(tmp_path / "W.npy"), "#3", "7", "-k", "4", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["neighbours"]
    assert got["3"] == [n.to_dict() for n in api["3"]]
    out = tmp_path / "all.jsonl"
    assert main(["neighbours", str(tmp_path / "W.npy"), "--all", "--out", str(out), "-k", "2",
                 "--view", "raw"]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 30 and all(len(x["neighbours"]) == 2 for x in lines)
    assert main(["neighbours", str(tmp_path / "W.npy"), "--all", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["neighbours", str(tmp_path / "W.npy"), "nope"]) == 2


@pytest.mark.parametrize("block", [5, None])
def test_float32_products_cannot_reorder_what_float64_separates(block):
    """Rows within 1e-6 of one direction: their cosines with it differ by about 1e-12, far
    below float32's resolution (the bound delta is about 1e-6 here), so the order comes from
    the float64 re-score of every candidate the bound keeps."""
    rng = np.random.default_rng(7)
    base = rng.standard_normal(16)
    W = np.vstack([base, base + 1e-6 * rng.standard_normal((30, 16)),
                   rng.standard_normal((20, 16))])
    head = Head(W)
    bi, bv = nearest(head, np.array([0, 3]), k=12, view="raw", block=block)
    for a, q in enumerate([0, 3]):
        want = _brute(W, q, 12)
        assert bi[a].tolist() == [j for j, _ in want]
        np.testing.assert_allclose(bv[a], [c for _, c in want], atol=1e-15)


@pytest.mark.parametrize("view", ["raw", "centered", "normalized", "causal"])
def test_every_label_at_once_matches_each_label_alone(view):
    """The all-labels path (half the product, one re-score at the end) against the per-query
    path and the full matrix sorted independently."""
    rng = np.random.default_rng(11)
    head = Head(rng.standard_normal((50, 7)) + 0.4)
    from unembed.views import view_rows

    R = view_rows(head, view)
    got = neighbours(head, None, k=6, view=view)
    alone = neighbours(head, [f"#{i}" for i in range(50)], k=6, view=view)
    assert got == alone
    for i in range(50):
        want = _brute(R, i, 6)
        assert [n.index for n in got[str(i)]] == [j for j, _ in want]
        np.testing.assert_allclose([n.cosine for n in got[str(i)]], [c for _, c in want],
                                   atol=1e-12)


def test_all_file_holds_what_json_writes_for_each_label(tmp_path):
    rng = np.random.default_rng(2)
    W = rng.standard_normal((12, 3))
    labels = ["a", 'q"uote', "é", "back\\slash", *[f"t{i}" for i in range(8)]]
    from unembed.cli.neighbours import _write_lines
    from unembed.neighbours import neighbour_arrays

    head = Head(W, labels=labels)
    _write_lines(tmp_path / "x.jsonl", head.labels, neighbour_arrays(head, None, k=3,
                                                                     view="raw"),
                 {"view": "raw"})
    want = "".join(json.dumps({"label": lab, "view": "raw",
                               "neighbours": [n.to_dict() for n in ns]},
                              ensure_ascii=False) + "\n"
                   for lab, ns in neighbours(head, None, k=3, view="raw").items())
    assert (tmp_path / "x.jsonl").read_text(encoding="utf-8") == want


@pytest.mark.parametrize("view", ["raw", "centered"])
def test_a_few_queries_keep_every_near_tie_whatever_the_row_norms(view):
    """Rows of norms from 1e-3 to 1e3 whose cosines with the queries differ by about 1e-13:
    the few-query pass selects on q . r / |r| and re-scores q . (r / |r|), and its slack keeps
    every label the float64 re-score ranks in the top k (the reference sorts that re-score
    over all labels, formed whole), in the same order as the all-labels path."""
    rng = np.random.default_rng(21)
    d = 48
    base = rng.standard_normal(d)
    near = base + 1e-13 * rng.standard_normal((60, d))
    far = rng.standard_normal((40, d))
    W = np.vstack([near, far]) * np.logspace(-3, 3, 100)[rng.permutation(100), None]
    head = Head(W)
    from unembed.views import view_rows

    R = view_rows(head, view)
    U = R / np.sqrt(np.einsum("ij,ij->i", R, R))[:, None]
    q = np.array([0, 7, 64])
    bi, bv = nearest(head, q, k=25, view=view, block=None)
    every = nearest(head, np.arange(100), k=25, view=view)  # many queries: float32 candidates
    for a, i in enumerate(q):
        v = np.einsum("ij,j->i", U, U[i])
        v[i] = -np.inf
        order = sorted(range(100), key=lambda j: (-v[j], j))[:25]
        assert bi[a].tolist() == order
        np.testing.assert_array_equal(bv[a], np.clip(v[order], -1, 1))
        assert bi[a].tolist() == every[0][i].tolist()
    alone = neighbours(head, None, k=25, view=view)
    for a, i in enumerate(q):
        assert [n.index for n in alone[str(i)]] == bi[a].tolist()
        assert [n.cosine for n in alone[str(i)]] == bv[a].tolist()


@pytest.mark.parametrize("offset", [0.0, 1e2, 1e9])
def test_a_few_centered_queries_agree_with_the_centered_rows_whatever_the_mean(offset):
    """Rows sharing a mean up to 1e9 times their spread, with near-ties of 1e-13 (1e-6 at
    1e9): the few-query pass ranks them as the centered rows formed whole and as the
    all-labels path do."""
    rng = np.random.default_rng(33)
    d = 40
    base = rng.standard_normal(d)
    near = base + max(1e-13, 1e-15 * offset) * rng.standard_normal((50, d))  # distinct rows
    W = np.vstack([near, rng.standard_normal((50, d))]) + offset * rng.standard_normal(d)
    head = Head(W)
    from unembed.views import view_rows

    R = view_rows(head, "centered")
    U = R / np.sqrt(np.einsum("ij,ij->i", R, R))[:, None]
    q = np.array([1, 60, 99])
    bi, bv = nearest(head, q, k=20, view="centered")
    alone = neighbours(head, None, k=20, view="centered")
    for a, i in enumerate(q):
        v = np.einsum("ij,ij->i", U, np.broadcast_to(U[i], U.shape))
        v[i] = -np.inf
        order = sorted(range(100), key=lambda j: (-v[j], j))[:20]
        assert bi[a].tolist() == order
        np.testing.assert_array_equal(bv[a], np.clip(v[order], -1, 1))
        assert [n.index for n in alone[str(i)]] == order
        assert [n.cosine for n in alone[str(i)]] == bv[a].tolist()
