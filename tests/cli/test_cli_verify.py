"""``unembed verify``: a positional names the same model source as --model / --model2; what
was compared (the models end to end, or the heads) on what inputs is said in the terminal and
in --json; --data is read as the other commands read it, spaCy text included."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import build_lm_dir, run_cli


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _hf_probs(path: Path, ids: np.ndarray) -> np.ndarray:
    """Independent: the model's probabilities by transformers itself, float64 softmax."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path)).eval()
    with torch.no_grad():
        z = model(torch.as_tensor(ids)).logits.double().numpy()
    return _softmax(z.reshape(-1, z.shape[-1]))


def test_positionals_and_model_options_compare_two_models_the_same_way(
        tmp_path: Path, tiny_gpt2_dir: Path) -> None:
    other = build_lm_dir(tmp_path / "other", "gpt2", seed=1)
    pos = run_cli("verify", tiny_gpt2_dir, other, "--json", cwd=tmp_path)
    opt = run_cli("verify", "--model", tiny_gpt2_dir, "--model2", other, "--json", cwd=tmp_path)
    assert pos.returncode == opt.returncode == 1, pos.stderr + opt.stderr
    a, b = json.loads(pos.stdout), json.loads(opt.stdout)
    assert a == b
    assert a["compared"] == "models" and a["n_inputs"] == 128
    assert a["what"].startswith("the models' probabilities on 128 token inputs drawn at random "
                                "(8 sequences of 16 random token ids, seed 0)")
    ids = np.random.default_rng(0).integers(0, 300, size=(8, 16))  # what the model draws
    dp = np.abs(_hf_probs(tiny_gpt2_dir, ids) - _hf_probs(other, ids)).max()
    assert a["max_abs_dp"] == pytest.approx(dp, rel=1e-4)
    text = run_cli("verify", tiny_gpt2_dir, other, cwd=tmp_path).stdout.splitlines()
    assert text[1] == f"compared: {a['what']}" and text[2].startswith("NOT EQUIVALENT")


def test_two_language_models_on_a_text_file(tmp_path: Path, tiny_gpt2_dir: Path) -> None:
    (tmp_path / "notes.txt").write_text("the cat sat on the mat and the dog ran " * 20)
    r = run_cli("verify", tiny_gpt2_dir, tiny_gpt2_dir, "--data", "notes.txt", "--window", "8",
                "--max-inputs", "3", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["compared"] == "models" and rec["n_inputs"] == 24 and rec["max_abs_dp"] == 0.0
    assert rec["what"] == "the models' probabilities on the data notes.txt (24 inputs)"


def test_two_heads_on_hidden_states_or_random_ones(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    W, H = rng.standard_normal((6, 3)), rng.standard_normal((20, 3))
    W2 = W.copy()
    W2[0] *= 1.5
    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "W2.npy", W2)
    np.save(tmp_path / "H.npy", H)
    r = run_cli("verify", "W.npy", "--model2", "W2.npy", "--data", "H.npy", "--json",
                cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    rec = json.loads(r.stdout)
    assert rec["what"] == "the heads' probabilities on the data H.npy (20 hidden states)"
    dp = np.abs(_softmax(H @ W.T) - _softmax(H @ W2.T)).max()
    assert rec["max_abs_dp"] == pytest.approx(dp, rel=1e-12) and rec["n_inputs"] == 20
    r = run_cli("verify", "W.npy", "W2.npy", cwd=tmp_path)
    line = r.stdout.splitlines()[1]
    assert line.startswith("compared: the heads' probabilities on 1024 random hidden states of "
                           "norm about ") and "256 of them ten times larger" in line
    assert "seed 0" in line


def test_two_spacy_pipelines_are_compared_on_text(tmp_path: Path) -> None:
    from spacy_tagger import TEXTS, train_tagger

    nlp = train_tagger()
    nlp.to_disk(tmp_path / "p1")
    nlp.to_disk(tmp_path / "p2")
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS) + "\n")
    r = run_cli("verify", "p1", "p2", "--data", "texts.txt", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    n_tokens = sum(len(t.split()) for t in TEXTS)
    assert rec["compared"] == "models" and rec["n_inputs"] == n_tokens
    assert rec["what"] == f"the models' probabilities on the data texts.txt ({n_tokens} inputs)"
    # a pipeline with other weights is told apart on the same texts
    from spacy.training import Example

    from spacy_tagger import TRAIN

    exs = [Example.from_dict(nlp.make_doc(t), {"tags": tags}) for t, tags in TRAIN]
    opt = nlp.resume_training()
    for _ in range(3):
        nlp.update(exs, sgd=opt)
    nlp.to_disk(tmp_path / "p3")
    r = run_cli("verify", "p1", "--model2", "p3", "--data", "texts.txt", cwd=tmp_path)
    assert r.returncode == 1 and "NOT EQUIVALENT" in r.stdout, r.stderr
    # without data: the heads, and the output says so
    r = run_cli("verify", "p1", "p2", "--json", cwd=tmp_path)
    rec = json.loads(r.stdout)
    assert r.returncode == 0 and rec["compared"] == "heads" and "pass --data" in rec["note"]


@pytest.mark.parametrize("argv, says", [
    (("W.npy",), "name the second model: HEAD2 or --model2 (the first is W.npy)."),
    (("--model2", "W.npy"), "--model2 needs --model (or HEAD): the first of the two models."),
    (("W.npy", "W.npy", "--model2", "W.npy"), "name the second model once"),
])
def test_a_missing_or_doubled_model_is_one_line(tmp_path: Path, argv: tuple[str, ...],
                                                says: str) -> None:
    np.save(tmp_path / "W.npy", np.eye(3))
    r = run_cli("verify", *argv, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and says in r.stderr, r.stderr
