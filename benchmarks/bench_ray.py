"""The audit's streaming pass on Ray: 1 worker against 2 local workers, same model, same data.

A GPT-2-architecture model (random weights; d=256, 4 layers, a byte-level BPE of 4096 tokens
trained on the demo's documentation topics) is saved to a temporary directory; the data is the
held-out topics text repeated. Timed (best of ``--repeat``, after a warm-up that loads the
model in every worker):

* ``local``: :func:`unembed.behaviour.collect` in this process (torch on 1 thread);
* ``ray 1``, ``ray 2``: :meth:`unembed.engine.RayEngine.collect` with 1 and 2 workers on a
  local Ray started with 2 CPUs (each worker: torch on 1 thread, Ray's default).

Reported: seconds, speed-up ray 1 / ray 2 and parallel efficiency speed-up / 2; the numbers of
the three runs are checked to agree (counts identical, sums to 1e-12).

    python benchmarks/bench_ray.py [--repeat 3] [--copies 12]
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def build(path: Path, text: str) -> Path:
    import torch
    import transformers as tf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tf.utils.logging.disable_progress_bar()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=4096, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"])
    tok.train_from_iterator(text.splitlines(), trainer)
    fast = tf.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                      bos_token="<|endoftext|>")
    cfg = tf.GPT2Config(vocab_size=len(fast), n_embd=256, n_layer=4, n_head=4, n_positions=256,
                        bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    tf.GPT2LMHeadModel(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--copies", type=int, default=12, help="times the held-out text is repeated")
    args = ap.parse_args()

    import ray
    import torch

    from unembed.behaviour import collect
    from unembed.data import open_data
    from unembed.demo.data import doc_topics_text
    from unembed.engine import RayEngine
    from unembed.sources import load

    train, held = doc_topics_text()
    tmp = Path(tempfile.mkdtemp())
    model_dir = build(tmp / "gpt2", train)
    data = tmp / "held.txt"
    data.write_text("\n\n".join([held] * args.copies), encoding="utf-8")
    loader = functools.partial(load, str(model_dir), device="cpu")
    opener = functools.partial(open_data, str(data), window=64)
    kw: dict[str, Any] = {"top_n": 40, "top_k": 5, "batch_size": 8, "progress": False}

    torch.set_num_threads(1)
    model = loader()
    times: dict[str, list[float]] = {"local": [], "ray 1": [], "ray 2": []}
    results: dict[str, Any] = {}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        engines = {"ray 1": RayEngine(workers=1), "ray 2": RayEngine(workers=2)}
        for eng in engines.values():  # warm-up: every worker loads the model
            eng.collect(model.head, loader, opener, **kw)
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            results["local"] = collect(model, opener(model), **kw)
            times["local"].append(time.perf_counter() - t0)
            for name, eng in engines.items():
                t0 = time.perf_counter()
                results[name] = eng.collect(model.head, loader, opener, **kw)
                times[name].append(time.perf_counter() - t0)
    finally:
        ray.shutdown()
    ref = results["local"]
    for name in ("ray 1", "ray 2"):
        r = results[name]
        assert r.n_predictions == ref.n_predictions and np.array_equal(r.idx, ref.idx)
        assert np.array_equal(r.tally.argmax_count, ref.tally.argmax_count)
        np.testing.assert_allclose(r.tally.sum_p, ref.tally.sum_p, rtol=1e-12, atol=1e-15)
        for m in ref.matrices:
            np.testing.assert_allclose(r.matrices[m], ref.matrices[m], rtol=1e-12, atol=1e-12)
    best = {k: min(v) for k, v in times.items()}
    speed = best["ray 1"] / best["ray 2"]
    print(f"model: GPT-2 architecture, V={model.head.n_labels}, d={model.head.d}, 4 layers; "
          f"{ref.n_predictions} predictions (windows of 64); best of {args.repeat}")
    for k, v in best.items():
        print(f"  {k:8s} {v:8.2f} s")
    print(f"speed-up 2 workers / 1 worker: {speed:.2f}; parallel efficiency {speed / 2:.0%}")
    print("numbers of all three runs agree (counts identical, sums and moments to 1e-12)")


if __name__ == "__main__":
    main()
