"""``--data`` for the logit and coprob views on the command line (cosine, neighbours): hidden
states from a file for a weight-file head, and text streamed through a tiny local GPT-2; every
answer checked against the model's own logits on the same inputs (np.corrcoef of the centered
logits; probabilities formed whole), every result naming its data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from conftest import run_cli
from unembed.data import TextWindows
from unembed.sources import load

TEXT = "the cat sat on the mat and the dog sat on the cat. a dog ran to the park.\n" * 8


def _files(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    W = rng.standard_normal((12, 5))
    H = rng.standard_normal((300, 5)) @ rng.standard_normal((5, 5))
    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "H.npy", H)
    return tmp_path / "W.npy", tmp_path / "H.npy", W, H


def test_cosine_and_neighbours_logit_view_from_hidden_states(tmp_path: Path) -> None:
    w, h, W, H = _files(tmp_path)
    z = H @ W.T
    want = np.corrcoef((z - z.mean(axis=1, keepdims=True)).T)
    r = run_cli("cosine", str(w), "#2", "#7", "--data", str(h), "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert abs(got["cosine"]["logit"] - want[2, 7]) < 1e-10
    assert got["data"] == {"source": str(h), "n_hidden_states": 300}
    assert set(got["invariance"]["logit"]["invariant_under"]) >= {"translation", "bias_shift"}
    r = run_cli("neighbours", str(w), "#4", "-k", "3", "--view", "logit", "--data", str(h),
                "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["data"]["source"] == str(h) and got["data"]["n_hidden_states"] == 300
    order = sorted((j for j in range(12) if j != 4), key=lambda j: (-want[4, j], j))[:3]
    assert [n["label"] for n in got["neighbours"]["4"]] == [str(j) for j in order]
    np.testing.assert_allclose([n["cosine"] for n in got["neighbours"]["4"]], want[4, order],
                               atol=1e-10)
    # coprob, every label, to a file: against the probabilities formed whole
    P = np.exp(z - z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    G = P.T @ P
    C = G / np.sqrt(np.outer(np.diag(G), np.diag(G)))
    out = tmp_path / "all.jsonl"
    r = run_cli("neighbours", str(w), "--all", "--out", str(out), "-k", "2", "--view",
                "coprob", "--data", str(h), "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 12
    for line in lines:
        i = int(line["label"])
        order = sorted((j for j in range(12) if j != i), key=lambda j: (-C[i, j], j))[:2]
        assert [int(n["label"]) for n in line["neighbours"]] == order
        assert line["data"]["source"] == str(h)


def test_data_views_without_or_with_wrong_data_are_one_line_errors(tmp_path: Path) -> None:
    w, h, _, _ = _files(tmp_path)
    for args in (["cosine", str(w), "#1", "#2", "--view", "logit"],
                 ["neighbours", str(w), "#1", "--view", "logit"],
                 ["neighbours", str(w), "#1", "--view", "coprob"]):
        r = run_cli(*args)
        assert r.returncode == 2 and "needs data" in r.stderr
        assert r.stderr.strip().count("\n") == 0
    np.save(tmp_path / "bad.npy", np.zeros((10, 3)))
    r = run_cli("neighbours", str(w), "#1", "--view", "logit", "--data",
                str(tmp_path / "bad.npy"))
    assert r.returncode == 2 and "bad.npy" in r.stderr and "(n, 5)" in r.stderr
    r = run_cli("neighbours", str(w), "#1", "--view", "raw", "--data", str(h))
    assert r.returncode == 2 and "--data" in r.stderr


def test_logit_view_streamed_through_a_language_model(tiny_gpt2_dir: Path,
                                                      tmp_path: Path) -> None:
    data = tmp_path / "text.txt"
    data.write_text(TEXT)
    r = run_cli("neighbours", "--model", str(tiny_gpt2_dir), "#5", "-k", "4", "--view",
                "logit", "--data", str(data), "--window", "8", "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    # the reference: the model's own logits on the same windows, centered, correlated
    model = load(tiny_gpt2_dir)
    windows = TextWindows([data], model.tokenize, window=8)
    z = np.concatenate([np.asarray(model.model_logits(b), dtype=np.float64)
                        for b in windows.batches(16)])
    assert got["data"] == {"source": str(data), "n_hidden_states": z.shape[0]}
    want = np.corrcoef((z - z.mean(axis=1, keepdims=True)).T)[5]
    want[5] = -np.inf
    names = [n["label"] for n in got["neighbours"][model.head.labels[5]]]
    idx = [model.head.index(n) for n in names]
    np.testing.assert_allclose([n["cosine"] for n in got["neighbours"][model.head.labels[5]]],
                               want[idx], atol=1e-5)  # the model's logits are float32
    assert sorted(want, reverse=True)[3] <= min(want[idx]) + 1e-5


def test_inspect_shows_the_logit_view_with_data(tmp_path: Path) -> None:
    w, h, W, H = _files(tmp_path)
    z = H @ W.T
    want = np.corrcoef((z - z.mean(axis=1, keepdims=True)).T)
    r = run_cli("inspect", str(w), "--data", str(h), "--json", "--top", "1")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["data"] == {"source": str(h), "n_hidden_states": 300}
    top = got["pairs"]["logit"]["most"][0]
    iu = np.triu_indices(12, 1)
    assert top["cosine"] == np.float64(want[iu].max()) or abs(top["cosine"]
                                                             - want[iu].max()) < 1e-10
    assert "logit" in got["invariance"]
    r = run_cli("inspect", str(w), "--json")
    assert "logit" not in json.loads(r.stdout)["pairs"]


def test_inspect_pairs_file_holds_the_logit_view_naming_its_data(tmp_path: Path) -> None:
    """`inspect --pairs FILE --data H`: the logit rows of the long table are the correlations
    across H of the centered logits (np.corrcoef), each naming H; without --data there is no
    logit row and no data column."""
    import csv

    w, h, W, H = _files(tmp_path)
    z = H @ W.T
    want = np.corrcoef((z - z.mean(axis=1, keepdims=True)).T)
    out = tmp_path / "pairs.csv"
    r = run_cli("inspect", str(w), "--data", str(h), "--pairs", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["pairs_file"] == str(out)
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    logit = [row for row in rows if row["view"] == "logit"]
    assert len(logit) == 12 * 11 // 2
    assert {row["data"] for row in logit} == {str(h)}
    assert {row["data"] for row in rows if row["view"] != "logit"} == {""}
    assert {row["view"] for row in rows} == {"raw", "centered", "normalized", "causal",
                                             "differences", "logit"}
    labels = [str(i) for i in range(12)]  # a weight file without labels: its row numbers
    seen = set()
    for row in logit:
        a, b = labels.index(row["label_a"]), labels.index(row["label_b"])
        seen.add((min(a, b), max(a, b)))
        assert abs(float(row["cosine"]) - want[a, b]) < 1e-10, row
    assert len(seen) == 66
    r = run_cli("inspect", str(w), "--pairs", str(tmp_path / "plain.csv"))
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "plain.csv", newline="") as fh:
        plain = list(csv.DictReader(fh))
    assert "data" not in plain[0] and all(row["view"] != "logit" for row in plain)
