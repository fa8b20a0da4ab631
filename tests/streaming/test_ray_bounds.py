"""--engine ray within bounds: a cluster address that accepts no connection is an error within
the stated 15 s (before any work), and ``--workers`` is bounded by the cluster's CPUs and by
the data's batches, said in a note. Real local Ray with 2 CPUs, shut down after."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.xdist_group("ray")

from unembed.cli import main  # noqa: E402
from unembed.engine import CONNECT_TIMEOUT_S, RayEngine  # noqa: E402

SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_an_unreachable_cluster_is_an_error_within_the_timeout(tmp_path):
    np.save(tmp_path / "W.npy", np.random.default_rng(0).standard_normal((6, 3)))
    np.save(tmp_path / "H.npy", np.random.default_rng(1).standard_normal((8, 3)))
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "unembed", "audit", "--model",
                        str(tmp_path / "W.npy"), "--data", str(tmp_path / "H.npy"), "--out",
                        str(tmp_path / "out"), "--engine", "ray", "--address", "127.0.0.1:1"],
                       env=env, capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - t0
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr
    assert "--address" in lines[0] and "127.0.0.1:1" in lines[0]
    assert f"{CONNECT_TIMEOUT_S:g} s" in lines[0]
    assert took < CONNECT_TIMEOUT_S + 60  # interpreter start and imports included
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def local_ray() -> Any:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_workers_are_bounded_by_the_cluster_and_the_work(local_ray):
    engine = RayEngine(workers=10_000)
    assert engine.shards(None) == 2
    assert engine.notes == ["--workers 10000 bounded to 2: the Ray cluster has 2 CPUs"]
    assert engine.shards(1) == 1
    assert "the work has 1 unit(s)" in engine.notes[-1]


def test_an_audit_with_ten_thousand_workers_finishes_and_says_so(local_ray, tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "W.npy", rng.standard_normal((6, 3)))
    np.save(tmp_path / "H.npy", rng.standard_normal((30, 3)))
    code = main(["audit", "--model", str(tmp_path / "W.npy"), "--data", str(tmp_path / "H.npy"),
                 "--out", str(tmp_path / "out"), "--engine", "ray", "--workers", "10000",
                 "--batch-size", "16", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0
    assert "--workers 10000 bounded to 2" in err
    assert (tmp_path / "out" / "audit.json").is_file()
