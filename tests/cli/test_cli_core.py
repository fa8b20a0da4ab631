"""End to end, as a user runs them: inspect, cosine, counterexample, verify (in-process through
``main(argv)``; tests/cli/test_cli_smoke.py runs each command once as a real process)."""

import json

import numpy as np
import pytest

from conftest import run_cli


def run(*args, cwd):
    return run_cli(*args, cwd=cwd)


@pytest.fixture
def head_dir(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "W.npy", rng.standard_normal((40, 12)))
    np.save(tmp_path / "b.npy", rng.standard_normal(40))
    (tmp_path / "labels.txt").write_text("\n".join(f"tok{i}" for i in range(40)) + "\n")
    return tmp_path


def test_inspect(head_dir):
    r = run("inspect", "W.npy", "--bias", "b.npy", "--labels", "labels.txt", "--json",
            cwd=head_dir)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["n_labels"] == 40 and s["d"] == 12 and s["bias"] is True
    assert s["symmetries"]["translation"]["holds"] is True
    assert set(s["pairs"]) == {"raw", "centered", "normalized", "causal", "differences"}
    most = s["pairs"]["raw"]["most"][0]
    W = np.load(head_dir / "W.npy")
    i, j = (int(x[3:]) for x in most["pair"])
    assert most["cosine"] == pytest.approx(W[i] @ W[j] / np.linalg.norm(W[i]) /
                                           np.linalg.norm(W[j]), abs=1e-12)
    text = run("inspect", "W.npy", cwd=head_dir)
    assert text.returncode == 0 and "translation        yes" in text.stdout


def test_cosine(head_dir):
    r = run("cosine", "W.npy", "tok3", "tok5", "--labels", "labels.txt", "--json", cwd=head_dir)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    W = np.load(head_dir / "W.npy")
    assert out["cosine"]["raw"] == pytest.approx(
        W[3] @ W[5] / np.linalg.norm(W[3]) / np.linalg.norm(W[5]), abs=1e-12)
    bad = run("cosine", "W.npy", "tok3", "cat", "--labels", "labels.txt", cwd=head_dir)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "Unknown label 'cat' (argument B): not among" in bad.stderr


@pytest.mark.parametrize("target", ["-1", "1"])
def test_counterexample_then_verify(head_dir, target):
    """The issue's 'done when': a chosen pair's cosine becomes -1 and +1, and verify reports
    identical probabilities (max |dp| <= 1e-12 in float64)."""
    r = run("counterexample", "W.npy", "--bias", "b.npy", "--labels", "labels.txt",
            "--pair", "tok1", "tok2", "--target", target, "--out", "new.npy", "--json",
            cwd=head_dir)
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["cosine_written"] == pytest.approx(float(target), abs=1e-9)
    assert set(rec["seconds"]) == {"read", "construct", "write", "verify"}
    assert all(t >= 0 for t in rec["seconds"].values())
    assert rec["equivalence"]["equivalent"] and rec["verification"]["equivalent"]
    W2 = np.load(head_dir / "new.npy")
    assert W2[1] @ W2[2] / np.linalg.norm(W2[1]) / np.linalg.norm(W2[2]) == pytest.approx(
        float(target), abs=1e-9)
    v = run("verify", "W.npy", "new.npy", "--bias", "b.npy", "--json", cwd=head_dir)
    assert v.returncode == 0, v.stderr
    ver = json.loads(v.stdout)
    assert ver["equivalent"] and ver["max_abs_dp"] <= 1e-12
    # an existing output needs --force, and is left as it was
    before = (head_dir / "new.npy").read_bytes()
    again = run("counterexample", "W.npy", "--pair", "#1", "#2", "--target", "0.5",
                "--out", "new.npy", cwd=head_dir)
    assert again.returncode == 2 and "already exists; pass --force" in again.stderr
    assert (head_dir / "new.npy").read_bytes() == before


def test_verify_detects_a_different_head(head_dir):
    W = np.load(head_dir / "W.npy")
    W[0] += 0.5
    np.save(head_dir / "other.npy", W)
    r = run("verify", "W.npy", "other.npy", cwd=head_dir)
    assert r.returncode == 1 and "NOT EQUIVALENT" in r.stdout


def test_sigmoid_head_refuses_counterexample(head_dir):
    r = run("counterexample", "W.npy", "--link", "sigmoid", "--pair", "#0", "#1", "--target",
            "-1", "--out", "x.npy", cwd=head_dir)
    assert r.returncode == 2 and "sigmoid link" in r.stderr
    assert not (head_dir / "x.npy").exists()


def test_verify_two_models_end_to_end(tmp_path, tiny_gpt2_dir):
    """--model/--model2: each model's own forward pass on the same token sequences."""
    out = tmp_path / "neg"
    r = run("counterexample", "--model", tiny_gpt2_dir, "--pair", "#5", "#9", "--target", "-1",
            "--out", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    v = run("verify", "--model", tiny_gpt2_dir, "--model2", out, "--json", cwd=tmp_path)
    assert v.returncode == 0, v.stderr
    rec = json.loads(v.stdout)
    assert rec["equivalent"] and rec["n_inputs"] > 0 and rec["max_abs_dlogp"] < 1e-3
    from conftest import build_lm_dir

    other = build_lm_dir(tmp_path / "other", "gpt2", seed=1)
    d = run("verify", "--model", tiny_gpt2_dir, "--model2", other, cwd=tmp_path)
    assert d.returncode == 1 and "NOT EQUIVALENT" in d.stdout
    bad = run("verify", "--model2", other, cwd=tmp_path)
    assert bad.returncode == 2 and "--model2 needs --model" in bad.stderr
