"""``unembed counterexample --keep-cosines``, in-process through ``main(argv)``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import run_cli
from independent_lp import unit_optimum
from unembed.cli import main


def cosines(W: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(W, axis=1)
    return (W @ W.T) / np.outer(n, n)


def test_unargmaxable_head_is_written_with_the_same_cosines(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    W = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [2.0, 3.0]])
    src, out = tmp_path / "W.npy", tmp_path / "new.npy"
    np.save(src, W)
    assert main(["counterexample", str(src), "--keep-cosines", "--unargmaxable", "#3",
                 "--out", str(out), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["before"]["status"] == "yes" and rec["after_written"]["status"] == "no"
    new = np.load(out)
    assert np.abs(cosines(new) - cosines(W)).max() <= 1e-12
    assert unit_optimum(W, np.zeros(4), [3], False) > 0.1
    assert unit_optimum(new, np.zeros(4), [3], False) <= rec["after"]["tol"]


def test_impossible_and_misused_keep_cosines_exit_2_with_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    W = np.array([[1.0, 0.0], [0.0, 1.0], [3.0, -0.5]])
    src = tmp_path / "W.npy"
    np.save(src, W)
    out = tmp_path / "new.npy"
    assert main(["counterexample", str(src), "--keep-cosines", "--unargmaxable", "#2",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "outside the cone" in err and "\n" not in err and not out.exists()
    assert main(["counterexample", str(src), "--keep-cosines", "--out", str(out)]) == 2
    assert "exactly one of" in capsys.readouterr().err
    assert main(["counterexample", str(src), "--out", str(out)]) == 2
    assert "--pair A B and --target T are required" in capsys.readouterr().err


def test_not_top_two_with_a_bias_is_written_with_certificates(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    W = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, -1.0, -1.0]])
    b = np.array([0.1, -0.2, 0.5, 0.3])
    src, bias, out = tmp_path / "W.npy", tmp_path / "b.npy", tmp_path / "new.npy"
    np.save(src, W)
    np.save(bias, b)
    assert main(["counterexample", str(src), "--bias", str(bias), "--keep-cosines",
                 "--not-top-two", "#0", "#1", "--out", str(out), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["before"]["status"] == "yes" and rec["after_written"]["status"] == "no"
    assert rec["after_written"]["certificate"]["bound"] <= rec["after_written"]["tol"]
    new = np.load(out)
    assert np.abs(cosines(new) - cosines(W)).max() <= 1e-12
    assert unit_optimum(W, b, [0, 1], True) > 1e-3
    assert unit_optimum(new, b, [0, 1], True) <= rec["after_written"]["tol"] * (1 + 1e-6)


def test_keep_cosines_writes_the_labels_the_next_command_reads(tmp_path: Path) -> None:
    W = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [2.0, 3.0]])
    src, out = tmp_path / "W.npy", tmp_path / "new.npy"
    np.save(src, W)
    (tmp_path / "labels.txt").write_text("ant\nbee\ncow\ncat\n")

    def cli(*argv: str) -> Any:
        return run_cli(*argv, cwd=tmp_path)

    r = cli("counterexample", str(src), "--labels", "labels.txt", "--keep-cosines",
            "--unargmaxable", "cat", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "new.labels.json").read_text()) == ["ant", "bee", "cow", "cat"]
    # the next command names the hidden row 'cat', read from the labels beside the file
    r = cli("argmaxable", str(out), "--json")
    assert json.loads(r.stdout)["unargmaxable"] == ["cat"]
    r = cli("cosine", str(out), "cat", "ant", "--json")
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["pair"] == ["cat", "ant"]
    assert rec["cosine"]["raw"] == pytest.approx(cosines(W)[3, 0], abs=1e-12)
    # a second run does not overwrite the labels file without --force, and writes nothing
    out.unlink()
    r = cli("counterexample", str(src), "--labels", "labels.txt", "--keep-cosines",
            "--unargmaxable", "cat", "--out", str(out))
    assert r.returncode == 2 and "new.labels.json" in r.stderr
    assert r.stderr.count("\n") == 1 and not out.exists()
    r = cli("counterexample", str(src), "--labels", "labels.txt", "--keep-cosines",
            "--unargmaxable", "cat", "--out", str(out), "--force")
    assert r.returncode == 0, r.stderr
