"""Reading the head of a sharded checkpoint lazily, against floors measured in the same run.

A Llama-style checkpoint is written to a temp dir: shard 1 holds the head (V = 32000,
d = 1024, float32: 125 MiB) and the final norm; shards 2 and 3 hold 2 x BIG_MIB of other
weights. Each measurement runs in a fresh process (peak RSS from /proc/self/status VmHWM,
reset before the measured call):

* ``load_hf_lm(dir, fold=True)`` (config, index, head and norm, float64 head)
  vs. ``safe_open(shard 1).get_tensor("lm_head.weight").double()`` alone: the head in
  float64 and nothing else, the least any float64 analysis of it needs (time; peak RSS);
* the peak RSS of reading (materialising) every tensor of the checkpoint, as a ratio to the
  lazy read.

Run: ``.venv/bin/python benchmarks/bench_sources.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

V, D, BIG_MIB = 32000, 1024, 1536

CHILD = r"""
import json, sys, time
path, what = sys.argv[1], sys.argv[2]
from unembed.sources.hf_lm import load_hf_lm, read_config
from safetensors import safe_open
read_config(__import__("pathlib").Path(path))

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

open("/proc/self/clear_refs", "w").write("5")
before = status("VmRSS")
t = time.perf_counter()
if what == "lazy":
    m = load_hf_lm(path, fold=True)
elif what == "floor":
    with safe_open(path + "/model-00001-of-00003.safetensors", framework="pt") as f:
        w = f.get_tensor("lm_head.weight").double()  # the head in float64, as analysed
else:
    out = []
    for k in (1, 2, 3):
        with safe_open(path + f"/model-0000{k}-of-00003.safetensors", framework="pt") as f:
            out += [f.get_tensor(n).clone() for n in f.keys()]  # materialised
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "peak": status("VmHWM") - before}))
"""


def write_checkpoint(path: Path) -> None:
    import torch
    import transformers as tf
    from safetensors.torch import save_file

    tf.LlamaConfig(vocab_size=V, hidden_size=D, intermediate_size=2 * D, num_hidden_layers=1,
                   num_attention_heads=8, tie_word_embeddings=False).save_pretrained(path)
    g = torch.Generator().manual_seed(0)
    small = {"lm_head.weight": torch.randn(V, D, generator=g),
             "model.norm.weight": 1 + 0.1 * torch.randn(D, generator=g)}
    save_file(small, str(path / "model-00001-of-00003.safetensors"))
    weight_map = dict.fromkeys(small, "model-00001-of-00003.safetensors")
    for k in (2, 3):
        name, shard = f"model.layers.0.big_{k}", f"model-0000{k}-of-00003.safetensors"
        save_file({name: torch.ones(BIG_MIB * 2**20 // 4)}, str(path / shard))
        weight_map[name] = shard
    (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


def measure(path: Path, what: str, repeat: int = 3) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", CHILD, str(path), what], check=True,
                             capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return {"seconds": min(r["seconds"] for r in runs), "peak": min(r["peak"] for r in runs)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ckpt"
        path.mkdir()
        write_checkpoint(path)
        lazy, floor = measure(path, "lazy"), measure(path, "floor")
        full = measure(path, "all", repeat=1)
    mib = 2**20
    print(f"checkpoint: head {V}x{D} float32 ({V * D * 4 / mib:.0f} MiB) + "
          f"{2 * BIG_MIB} MiB of other tensors in 2 more shards")
    print(f"{'measure':<44}{'value':>12}{'floor':>12}{'ratio':>8}")
    print(f"{'load_hf_lm(fold=True) seconds':<44}{lazy['seconds']:>12.3f}"
          f"{floor['seconds']:>12.3f}{lazy['seconds'] / floor['seconds']:>8.1f}"
          f"  floor: the head as float64 alone")
    print(f"{'load_hf_lm(fold=True) peak RSS MiB':<44}{lazy['peak'] / mib:>12.0f}"
          f"{floor['peak'] / mib:>12.0f}{lazy['peak'] / floor['peak']:>8.1f}"
          f"  floor: the head as float64 alone")
    print(f"{'read every tensor: peak RSS MiB':<44}{full['peak'] / mib:>12.0f}"
          f"{lazy['peak'] / mib:>12.0f}{full['peak'] / lazy['peak']:>8.1f}"
          f"  floor: the lazy head read")


if __name__ == "__main__":
    main()
