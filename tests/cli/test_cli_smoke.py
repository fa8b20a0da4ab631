"""Each command once as a real process (``python -m unembed``), as a user runs it: the
entry point, argument parsing and exit status outside pytest. Everything else about the
command line is tested in-process through ``main(argv)`` (test_cli_*.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def _run(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "unembed", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    W = rng.standard_normal((8, 3))
    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "H.npy", rng.standard_normal((10, 3)))
    return tmp_path


def test_each_command_runs_as_a_process(files: Path) -> None:
    W = np.load(files / "W.npy")
    cos = W[1] @ W[2] / np.linalg.norm(W[1]) / np.linalg.norm(W[2])
    r = _run("cosine", "W.npy", "#1", "#2", "--json", cwd=files)
    assert r.returncode == 0 and json.loads(r.stdout)["cosine"]["raw"] == pytest.approx(cos)
    r = _run("inspect", "W.npy", "--json", cwd=files)
    assert r.returncode == 0 and json.loads(r.stdout)["n_labels"] == 8
    r = _run("counterexample", "W.npy", "--pair", "#1", "#2", "--target", "-1", "--out",
             "N.npy", "--json", cwd=files)
    assert r.returncode == 0, r.stderr
    N = np.load(files / "N.npy")
    assert N[1] @ N[2] / np.linalg.norm(N[1]) / np.linalg.norm(N[2]) == pytest.approx(-1.0)
    r = _run("verify", "W.npy", "N.npy", cwd=files)
    assert r.returncode == 0 and "EQUIVALENT" in r.stdout
    r = _run("argmaxable", "W.npy", "--workers", "1", "--json", cwd=files)
    assert r.returncode == 0 and sum(json.loads(r.stdout)["counts"].values()) == 8
    r = _run("feasible", "W.npy", "--top-two", "#1", "#2", "--json", cwd=files)
    assert r.returncode == 0 and json.loads(r.stdout)["status"] in ("yes", "no")
    r = _run("audit", "W.npy", "--data", "H.npy", "--out", "rep", "--json", cwd=files)
    assert r.returncode == 0, r.stderr
    assert (files / "rep" / "audit.json").is_file()
    r = _run("demo", "--help", cwd=files)
    assert r.returncode == 0 and "--out" in r.stdout


def test_a_bad_input_is_one_line_and_exit_2_as_a_process(files: Path) -> None:
    (files / "bad.npy").write_bytes(b"\x93NUMPY junk")
    r = _run("inspect", "bad.npy", "--json", cwd=files)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert json.loads(r.stdout)["exit_code"] == 2
