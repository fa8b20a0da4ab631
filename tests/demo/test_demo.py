"""The demo: three models trained locally (quick settings here), audited, one linked report."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import torch

from unembed.demo.data import WordTokenizer, digits_split, doc_topics_text
from unembed.demo.models import DemoLM, digits_model
from unembed.demo.training import torch_threads, train_digits_cnn, train_lm


def test_word_tokenizer_is_deterministic_and_round_trips() -> None:
    tok = WordTokenizer.fit("b a b c, a b", 3)
    assert tok.words == ("b", "a", "<unk>")
    assert tok.encode("A b zz") == [1, 0, 2]
    assert tok.decode([0, 1]) == "b a"


def test_data_splits_are_seeded() -> None:
    a, b = digits_split(seed=1), digits_split(seed=1)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    train, held = doc_topics_text()
    assert len(train) > 4 * len(held) > 10_000


def test_torch_models_expose_their_exact_head() -> None:
    split = digits_split()
    with torch_threads(1):
        cnn, met = train_digits_cnn(split, epochs=1)
        train, held = doc_topics_text()
        lm, tok, lm_met = train_lm(train[:20_000], held[:5_000], vocab=200, steps=5,
                                   context=8, d=16, layers=1)
    assert met["epochs"] == 1 and lm_met["vocab"] == 200
    for model, x in ((digits_model(cnn, split.labels, source="t"), split.x_test[:7]),
                     (DemoLM(lm, tok, source="t"),
                      np.asarray([tok.encode("the value of the object is")[:5]] * 2))):
        h = model.hidden_states(x)
        z = model.model_logits(x)
        assert h.dtype == np.float64 and h.shape[0] == z.shape[0]
        np.testing.assert_allclose(model.head.logits(h), z, atol=1e-5)
    # the same seed trains the same model
    with torch_threads(1):
        lm2, _, _ = train_lm(train[:20_000], held[:5_000], vocab=200, steps=5, context=8,
                             d=16, layers=1)
    for p1, p2 in zip(lm.parameters(), lm2.parameters()):
        assert torch.equal(p1, p2)


def test_demo_cli_quick(tmp_path) -> None:
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "unembed", "demo", "--out", str(out), "--quick",
                        "--json", "--threads", "1"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert set(info["claims"]) == {"cnn", "lm", "logreg"}
    page = (out / "index.html").read_text()
    for name in ("cnn", "lm", "logreg"):
        assert f"href='{name}/report.html'" in page
        audit = json.loads((out / name / "audit.json").read_text())
        claim1 = audit["claims"][0]
        assert claim1["shown"]  # cosines -1 and +1 reached, probabilities unchanged
        for case in claim1["details"]["pairs"]:
            assert case["equivalence"]["max_abs_dp"] < 1e-9
            assert abs(case["cosine_after"] - case["target"]) < 1e-9
        # V = 10 <= d = 64: the causal view is equiangular and gets no statistic, with the reason
        small = name in ("cnn", "logreg")
        assert audit["views"]["causal"]["defined"] is not small
        if small:
            assert "rank V - 1 = 9" in audit["views"]["causal"]["reason"]
            assert all(r["rho"] is None and r["reason"] for r in audit["rank_correlations"]
                       if r["view"] == "causal")
        # claims 2 and 3: negative cosines only, three outcomes
        for cl in audit["claims"][1:]:
            assert cl["outcome"] in ("shown", "not shown", "not testable") and cl["why"]
            assert all(c["cosine"] < 0 for c in cl["details"]["cases"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["lm"]["heldout_perplexity"] < summary["metrics"]["lm"][
        "unigram_perplexity"]
    again = subprocess.run([sys.executable, "-m", "unembed", "demo", "--out", str(out),
                            "--quick"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "already exists; pass --force" in again.stderr
