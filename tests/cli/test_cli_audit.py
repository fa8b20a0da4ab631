"""``unembed audit`` end to end on a tiny local GPT-2 checkpoint and a text file (in-process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from conftest import run_cli
from unembed.gauges import translate
from unembed.sources import load
from unembed.views import similarity_matrix

TEXT = "\n".join([
    "the cat sat on the mat and the dog sat on the cat",
    "a dog ran to the park and the dog sat",
    "the quick brown fox jumps over the lazy dog",
    "",
    "cats and dogs are not the same animal, the cat said to the dog",
] * 6)


def _run(*args: str) -> Any:
    return run_cli("audit", *args)


def test_audit_hf_checkpoint_on_text(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "text.txt"
    data.write_text(TEXT)
    out = tmp_path / "rep"
    r = _run("--model", str(tiny_gpt2_dir), "--data", str(data), "--out", str(out),
             "--window", "8", "--top-n", "12", "--likely", "0.02", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert Path(info["report"]).is_file()
    # the advice ranks no view that a translation of the rows moves; every p-value positive
    assert all("raw" not in vs for vs in info["views_ranked"].values())
    assert "translation" in info["views_not_ranked"]["raw"]
    assert all(c["p_value"] is None or c["p_value"] > 0 for c in info["rank_correlations"])
    d = json.loads((out / "audit.json").read_text())
    model = load(tiny_gpt2_dir)
    ids = model.tokenize(TEXT.replace("\n", ""))  # about as many tokens as the windows hold
    assert d["data"]["n_predictions"] % 8 == 0 and d["data"]["n_predictions"] <= len(ids) + 64
    assert len(d["labels"]) == 12
    # every input of the run is recorded
    inp = d["inputs"]
    assert inp["model"] == str(tiny_gpt2_dir) and inp["data"] == str(data)
    assert inp["bias"] is None and inp["labels"] is None and inp["unembed_version"]
    assert inp["options"]["window"] == 8 and inp["options"]["top_n"] == 12
    assert inp["options"]["likely"] == 0.02
    assert d["logit_view"]["data"] == str(data) and d["logit_view"]["n_states"] == \
        d["data"]["n_predictions"]
    np.testing.assert_allclose(np.asarray(d["similarity"]["raw"], dtype=float),
                               similarity_matrix(model.head, d["labels"], "raw"), atol=1e-12)
    claim1 = d["claims"][0]
    assert claim1["shown"], claim1
    for case in claim1["details"]["pairs"]:
        assert abs(case["cosine_after"] - case["target"]) < 1e-9
        assert case["equivalence"]["max_abs_dp"] < 1e-9
        new = translate(model.head, np.asarray(case["translation"]))
        h = np.random.default_rng(0).normal(size=(20, model.head.d))
        assert np.max(np.abs(new.probs(h) - model.head.probs(h))) < 1e-12
    again = _run("--model", str(tiny_gpt2_dir), "--data", str(data), "--out", str(out))
    assert again.returncode == 2 and "already exists; pass --force" in again.stderr
    page = (out / "report.html").read_text()
    assert "Claim 1" in page and "data:image/png;base64," in page


def test_audit_bad_data_is_one_line_error(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    r = _run("--model", str(tiny_gpt2_dir), "--data", str(tmp_path / "missing.txt"), "--out",
             str(tmp_path / "o"))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "missing.txt: no such data file" in r.stderr
    r = _run("--model", str(tiny_gpt2_dir), "--data", str(tmp_path / "x.txt"), "--out",
             str(tmp_path / "o"), "--window", "0")
    assert r.returncode == 2 and "--window: must be at least 1" in r.stderr
