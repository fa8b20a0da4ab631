"""--engine ray on a real local Ray (2 CPUs, started once for this module): the audit's numbers
equal the single-process run's (counts, label set, witnesses identical; sums and moments to
1e-12), a worker that dies is re-run and counted once, and argmaxable gives the same verdicts."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ray = pytest.importorskip("ray")

# one local Ray for the whole module, in one test process (pytest -n: --dist loadgroup)
pytestmark = pytest.mark.xdist_group("ray")

from unembed.behaviour import collect  # noqa: E402
from unembed.cli import main  # noqa: E402
from unembed.data import TextWindows, open_data  # noqa: E402
from unembed.engine import RayEngine, Sharded  # noqa: E402
from unembed.sources import load  # noqa: E402

TEXT = "\n".join([
    "the cat sat on the mat and the dog sat on the cat",
    "a dog ran to the park and the dog sat",
    "the quick brown fox jumps over the lazy dog",
    "",
    "cats and dogs are not the same animal, the cat said to the dog",
] * 8)


@pytest.fixture(scope="module")
def local_ray() -> Any:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # the test's own callables (below) travel to the workers by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


def _same(a: Any, b: Any, path: str = "") -> None:
    """Equal JSON trees: ints, strings and booleans exactly, floats to 1e-12."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            if k != "timings_seconds":
                _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-12), path
    else:
        assert a == b and type(a) is type(b), path


def test_cli_audit_on_ray_writes_the_local_numbers(local_ray: Any, tiny_gpt2_dir: Path,
                                                   tmp_path: Path) -> None:
    data = tmp_path / "t.txt"
    data.write_text(TEXT)
    common = ["audit", "--model", str(tiny_gpt2_dir), "--data", str(data), "--window", "8",
              "--top-n", "12", "--batch-size", "3", "--likely", "0.02", "--no-progress",
              "--json"]
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    assert main([*common, "--out", str(tmp_path / "ray"), "--engine", "ray",
                 "--workers", "2"]) == 0
    loc = json.loads((tmp_path / "local" / "audit.json").read_text())
    rem = json.loads((tmp_path / "ray" / "audit.json").read_text())
    assert loc["data"]["n_predictions"] > 100
    # the runs' options differ (and are recorded); every number agrees
    for d, engine, workers in ((loc, "local", None), (rem, "ray", 2)):
        opts = d["inputs"]["options"]
        assert (opts.pop("engine"), opts.pop("workers")) == (engine, workers)
    _same(loc, rem)
    assert ray.is_initialized()  # a running Ray is joined, never shut down by the command


class _DieOnce:
    """Opens the data; on its second call (the first shard) the worker process dies after the
    first batch of its shard has been accumulated."""

    def __init__(self, path: str, log: str) -> None:
        self.path, self.log = path, log

    def __call__(self, model: Any) -> Any:
        with open(self.log, "a") as fh:
            fh.write("call\n")
        n = len(Path(self.log).read_text().splitlines())
        src = open_data(self.path, model, window=8)
        return _DyingAfterOne(src) if n == 2 else src


class _DyingAfterOne:
    def __init__(self, inner: TextWindows) -> None:
        self.inner = inner

    def batches(self, batch_size: int) -> Any:
        for i, b in enumerate(self.inner.batches(batch_size)):
            if i == 2:  # after the shard's first batch (batches 0 and 1 go to shards 0 and 1)
                os._exit(1)
            yield b

    def predictions_per_input(self) -> int:
        return self.inner.predictions_per_input()

    def size_hint(self) -> int | None:
        return self.inner.size_hint()

    def describe(self, indices: Any, model: Any) -> dict[int, str]:
        return self.inner.describe(indices, model)


def test_a_worker_that_dies_is_rerun_and_counted_once(local_ray: Any, tiny_gpt2_dir: Path,
                                                      tmp_path: Path) -> None:
    data = tmp_path / "t.txt"
    data.write_text(TEXT)
    log = tmp_path / "calls.log"
    model = load(tiny_gpt2_dir)
    kw: dict[str, Any] = {"top_n": 10, "top_k": 3, "batch_size": 2, "keep_hidden": 50,
                          "selection_predictions": 40, "progress": False}
    # local: the label set from the first 40 predictions (held, head logits), the rest from
    # the model's own logits
    one = collect(model, open_data(data, model, window=8), **kw)
    sharded = Sharded(RayEngine(workers=2), functools.partial(load, str(tiny_gpt2_dir)),
                      _DieOnce(str(data), str(log)))
    many = sharded.engine.collect(model.head, sharded.load_model, sharded.open_data, **kw)
    assert len(log.read_text().splitlines()) == 4  # select, 2 shards, 1 re-run
    assert many.n_predictions == one.n_predictions
    np.testing.assert_array_equal(many.idx, one.idx)
    assert many.selection == one.selection
    np.testing.assert_array_equal(many.tally.argmax_count, one.tally.argmax_count)
    np.testing.assert_array_equal(many.pairs.both_top, one.pairs.both_top)
    np.testing.assert_array_equal(many.pairs.best_at, one.pairs.best_at)
    np.testing.assert_array_equal(many.pairs.best_min, one.pairs.best_min)
    np.testing.assert_allclose(many.tally.sum_p, one.tally.sum_p, rtol=1e-12, atol=1e-15)
    for m in one.matrices:
        np.testing.assert_allclose(many.matrices[m], one.matrices[m], rtol=1e-12, atol=1e-12,
                                   err_msg=m)
    np.testing.assert_array_equal(many.hidden, one.hidden)


def test_argmaxable_on_ray_gives_the_local_verdicts(local_ray: Any, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(4)
    W = rng.standard_normal((80, 4))
    for i in range(70, 80):  # convex combinations of three other rows: not argmaxable
        w = rng.dirichlet(np.ones(3))
        W[i] = w @ W[rng.choice(70, 3, replace=False)]
    np.save(tmp_path / "W.npy", W)
    args = ["argmaxable", str(tmp_path / "W.npy"), "--json", "--narrowest", "3"]
    assert main([*args, "--workers", "1"]) == 0
    loc = json.loads(capsys.readouterr().out)
    assert main([*args, "--engine", "ray", "--workers", "2"]) == 0
    rem = json.loads(capsys.readouterr().out)
    assert sorted(loc["unargmaxable"]) == sorted(rem["unargmaxable"])
    assert {str(i) for i in range(70, 80)} <= set(rem["unargmaxable"])
    assert loc["counts"] == rem["counts"] and loc["lp"] == rem["lp"] >= 10
    assert [r["label"] for r in loc["narrowest"]] == [r["label"] for r in rem["narrowest"]]
    for a, b in zip(loc["narrowest"], rem["narrowest"]):
        assert a["margin"] == pytest.approx(b["margin"], rel=1e-9, abs=1e-12)
    # the fast pass's sketch travels to the workers: the same verdicts through it
    assert main([*args, "--engine", "ray", "--workers", "2", "--sketch", "2"]) == 0
    sk = json.loads(capsys.readouterr().out)
    assert sk["sketch"]["rank"] == 2 and sk["sketch"]["exact_share"] is None
    assert sorted(sk["unargmaxable"]) == sorted(loc["unargmaxable"])
    assert sk["counts"] == loc["counts"]
