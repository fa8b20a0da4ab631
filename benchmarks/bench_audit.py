"""Audit overhead over the model's own forward passes, measured in one run on the same data.

For each model: the baseline is the forward passes alone over every batch, as any evaluation
loop runs them: ``model.forward_native`` where the source has it (hidden states captured, the
logits as the model computes them, float32, no float64 copy), else ``model.forward``; the
audit is ``unembed.audit.audit`` on the same batches (its behaviour pass runs those forward
passes itself, then the views, rank correlations, contradictions and the three claims; no
HTML). Reported: seconds (best of ``--repeat``) and the overhead ratio audit / forward - 1
(target: under 10%). The streaming overhead (behaviour pass alone / forward passes - 1) is
reported in wall seconds and in this process's CPU seconds (``time.process_time``; with torch,
numpy and BLAS on one thread each it counts the work done, not the time other processes held
the cores).

Models (random weights where noted: timing does not depend on training):
* ``demo-lm``: the demo's word-level transformer (V=2000, d=64, 2 layers), trained briefly,
  on the held-out documentation topics, windows of 32;
* ``gpt2-size``: the same architecture at GPT-2 small's size (V=50257, d=768, 12 layers,
  random weights) on random token windows of 128;
* ``digits-cnn``: the demo's CNN on the held-out digits.

    python benchmarks/bench_audit.py [--threads 2] [--repeat 3] [--gpt2-windows 16]
        [--models demo-lm,gpt2-size,digits-cnn]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unembed.audit import audit
from unembed.behaviour import ArrayInputs, TextWindows, collect
from unembed.demo.data import digits_split, doc_topics_text
from unembed.demo.models import DemoLM, TinyLM, digits_model
from unembed.demo.training import torch_threads, train_digits_cnn, train_lm
from unembed.sources.torch_module import TorchModuleModel


def _forward_only(model: Any, data: Any, batch_size: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of the forward passes alone."""
    forward = getattr(model, "forward_native", model.forward)
    t0, c0 = time.perf_counter(), time.process_time()
    for batch in data.batches(batch_size):
        forward(batch)
    return time.perf_counter() - t0, time.process_time() - c0


def _behaviour_only(model: Any, data: Any, batch_size: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the behaviour pass alone (forward passes + accumulators)."""
    t0, c0 = time.perf_counter(), time.process_time()
    collect(model, data, batch_size=batch_size, progress=False)
    return time.perf_counter() - t0, time.process_time() - c0


def _audit(model: Any, data: Any, batch_size: int) -> tuple[float, dict[str, float]]:
    t0 = time.perf_counter()
    # the co-top decisions (linear programs over all rows) are skipped for large heads
    res = audit(model, data, batch_size=batch_size, progress=False, describe=False,
                co_top=model.head.n_labels <= 5000)
    return time.perf_counter() - t0, {**res.timings,
                                      "predictions": res.behaviour.n_predictions}


def measure(name: str, model: Any, data: Any, batch_size: int, repeat: int) -> dict[str, Any]:
    _forward_only(model, data, batch_size)  # warm-up
    fwd, aud, parts, beh = [], [], [], []
    for _ in range(repeat):
        fwd.append(_forward_only(model, data, batch_size))
        beh.append(_behaviour_only(model, data, batch_size))
        a, t = _audit(model, data, batch_size)
        aud.append(a)
        parts.append(t)
    f, a = min(x[0] for x in fwd), min(aud)
    fc, bc = min(x[1] for x in fwd), min(x[1] for x in beh)
    b = min(x[0] for x in beh)
    best = parts[int(np.argmin(aud))]
    n = int(best["predictions"])
    return {"model": name, "predictions": n, "forward_s": f, "audit_s": a,
            "behaviour_s": b, "fixed_s": best["views"] + best["claims"],
            "co_top_s": best["co_top"], "forward_cpu_s": fc, "behaviour_cpu_s": bc,
            "overhead": a / f - 1.0, "behaviour_overhead": b / f - 1.0,
            "behaviour_overhead_cpu": bc / fc - 1.0}


def _text_windows(text: str, tok: Any, window: int) -> TextWindows:
    d = Path(tempfile.mkdtemp())
    (d / "held.txt").write_text(text, encoding="utf-8")
    return TextWindows([d / "held.txt"], tok.encode, window=window)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--gpt2-windows", type=int, default=16)
    ap.add_argument("--models", default="demo-lm,gpt2-size,digits-cnn")
    args = ap.parse_args()
    which = set(args.models.split(","))
    rows = []
    with torch_threads(args.threads):
        if "demo-lm" in which:
            train, held = doc_topics_text()
            lm, tok, _ = train_lm(train, held, steps=200)
            m = DemoLM(lm, tok, source="demo lm")
            rows.append(measure("demo-lm (V=2000, d=64)", m,
                                _text_windows(held, tok, 32), 16, args.repeat))
        if "gpt2-size" in which:
            torch.manual_seed(0)
            big = TinyLM(50257, d=768, layers=12, heads=12, context=128)
            gm = TorchModuleModel(big, head_name="head", source="gpt2-size")
            ids = np.random.default_rng(0).integers(0, 50257, size=(args.gpt2_windows, 128))
            rows.append(measure("gpt2-size (V=50257, d=768, 12 layers)", gm, ArrayInputs(ids),
                                4, args.repeat))
        if "digits-cnn" in which:
            split = digits_split()
            cnn, _ = train_digits_cnn(split, epochs=2)
            rows.append(measure("digits-cnn (V=10, d=64)", digits_model(cnn, split.labels,
                                                                       source="cnn"),
                                ArrayInputs(split.x_test), 128, args.repeat))
    print(f"threads={args.threads} repeat={args.repeat} (best of)")
    print("streaming overhead = behaviour pass (forward passes + accumulators) / forward passes "
          "- 1;\nfixed = views, rank correlations, claims (once per audit, not per input); co-top "
          "= the top-two feasibility of every pair (skipped for V > 5000)")
    print("CPU = this process's CPU seconds (time.process_time: torch, numpy and BLAS on one "
          "thread each),\nthe figure that other load on the machine does not inflate")
    print(f"{'model':40s} {'preds':>6s} {'forward s':>9s} {'behav. s':>9s} {'streaming':>9s} "
          f"{'fwd CPU s':>9s} {'beh. CPU s':>10s} {'stream. CPU':>11s} "
          f"{'fixed s':>8s} {'co-top s':>8s} {'audit s':>8s} {'total overhead':>14s}")
    for r in rows:
        print(f"{r['model']:40s} {r['predictions']:6d} {r['forward_s']:9.3f} "
              f"{r['behaviour_s']:9.3f} {100 * r['behaviour_overhead']:8.1f}% "
              f"{r['forward_cpu_s']:9.3f} {r['behaviour_cpu_s']:10.3f} "
              f"{100 * r['behaviour_overhead_cpu']:10.1f}% "
              f"{r['fixed_s']:8.2f} {r['co_top_s']:8.2f} {r['audit_s']:8.2f} "
              f"{100 * r['overhead']:13.1f}%")


if __name__ == "__main__":
    main()
