"""End-to-end: ``unembed argmaxable`` and ``unembed feasible`` in-process (``main(argv)``) on
weight files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from conftest import run_cli


def _run(*args: str) -> Any:
    return run_cli(*args)


def _planted(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    rng = np.random.default_rng(0)
    V, d = 120, 5
    W = rng.standard_normal((V, d))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    planted = [7, 30, 64, 99]
    for p in planted:
        k = rng.choice([i for i in range(V) if i not in planted], 3, replace=False)
        W[p] = rng.dirichlet(np.ones(3)) @ W[k]
    labels = [f"tok{i}" for i in range(V)]
    wf, lf = tmp_path / "W.npy", tmp_path / "labels.txt"
    np.save(wf, W.astype(np.float32))
    lf.write_text("\n".join(labels) + "\n")
    return wf, lf, [labels[p] for p in planted]


def test_argmaxable_json_lists_exactly_the_planted_labels(tmp_path: Path) -> None:
    wf, lf, planted = _planted(tmp_path)
    p = _run("argmaxable", str(wf), "--labels", str(lf), "--json", "--workers", "1",
             "--narrowest", "2")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["unargmaxable"] == planted
    assert out["counts"] == {"yes": 116, "no": 4, "undecided": 0}
    assert set(out["certificates"]) == set(planted)
    text = _run("argmaxable", str(wf), "--labels", str(lf), "--workers", "1")
    assert text.returncode == 0 and "not argmaxable: 'tok7'" in text.stdout


def test_feasible_questions_and_errors(tmp_path: Path) -> None:
    wf = tmp_path / "W.npy"
    np.save(wf, np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.8], [-1.0, -1.0]]))
    p = _run("feasible", str(wf), "--top-two", "#0", "#1", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["status"] == "no" and out["certificate"]["bound"] <= out["tol"]
    p = _run("feasible", str(wf), "--top-two", "#0", "#2", "--json")
    out = json.loads(p.stdout)
    z = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.8], [-1.0, -1.0]]) @ np.array(out["witness"])
    assert out["status"] == "yes" and np.argsort(-z)[:2].tolist() in ([0, 2], [2, 0])
    p = _run("feasible", str(wf), "--enumerate", "#0", "#1", "#2", "--json")
    out = json.loads(p.stdout)
    assert out["n_feasible"] == 6 and out["total"] == 6  # 3 points in general position
    p = _run("feasible", str(wf), "--co-top", "#0", "#1", "#2")
    assert p.returncode == 0 and "yes" in p.stdout and "no" in p.stdout
    p = _run("feasible", str(wf), "--ranking", "#0", "#1", "--top")
    assert p.returncode == 0 and ": no" in p.stdout and "certificate" in p.stdout
    bad = _run("feasible", str(wf), "--top-two", "#0", "zzz")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "zzz" in bad.stderr
    bad = _run("feasible", str(wf), "--on", "#0", "--off", "#1")
    assert bad.returncode == 2 and "sigmoid" in bad.stderr
    p = _run("feasible", str(wf), "--on", "#0", "--off", "#1", "--link", "sigmoid", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["status"] == "yes"


def test_argmaxable_on_a_model_directory(tiny_gemma2_dir: Path) -> None:
    """--model reads the exact head (Gemma 2: soft-capped logits, which change no verdict)."""
    from unembed import load
    from unembed.feasibility import argmaxable_all

    head = load(tiny_gemma2_dir).head
    assert head.softcap is not None
    want = argmaxable_all(head, workers=1, narrowest_budget=1)
    p = _run("argmaxable", "--model", str(tiny_gemma2_dir), "--json", "--workers", "1",
             "--narrowest", "1")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["n_labels"] == head.n_labels and out["undecided"] == []
    assert out["unargmaxable"] == want.unargmaxable
    for i in range(0, head.n_labels, 37):
        h = want.witness(i)
        if h is not None:  # the soft-capped logits of the model's own head agree
            assert int(np.argmax(head.logits(h))) == i


def test_radius_arch_uses_the_models_recorded_box(tiny_llama_dir: Path) -> None:
    p = _run("argmaxable", "--model", str(tiny_llama_dir), "--radius", "arch", "--json",
             "--workers", "1", "--narrowest", "1")
    assert p.returncode == 0, p.stderr
    hb = json.loads(p.stdout)["hidden_bound"]
    assert hb["source"] == "architecture" and "RMSNorm" in hb["reason"]
    assert "relaxation" in hb["meaning"] and len(hb["radii"]) == 16
    q = _run("feasible", "--model", str(tiny_llama_dir), "--fold", "--argmax", "#3",
             "--radius", "architecture")
    assert q.returncode == 0, q.stderr
    assert "architecture's box" in q.stdout and "claim: " in q.stdout
    assert "|h|_inf <= 4" in q.stdout  # folded view, d = 16: |n_j| <= sqrt(16)


def test_radius_arch_on_a_weight_file_is_one_line_error(tmp_path: Path) -> None:
    wf = _planted(tmp_path)[0]
    p = _run("argmaxable", str(wf), "--radius", "arch")
    assert p.returncode == 2
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1 and "records no bound" in err and "W.npy" in err


def test_sketch_and_narrowest_budget_options(tmp_path: Path) -> None:
    """--sketch RANK gives the verdicts of --sketch 0 (every rival computed) and says so in
    the JSON; --narrowest-budget 0 runs no LP to optimality; bad values are one line, exit 2."""
    rng = np.random.default_rng(1)
    V, d = 600, 48
    W = rng.standard_normal((V, 4)) @ rng.standard_normal((4, d)) + rng.standard_normal((V, d))
    for i in range(5):  # convex combinations: not argmaxable
        W[i] = rng.dirichlet(np.ones(3)) @ W[rng.choice(np.arange(10, V), 3, replace=False)]
    wf = tmp_path / "W.npy"
    np.save(wf, W)
    got = {}
    for rank in ("0", "12"):
        p = _run("argmaxable", str(wf), "--json", "--workers", "1", "--sketch", rank,
                 "--narrowest-budget", "0")
        assert p.returncode == 0, p.stderr
        got[rank] = json.loads(p.stdout)
    assert got["0"]["sketch"] == {"rank": 0, "chosen": "off (sketch=0)", "tried": {},
                                  "exact_share": None}
    sk = got["12"]["sketch"]
    assert sk["rank"] == 12 and sk["chosen"] == "given" and 0 < sk["exact_share"] < 1
    assert sorted(got["0"]["unargmaxable"]) == sorted(got["12"]["unargmaxable"])
    assert {str(i) for i in range(5)} <= set(got["12"]["unargmaxable"])
    assert got["12"]["counts"] == got["0"]["counts"]
    assert not got["12"]["narrowest_exact"]  # no LP to optimality was allowed
    for bad in (["--sketch", "-1"], ["--narrowest-budget", "x"]):
        p = _run("argmaxable", str(wf), *bad)
        assert p.returncode == 2 and "Traceback" not in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and bad[0] in p.stderr
