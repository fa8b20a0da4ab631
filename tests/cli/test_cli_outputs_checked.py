"""Every output checked before any work, and nothing the user had replaced without --force:
the labels file written beside a counterexample, audit's --pairs file, and --out naming the
working directory (refused with nothing deleted, never an internal error)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from unembed.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    return code, err


def _head(d: Path, V: int = 6, dim: int = 3) -> Path:
    np.save(d / "W.npy", np.random.default_rng(0).standard_normal((V, dim)))
    (d / "labels.txt").write_text("\n".join(f"t{i}" for i in range(V)) + "\n")
    return d / "W.npy"


def test_counterexample_keeps_an_existing_labels_file_without_force(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = _head(tmp_path)
    new, side = tmp_path / "new.npy", tmp_path / "new.labels.json"
    side.write_text(json.dumps(["mine"]))
    argv = ["counterexample", w, "--labels", tmp_path / "labels.txt", "--pair", "t0", "t1",
            "--target", "0.5", "--out", new]
    code, err = _run(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and "new.labels.json: already exists" in err
    assert json.loads(side.read_text()) == ["mine"] and not new.exists()
    code, err = _run(capsys, *argv, "--force")
    assert code == 0, err
    assert json.loads(side.read_text()) == [f"t{i}" for i in range(6)]
    # a head with row numbers for labels: a stale labels file would name the new rows
    side.write_text(json.dumps(["stale"] * 6))
    new.unlink()
    code, err = _run(capsys, "counterexample", w, "--pair", "#0", "#1", "--target", "0.5",
                     "--out", new)
    assert code == 2 and "new.labels.json: already exists" in err and not new.exists()
    code, err = _run(capsys, "counterexample", w, "--pair", "#0", "#1", "--target", "0.5",
                     "--out", new, "--force")
    assert code == 0 and not side.exists()


def _audit_args(tmp_path: Path) -> list[object]:
    w = _head(tmp_path)
    np.save(tmp_path / "H.npy", np.random.default_rng(1).standard_normal((30, 3)))
    return ["audit", "--model", w, "--data", tmp_path / "H.npy", "--no-co-top"]


def test_audit_checks_its_pairs_file_before_any_work(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    base = _audit_args(tmp_path)
    rep = tmp_path / "rep"
    code, err = _run(capsys, *base, "--out", rep, "--pairs", tmp_path / "p.txt")
    assert code == 2 and err.count("\n") == 1 and "p.txt" in err and ".csv or .parquet" in err
    assert not rep.exists()
    (tmp_path / "afile").write_text("x")  # a place nothing can be written in
    code, err = _run(capsys, *base, "--out", rep, "--pairs", tmp_path / "afile" / "p.csv")
    assert code == 2 and "no such directory for the output" in err and not rep.exists()
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):  # root writes anywhere: the check cannot be shown here
            pytest.skip("running as a user who can write in a read-only directory")
        code, err = _run(capsys, *base, "--out", rep, "--pairs", ro / "p.csv")
        assert code == 2 and "cannot write the output p.csv" in err and not rep.exists()
    finally:
        ro.chmod(0o755)


def test_audit_pairs_inside_the_report_and_existing_pairs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = _audit_args(tmp_path)
    rep = tmp_path / "rep"
    code, err = _run(capsys, *base, "--out", rep, "--pairs", rep / "pairs.csv")
    assert code == 0, err
    assert (rep / "pairs.csv").is_file() and (rep / "audit.json").is_file()
    (tmp_path / "p.csv").write_text("mine")
    code, err = _run(capsys, *base, "--out", tmp_path / "rep2", "--pairs", tmp_path / "p.csv")
    assert code == 2 and "p.csv: already exists" in err and not (tmp_path / "rep2").exists()
    assert (tmp_path / "p.csv").read_text() == "mine"


@pytest.mark.parametrize("out", [".", "", "..", "/"])
def test_out_naming_the_working_directory_deletes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        out: str) -> None:
    w = _head(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("mine")
    monkeypatch.chdir(work)
    before = sorted(p.name for p in work.iterdir())
    for argv in (["counterexample", w, "--pair", "#0", "#1", "--target", "0.5"],
                 [*_audit_args(tmp_path)], ["demo", "--quick"]):
        code, err = _run(capsys, *argv, "--out", out, "--force")
        assert code == 2 and err.count("\n") == 1, err
        assert "Nothing was deleted" in err
    assert sorted(p.name for p in work.iterdir()) == before
    assert (work / "keep.txt").read_text() == "mine"
