"""Lazy reading of sharded checkpoints: only the head's and the norm's tensors are read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from unembed import UnembedError
from unembed.sources.checkpoint import Checkpoint

BIG_MB = 96  # each of the two non-head shards


def _write_sharded_llama(path: Path) -> dict[str, np.ndarray]:
    """A Llama-style checkpoint: shard 1 holds the head and the final norm (small), shards 2
    and 3 one large tensor each. Returns the small tensors."""
    import torch
    import transformers as tf
    from safetensors.torch import save_file

    path.mkdir()
    V, d = 512, 64
    tf.LlamaConfig(vocab_size=V, hidden_size=d, intermediate_size=128, num_hidden_layers=1,
                   num_attention_heads=2, num_key_value_heads=2,
                   tie_word_embeddings=False).save_pretrained(path)
    g = torch.Generator().manual_seed(0)
    small = {"lm_head.weight": torch.randn(V, d, generator=g),
             "model.norm.weight": 1 + 0.1 * torch.randn(d, generator=g)}
    save_file(small, str(path / "model-00001-of-00003.safetensors"), metadata={"format": "pt"})
    weight_map = dict.fromkeys(small, "model-00001-of-00003.safetensors")
    n = BIG_MB * 2**20 // 4
    for k in (2, 3):
        name = f"model.layers.0.mlp.big_{k}"
        shard = f"model-0000{k}-of-00003.safetensors"
        save_file({name: torch.ones(n)}, str(path / shard), metadata={"format": "pt"})
        weight_map[name] = shard
    (path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map}))
    return {k: v.numpy() for k, v in small.items()}


CHILD = r"""
import json, sys
import numpy as np
from unembed.sources.hf_lm import load_hf_lm, read_config
from unembed.sources.checkpoint import Checkpoint

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
read_config(__import__("pathlib").Path(sys.argv[1]))  # warm up the config machinery
open("/proc/self/clear_refs", "w").write("5")          # reset the peak RSS
before = status("VmRSS")
what = sys.argv[2]
if what == "head":
    m = load_hf_lm(sys.argv[1], fold=True)
    extra = {"shape": list(m.head.W.shape), "rows": m.head.rows}
else:  # read one large tensor, to show the measurement sees real reads
    arr, _ = Checkpoint(sys.argv[1]).get("model.layers.0.mlp.big_2")
    extra = {"sum": float(arr.sum())}
print(json.dumps({"peak_delta": status("VmHWM") - before, **extra}))
"""


def _child(path: Path, what: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), what], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_sharded_head_is_read_without_the_large_tensors(tmp_path):
    small = _write_sharded_llama(tmp_path / "ckpt")
    ck = Checkpoint(tmp_path / "ckpt")
    W, dtype = ck.get("lm_head.weight")
    assert dtype == "float32"
    np.testing.assert_array_equal(W, small["lm_head.weight"])
    assert ck.shards_opened == {"model-00001-of-00003.safetensors"}

    big = BIG_MB * 2**20
    head = _child(tmp_path / "ckpt", "head")
    assert head["shape"] == [512, 64] and head["rows"] == "folded"
    # the head and its float64 copies are well under a megabyte each; the two large
    # tensors would add 2 * BIG_MB
    assert head["peak_delta"] < big / 4, (
        f"reading the head raised peak RSS by {head['peak_delta'] / 2**20:.1f} MiB")
    # control: actually reading one large tensor shows up in the same measurement
    control = _child(tmp_path / "ckpt", "big")
    assert control["sum"] == big / 4
    assert control["peak_delta"] > big * 0.9, control


def test_unsharded_and_bin_checkpoints(tmp_path):
    import torch
    from safetensors.torch import save_file

    t = {"a.weight": torch.arange(6.0).reshape(2, 3).to(torch.float16)}
    (tmp_path / "st").mkdir()
    save_file(t, str(tmp_path / "st" / "model.safetensors"))
    arr, dtype = Checkpoint(tmp_path / "st").get("a.weight")
    assert dtype == "float16" and arr.shape == (2, 3)
    (tmp_path / "pt").mkdir()
    torch.save(t, tmp_path / "pt" / "pytorch_model.bin")
    ck = Checkpoint(tmp_path / "pt")
    assert ck.resolve("model.a.weight") == "a.weight"
    np.testing.assert_array_equal(ck.get("a.weight")[0], arr)
    with pytest.raises(UnembedError, match="no tensor named 'b'"):
        ck.get("b")


def test_missing_weights_and_shards_are_named(tmp_path):
    with pytest.raises(UnembedError, match="no weights found"):
        Checkpoint(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"x": "gone.safetensors"}}))
    with pytest.raises(UnembedError, match=r"gone\.safetensors"):
        Checkpoint(tmp_path).get("x")


def test_index_file_as_a_weight_spec(tmp_path):
    """A sharded checkpoint's index names the head lazily: ``INDEX[:TENSOR]``."""
    import torch
    from safetensors.torch import save_file

    from unembed import load_head_file
    from unembed.sources.files import read_tensor, write_like

    g = torch.Generator().manual_seed(1)
    W = torch.randn(7, 3, generator=g).to(torch.bfloat16)
    save_file({"lm_head.weight": W}, str(tmp_path / "a.safetensors"))
    save_file({"model.x": torch.ones(4, 4)}, str(tmp_path / "b.safetensors"))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"lm_head.weight": "a.safetensors", "model.x": "b.safetensors"}}))
    idx = tmp_path / "model.safetensors.index.json"
    for spec in (str(idx), f"{idx}:lm_head.weight"):
        head = load_head_file(spec)
        assert head.dtype == "bfloat16" and head.W.shape == (7, 3)
        np.testing.assert_array_equal(head.W, W.to(torch.float64).numpy())
    with pytest.raises(UnembedError, match="expected 1 dimensions"):
        read_tensor(f"{idx}:model.x", ndim=1)
    with pytest.raises(UnembedError, match="export the whole model"):
        write_like(head.file, head.W, tmp_path / "out.json")
