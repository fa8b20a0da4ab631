"""Core operations on a GPT-2-sized head (V = 50257, d = 768, float32 storage, a shared mean
direction plus spread), each as a ratio to a floor measured in the same run:

* Head construction (validation: finite, no zero rows, no identical rows; float64 copy)
  vs. a plain float64 copy of W;
* translation_for_cosine with its equivalence check on 256 hidden states
  vs. two logit passes on those states (the least any check costs);
* the summary behind ``unembed inspect`` vs. one covariance C^T C of the rows.

Run: ``.venv/bin/python benchmarks/bench_core.py`` (or ``make bench``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from unembed import Head, translation_for_cosine
from unembed.equivalence import random_hidden
from unembed.summary import summarize


def best_of(f: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(1234)
    V, d = 50257, 768
    W = (rng.standard_normal((V, d)) * 0.1 + rng.standard_normal(d) * 0.3).astype(np.float32)
    head = Head(W)
    H = random_hidden(head, 256)
    rows = []
    floor = best_of(lambda: np.asarray(W, dtype=np.float64).copy())
    t = best_of(lambda: Head(W))
    rows.append(("Head(W) validation", t, floor, "float64 copy of W"))
    floor = best_of(lambda: (head.logits(H), head.logits(H)))
    t = best_of(lambda: translation_for_cosine(head, 100, 200, -1.0, inputs=H))
    rows.append(("translation_for_cosine + check", t, floor, "2 logit passes, 256 inputs"))
    C = head.W - head.W.mean(0)
    floor = best_of(lambda: C.T @ C, repeat=2)
    t = best_of(lambda: summarize(Head(W)), repeat=1)
    rows.append(("summarize (unembed inspect)", t, floor, "C^T C of the rows"))
    print(f"{'operation':<34}{'seconds':>9}{'floor s':>9}{'ratio':>8}  floor")
    for name, t, f, what in rows:
        print(f"{name:<34}{t:>9.3f}{f:>9.3f}{t / f:>8.1f}  {what}")


if __name__ == "__main__":
    main()
