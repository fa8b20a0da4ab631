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
PEAK = Path(__file__).resolve().parents[2] / "benchmarks" / "_peak.py"


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


def _translation(W: np.ndarray, i: int, j: int, target: float) -> np.ndarray:
    """The translation the command applies (the library's O(d) solve; what is tested here is
    how the rows are written in another dtype)."""
    from unembed import Head
    from unembed.construct import cosine_translation

    return cosine_translation(Head(W.astype(np.float64)), i, j, target).c


def test_counterexample_dtype_retypes_a_safetensors_file_in_blocks(tmp_path, capsys):
    """--dtype bfloat16 on a float32 .safetensors file: the head tensor is written as bfloat16
    (rounded as torch rounds W + c), every other tensor and the metadata unchanged."""
    torch = pytest.importorskip("torch")
    from safetensors import safe_open
    from safetensors.torch import save_file

    from unembed.cli import main

    rng = np.random.default_rng(3)
    W = (rng.standard_normal((300, 24)) + 0.5).astype(np.float32)
    other = rng.standard_normal((7, 5)).astype(np.float32)
    src = tmp_path / "m.safetensors"
    save_file({"z.other": torch.from_numpy(other), "lm_head.weight": torch.from_numpy(W),
               "a.first": torch.arange(6, dtype=torch.int64)}, str(src),
              metadata={"format": "pt"})
    out = tmp_path / "out.safetensors"
    assert main(["counterexample", f"{src}:lm_head.weight", "--pair", "#3", "#8", "--target",
                 "-0.25", "--out", str(out), "--dtype", "bfloat16", "--json", "-n", "16"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["verification"]["equivalent"] and rec["stored_dtype"] == "bfloat16"
    c = _translation(W, 3, 8, -0.25)
    want = torch.from_numpy(W.astype(np.float64) + c).to(torch.bfloat16)
    with safe_open(str(out), framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
        assert set(f.keys()) == {"z.other", "lm_head.weight", "a.first"}
        got = f.get_tensor("lm_head.weight")
        assert got.dtype == torch.bfloat16
        assert torch.equal(got, want)
        np.testing.assert_array_equal(f.get_tensor("z.other").numpy(), other)
        np.testing.assert_array_equal(f.get_tensor("a.first").numpy(), np.arange(6))
    g = got.to(torch.float64).numpy()
    cos = g[3] @ g[8] / np.linalg.norm(g[3]) / np.linalg.norm(g[8])
    assert rec["cosine_after_stored"] == pytest.approx(cos, abs=1e-12)
    assert rec["cosine_written"] == pytest.approx(cos, abs=1e-12)


def test_counterexample_dtype_on_a_shard_writes_the_new_dtype(big, tmp_path):
    """--dtype float32 on the bfloat16 sharded head: the shard is written with the head in
    float32 (before, the shard's own bfloat16 was written whatever --dtype said), within the
    memory bound, and the other tensor of the shard is unchanged."""
    from safetensors import safe_open

    spec = f"{big / 'model.safetensors.index.json'}:lm_head.weight"
    out = tmp_path / "out.safetensors"
    _check(_peak("counterexample", spec, "--pair", "#5", "#9", "--target", "0.25", "--out",
                 str(out), "-n", "32", "--dtype", "float32"))
    with safe_open(str(out), framework="numpy") as f:
        assert set(f.keys()) == {"lm_head.weight"}
        got = f.get_tensor("lm_head.weight")
    assert got.dtype == np.float32 and got.shape == (V, D)
    W = np.load(big / "W.npy", mmap_mode="r")
    bits = (np.asarray(W[:400]).view(np.uint32) >> 16) << 16  # the stored bfloat16 values
    before = bits.view(np.float32).astype(np.float64)
    shift = got[:400].astype(np.float64) - before
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape),
                               atol=4 * 2.0**-24 * np.abs(got[:400]).max())


_FAST_PASS = """
import json, resource, sys
import numpy as np, scipy.optimize
from unembed.feasibility import argmaxable_all
from unembed.sources import load_head_file
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
base = peak()
head = load_head_file(sys.argv[1])
head.W  # the rows read whole (the fast pass needs them): what reading the head takes
loaded = peak()
res = argmaxable_all(head, workers=1, narrowest_budget=0)
print(json.dumps({"baseline_rss": base, "loaded_rss": loaded, "peak_rss": peak(),
                  "fast": int((res.method == "fast").sum())}))
"""


def test_argmaxable_fast_pass_within_one_float64_copy(tmp_path):
    """argmaxable's fast pass on a 32000 x 1024 float32 head (262 MB in float64, the head
    above): the float32 products round W block by block (no float32 copy of W, which alone
    would take the peak past the bound), so the peak stays under 1.5x the float64 head. Beside
    the rows the pass keeps the sketch (V x (k + 1) float32), the d x d covariance and its
    directions: small beside V d when V is many times d, as in every real vocabulary. (Without
    the narrowest-margin LPs: their memory is that of the LP solver, O(rows x d), and is
    measured by benchmarks/bench_memory.py on the full command.)"""
    v, d = 32000, 1024
    rng = np.random.default_rng(1)
    W = np.empty((v, d), dtype=np.float32)
    for s in range(0, v, 2000):
        W[s:s + 2000] = rng.standard_normal((2000, d), dtype=np.float32)
    W += 0.3
    np.save(tmp_path / "W.npy", W)
    del W
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", _FAST_PASS, str(tmp_path / "W.npy")],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["fast"] == v  # every label settled by the fast pass (a random head)
    added = res["peak_rss"] - res["baseline_rss"]
    assert added < 1.5 * 8 * v * d, f"added {added / 2**20:.0f} MiB"
    # and the fast pass itself added little to what reading the head took
    assert res["peak_rss"] - res["loaded_rss"] < 0.4 * 8 * v * d  # a float32 copy: 0.5


def test_a_text_file_with_one_enormous_line_is_read_in_pieces(tmp_path):
    """A 3.5 M-character line (no newline, no blank line) is read in pieces of at most 1 Mi
    characters cut at whitespace: no word split, the same words in the same order as the file
    (compared with str.split on the whole text), and the windows those words make."""
    from unembed.data import _PIECE, TextWindows

    rng = np.random.default_rng(0)
    words = [f"w{int(k)}" for k in rng.integers(0, 500, 700_000)]
    text = " ".join(words)
    assert len(text) > 3 * _PIECE
    (tmp_path / "one.txt").write_text(text)
    vocab = {w: i for i, w in enumerate(sorted(set(words)))}
    tw = TextWindows([tmp_path / "one.txt"], lambda s: [vocab[w] for w in s.split()], window=8)
    chunks = list(tw._chunks())
    assert len(chunks) >= 4 and max(len(c) for c in chunks) <= _PIECE
    assert [w for c in chunks for w in c.split()] == words
    got = np.concatenate(list(tw.batches(1000)))
    want = np.array([vocab[w] for w in words][: len(words) // 8 * 8]).reshape(-1, 8)
    np.testing.assert_array_equal(got, want)


def test_an_overlong_json_line_is_refused(tmp_path, monkeypatch):
    import unembed.data as data
    from unembed._checks import UnembedError

    monkeypatch.setattr(data, "_MAX_JSON_LINE", 100)
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"text": "short"}) + "\n" + json.dumps({"text": "x" * 200}) + "\n")
    tw = data.TextWindows([p], lambda s: list(range(len(s))), window=2)
    with pytest.raises(UnembedError, match=r"d.jsonl: line 2 is longer than 100 characters"):
        list(tw._chunks())


#: What an O(V d) command may add: a quarter of the float64 copy (it keeps none: blocks of a
#: few MiB, the mean, V-long vectors).
SMALL = 0.25 * 8 * V * D


@pytest.mark.parametrize("argv", [
    ["cosine", "{npy}", "#5", "#9", "--view", "centered"],
    ["cosine", "{npy}", "#5", "#9", "--view", "raw"],
    ["cosine", "{npy}", "#5", "#9", "--view", "normalized"],
    ["cosine", "{npy}", "#5", "#9", "--view", "differences"],
    ["neighbours", "{npy}", "#5", "#9", "-k", "5", "--view", "centered"],
    ["cosine", "{bf16}", "#5", "#9", "--view", "normalized"],
    ["neighbours", "{bf16}", "#5", "-k", "5", "--view", "raw"],
], ids=lambda a: "-".join(x.strip("{}#-") for x in a if not x.startswith("#")))
def test_work_of_order_vd_keeps_no_float64_copy(big, argv):
    """A cosine of two labels in any view but causal, and the neighbours of a few labels,
    read the rows from the file block by block: far below one float64 copy."""
    spec = {"{npy}": str(big / "W.npy"),
            "{bf16}": f"{big / 'model.safetensors.index.json'}:lm_head.weight"}
    res = _peak(*[spec.get(a, a) for a in argv])
    added = res["peak_rss"] - res["baseline_rss"]
    assert added < SMALL, f"added {added / 2**20:.0f} MiB >= {SMALL / 2**20:.0f} MiB"
