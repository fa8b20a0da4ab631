"""SIGTERM during an ``--engine ray`` audit: the driver ends with its one-line interrupt (exit
130), no traceback or C++ stack reaches the terminal, and no process of the run outlives it
(the run's processes are found by a marker in their environment, which Ray's workers inherit).
Real local Ray started by the command itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")

pytestmark = pytest.mark.xdist_group("ray")

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _marked(marker: str) -> list[int]:
    """PIDs of live processes whose environment carries ``marker``."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            env = (p / "environ").read_bytes()
            state = (p / "stat").read_text().split(") ", 1)[1][0]
        except OSError:
            continue
        if marker.encode() in env and state != "Z":
            out.append(int(p.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_sigterm_stops_the_ray_workers_with_the_driver(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "W.npy", rng.standard_normal((40, 16)))
    np.save(tmp_path / "H.npy", rng.standard_normal((400_000, 16)))
    marker = f"UNEMBED_SIGTERM_TEST={uuid.uuid4().hex}"
    key, value = marker.split("=")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
           key: value}
    proc = subprocess.Popen(
        [sys.executable, "-m", "unembed", "audit", "--model", str(tmp_path / "W.npy"),
         "--data", str(tmp_path / "H.npy"), "--out", str(tmp_path / "out"), "--engine", "ray",
         "--workers", "2", "--no-progress"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if len(_marked(marker)) >= 3:  # the driver, and Ray's own processes started
                break
            time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()
        time.sleep(8)  # Ray started, the shards at work
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "*** " not in err and "Stack trace" not in err, err
    assert err.strip().splitlines()[-1] == "unembed: interrupted", err
    assert len(err.strip().splitlines()) <= 2, err
    left: list[int] = []
    for _ in range(30):  # Ray's processes see their driver gone within seconds
        left = _marked(marker)
        if not left:
            break
        time.sleep(1)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"{len(left)} process(es) of the run outlived the driver"
    assert not (tmp_path / "out").exists()
