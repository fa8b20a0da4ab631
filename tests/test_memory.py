"""Every command on a head large enough to measure stays within 1.5x its float64 copy.

A 32000 x 1024 float32 head (a 131 MB .npy, 262 MB in float64) and the same head as a bfloat16
safetensors checkpoint sharded in two; each command runs in a fresh subprocess
(``benchmarks/_peak.py``) which reports its peak resident memory (``getrusage``) before and
after the command. The memory the command adds must stay below 1.5 x 8 V d bytes: one float64
copy of the head plus blocks, never a (V, d) temporary per view or per pair. Nothing is timed.
(``argmaxable`` is V^2 d work: its memory is measured by ``benchmarks/bench_memory.py``.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

V, D = 32000, 1024
LIMIT = 1.5 * 8 * V * D
PEAK = Path(__file__).resolve().parents[1] / "benchmarks" / "_peak.py"


def _peak(*argv: str) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(PEAK), *argv], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    out: dict[str, float] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(0)
    W = np.empty((V, D), dtype=np.float32)
    for s in range(0, V, 4000):  # the test itself stays small too
        W[s:s + 4000] = rng.standard_normal((min(4000, V - s), D), dtype=np.float32)
    W += 0.3  # a shared mean vector, as real heads have
    np.save(tmp / "W.npy", W)
    # bfloat16 shards written by hand: numpy has no bfloat16, so store the top 16 bits.
    _bf16_checkpoint(tmp, (W.view(np.uint32) >> 16).astype(np.uint16))
    return tmp


def _bf16_checkpoint(tmp: Path, bits: np.ndarray) -> None:
    """A two-shard checkpoint whose lm_head.weight is bfloat16 (header written directly)."""
    import struct

    def shard(name: str, tensors: dict[str, np.ndarray]) -> None:
        header, off, blobs = {}, 0, []
        for k, a in tensors.items():
            b = a.tobytes()
            header[k] = {"dtype": "BF16", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
            off += len(b)
            blobs.append(b)
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        with open(tmp / name, "wb") as fh:
            fh.write(struct.pack("<Q", len(h)) + h)
            for b in blobs:
                fh.write(b)

    shard("model-00001-of-00002.safetensors", {"model.embed.weight": bits[:64]})
    shard("model-00002-of-00002.safetensors", {"lm_head.weight": bits})
    (tmp / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "model.embed.weight": "model-00001-of-00002.safetensors",
        "lm_head.weight": "model-00002-of-00002.safetensors"}}))


def _check(res: dict[str, float]) -> None:
    added = res["peak_rss"] - res["baseline_rss"]
    assert added < LIMIT, f"added {added / 2**20:.0f} MiB >= {LIMIT / 2**20:.0f} MiB"


@pytest.mark.parametrize("views", [["--view", "raw"], []])
def test_cosine_within_one_float64_copy(big, views):
    _check(_peak("cosine", str(big / "W.npy"), "#5", "#9", *views))


def test_inspect_within_one_float64_copy(big):
    _check(_peak("inspect", str(big / "W.npy"), "--json"))


def test_counterexample_within_one_float64_copy(big, tmp_path):
    out = tmp_path / "out.npy"
    _check(_peak("counterexample", str(big / "W.npy"), "--pair", "#5", "#9", "--target",
                 "-0.5", "--out", str(out), "-n", "64"))
    # what was written is the translated head: every row moved by one vector
    W = np.load(big / "W.npy", mmap_mode="r")
    N = np.load(out, mmap_mode="r")
    diff = np.asarray(N[:200], dtype=np.float64) - np.asarray(W[:200], dtype=np.float64)
    np.testing.assert_allclose(diff, np.broadcast_to(diff[0], diff.shape), atol=1e-5)


def test_bfloat16_sharded_checkpoint_within_one_float64_copy(big):
    spec = f"{big / 'model.safetensors.index.json'}:lm_head.weight"
    _check(_peak("cosine", spec, "#5", "#9", "--view", "centered"))


def test_bfloat16_shard_is_read_exactly(big):
    """The block reader widens bfloat16 exactly: compared with torch's own bfloat16."""
    torch = pytest.importorskip("torch")
    from unembed.sources.files import read_tensor

    mf = read_tensor(f"{big / 'model.safetensors.index.json'}:lm_head.weight")
    assert mf.dtype == "bfloat16" and mf.shape == (V, D)
    got = np.asarray(mf._rows(100, 110))
    W = np.array(np.load(big / "W.npy", mmap_mode="r")[100:110])
    bits = (W.view(np.uint32) >> 16).astype(np.uint16).view(np.int16)
    want = torch.from_numpy(bits).view(torch.bfloat16).to(torch.float32).numpy()
    np.testing.assert_array_equal(got, want)


def test_counterexample_on_a_sharded_checkpoint_writes_the_shard(big, tmp_path):
    """A bfloat16 head of a sharded checkpoint: the shard holding it is written with the
    translated rows, and what was written is re-read and verified (independently here: every
    stored row moved by the same vector, up to bfloat16 rounding)."""
    spec = f"{big / 'model.safetensors.index.json'}:lm_head.weight"
    out = tmp_path / "out.safetensors"
    res = _peak("counterexample", spec, "--pair", "#5", "#9", "--target", "0.25", "--out",
                str(out), "-n", "32")
    _check(res)
    from unembed.sources.files import read_tensor

    before = read_tensor(spec)._rows(0, 300).astype(np.float64)
    after = read_tensor(f"{out}:lm_head.weight")._rows(0, 300).astype(np.float64)
    shift = np.median(after - before, axis=0)
    np.testing.assert_allclose(after - before, np.broadcast_to(shift, before.shape),
                               atol=2.0**-7 * (np.abs(after).max() + np.abs(before).max()))
