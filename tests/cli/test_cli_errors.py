"""The command line as a new user meets it: options in any order, errors in
the command line's words, one line and a documented exit status, never a traceback; outputs
never half-written; SIGTERM stops the LP workers. In-process through ``main(argv)``, except
the signal test, which needs a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from unembed.cli import EXIT_CODES, main


def _head(tmp_path: Path, V: int = 12, d: int = 4) -> Path:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "W.npy", rng.standard_normal((V, d)))
    (tmp_path / "labels.txt").write_text("\n".join(f"t{i}" for i in range(V)) + "\n")
    return tmp_path / "W.npy"


def _run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    return code, out, err


def test_options_in_any_order_and_head_or_model(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    w = _head(tmp_path)
    W = np.load(w)
    want = W[3] @ W[5] / np.linalg.norm(W[3]) / np.linalg.norm(W[5])
    for argv in (["cosine", w, "--labels", tmp_path / "labels.txt", "t3", "t5", "--json"],
                 ["cosine", "--json", "t3", "--labels", tmp_path / "labels.txt", "t5", "--model",
                  w],
                 ["cosine", "--labels", tmp_path / "labels.txt", "--model", w, "t3", "--json",
                  "t5"]):
        code, out, err = _run(capsys, *argv)
        assert code == 0, err
        assert json.loads(out)["cosine"]["raw"] == pytest.approx(want, abs=1e-12)
    code, _, err = _run(capsys, "cosine", w, "t3", "t5", "--model", tmp_path / "other.npy")
    assert code == 2 and "unrecognized arguments: t5" in err


def test_errors_are_one_line_with_exit_codes_and_json(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    w = _head(tmp_path)
    cases = [
        (["cosine", w, "a"], "the following arguments are required: B"),
        (["cosine", w, "#1", "#99"], "Label index 99 (argument B) is out of range"),
        (["inspect", tmp_path / "nope.npy"], "nope.npy: no such file"),
        (["inspect", w, "--top", "x"], "--top: must be a positive integer"),
        (["feasible", w, "--enumerate", "#1", "#2", "--kind", "nope"], "--kind"),
        (["bogus"], "invalid choice"),
    ]
    for argv, what in cases:
        for as_json in (False, True):
            code, out, err = _run(capsys, *argv, *(["--json"] if as_json else []))
            assert code == 2, (argv, err)
            assert err.count("\n") == 1 and what in err, err
            if as_json and argv[0] != "bogus":
                rec = json.loads(out)
                assert rec["exit_code"] == 2 and what in rec["error"]
    assert set(EXIT_CODES) == {0, 1, 2, 3, 130, 141}
    code, out, _ = _run(capsys, "--help")
    assert code == 0 and "exit status:" in out and "130" in out and "interrupted" in out


def test_errors_speak_the_command_line(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    w = _head(tmp_path)
    (tmp_path / "out.npy").write_bytes(b"precious")
    code, _, err = _run(capsys, "counterexample", w, "--pair", "#1", "#2", "--target", "0.5",
                        "--out", tmp_path / "out.npy")
    assert code == 2 and "pass --force to replace it" in err and "force=True" not in err
    assert (tmp_path / "out.npy").read_bytes() == b"precious"
    code, _, err = _run(capsys, "counterexample", w, "--pair", "#1", "#2", "--target", "2",
                        "--out", tmp_path / "new.npy")
    assert code == 2 and "--target" in err and "translation_for_cosine" not in err
    code, _, err = _run(capsys, "feasible", w, "--ranking", "#1", "#1")
    assert code == 2 and "--ranking names '1' more than once" in err
    code, _, err = _run(capsys, "inspect", w, "--top", "-3")
    assert code == 2 and "--top: must be at least 1" in err
    dup = tmp_path / "dup.txt"
    dup.write_text("\n".join(["sr", "hr"] + [f"t{i}" for i in range(2, 11)] + ["sr"]) + "\n")
    code, _, err = _run(capsys, "cosine", w, "--labels", dup, "sr", "hr")
    assert code == 2 and "--unique-labels" in err and "unique_labels=True" not in err
    code, out, err = _run(capsys, "cosine", w, "--labels", dup, "--unique-labels", "sr#2",
                          "hr", "--json")
    assert code == 0, err
    W = np.load(w)
    assert json.loads(out)["cosine"]["raw"] == pytest.approx(
        W[11] @ W[1] / np.linalg.norm(W[11]) / np.linalg.norm(W[1]), abs=1e-12)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_out_fails_before_any_work(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    w = _head(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, _, err = _run(capsys, "counterexample", w, "--pair", "#1", "#2", "--target", "0",
                            "--out", ro / "x.npy")
        assert code == 2 and "cannot write there" in err
    finally:
        ro.chmod(0o700)


def test_unwritable_out_as_root_is_still_one_line(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Whoever runs the suite: an --out under a regular file cannot be written."""
    w = _head(tmp_path)
    (tmp_path / "file").write_text("x")
    code, _, err = _run(capsys, "counterexample", w, "--pair", "#1", "#2", "--target", "0",
                        "--out", tmp_path / "file" / "x.npy")
    assert code == 2 and "no such directory for the output" in err
    code, _, err = _run(capsys, "audit", w, "--data", w, "--out", tmp_path / "file" / "r")
    assert code == 2 and "no such directory for the output" in err


def test_stale_temporaries_of_dead_runs_are_cleaned(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """What a killed export left beside --out is removed by the next run to that --out."""
    w = _head(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".new.npy.unembed-tmp-{dead}"
    stale.write_bytes(b"half")
    code, _, err = _run(capsys, "counterexample", w, "--pair", "#1", "#2", "--target", "0.3",
                        "--out", tmp_path / "new.npy")
    assert code == 0, err
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["W.npy", "labels.txt", "new.npy"]


def _children(pid: int) -> set[int]:
    kids: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        f = task / "children"
        if f.exists():
            kids |= {int(x) for x in f.read_text().split()}
    return kids


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
@pytest.mark.parametrize("to_group", [False, True], ids=["sigterm-to-cli", "sigint-to-group"])
def test_sigterm_stops_the_lp_workers(tmp_path: Path, to_group: bool) -> None:
    """A real process, a real signal: after SIGTERM to `unembed argmaxable` (or SIGINT to its
    whole process group, as Ctrl-C in a terminal sends it), its worker processes are gone, it
    exits with 130 and one line, and no process (the CLI or a worker) prints a traceback. The
    signal goes as soon as the workers exist: a worker just forked, still running the
    parent's handler, must end as quietly as one deep in an LP."""
    rng = np.random.default_rng(0)
    V, d = 4000, 8
    W = rng.standard_normal((V, d)) * rng.uniform(0.2, 1.0, size=(V, 1))
    np.save(tmp_path / "W.npy", W)
    p = subprocess.Popen([sys.executable, "-m", "unembed", "argmaxable", str(tmp_path / "W.npy"),
                          "--workers", "2", "--no-progress"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        kids: set[int] = set()
        while p.poll() is None:  # an event (the workers exist), not a time
            kids = _children(p.pid)
            if len(kids) >= 2:
                break
            time.sleep(0.05)
        assert p.poll() is None and len(kids) >= 2, "the LP workers never started"
        if to_group:
            os.killpg(p.pid, signal.SIGINT)
        else:
            p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=300)
        assert p.returncode == 130, err
        assert "Traceback" not in err and "Error" not in err, err
        assert err.strip().splitlines()[-1] == "unembed: interrupted", err
        assert err.count("unembed: interrupted") == 1, err
        for k in kids:
            assert not Path(f"/proc/{k}").exists() or "Z" in _state(k), f"worker {k} survived"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"
