"""The audit's per-batch kernel on a GPT-2-sized batch of float32 logits (512 x 50257).

Compared in one run, each the best of ``--repeat`` in this process's CPU seconds
(``time.process_time``; numpy, BLAS and torch on one thread each, so other load on the
machine does not inflate the figures):

* ``summarise_numpy``: what the audit runs (striped top-k per cached chunk, float64 exp, row
  sums, weighted column sums);
* ``torch.topk + float64``: the previous kernel (``torch.topk`` on the whole batch, then the
  same float64 arithmetic), what a torch user would write;
* ``argpartition + float64``: ``np.argpartition`` on the whole batch, then the same;
* floors: one float64 exp of the batch alone, one float32 max over it.

    python benchmarks/bench_kernels.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from unembed.accumulators import LabelTally
from unembed.kernels import summarise_numpy


def _float64_rest(z: np.ndarray, top: np.ndarray, v: int) -> None:
    step = max(1, (1 << 19) // v)
    buf = np.empty((step, v))
    sum_p = np.zeros(v)
    for r0 in range(0, z.shape[0], step):
        zc = z[r0:r0 + step]
        e = buf[: zc.shape[0]]
        np.exp(zc, out=e, dtype=np.float64)
        sc = e.sum(axis=1)
        sum_p += (1.0 / sc) @ e


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    n, v = 512, 50257
    z = (np.random.default_rng(0).standard_normal((n, v), dtype=np.float32) * 3)
    zt = torch.from_numpy(z)

    def torch_topk() -> None:
        _float64_rest(z, torch.topk(zt, 5, dim=1).indices.numpy(), v)

    def argpartition() -> None:
        _float64_rest(z, np.argpartition(z, v - 5, axis=1)[:, v - 5:], v)

    e = np.empty((n, v))
    cases: dict[str, Callable[[], object]] = {
        "summarise_numpy (the audit's)": lambda: summarise_numpy(z, "softmax", 5,
                                                                 LabelTally.empty(v)),
        "torch.topk + float64 (previous)": torch_topk,
        "argpartition + float64": argpartition,
        "floor: float64 exp alone": lambda: np.exp(z, out=e, dtype=np.float64),
        "floor: float32 max alone": lambda: z.max(axis=1),
    }
    best: dict[str, float] = {}
    with threadpool_limits(1, user_api="blas"):
        for name, f in cases.items():
            f()
            ts = []
            for _ in range(args.repeat):
                c0 = time.process_time()
                f()
                ts.append(time.process_time() - c0)
            best[name] = min(ts)
    ref = best["summarise_numpy (the audit's)"]
    print(f"one batch of {n} x {v} float32 logits, top-5; CPU ms, best of {args.repeat}")
    for name, t in best.items():
        print(f"  {name:34s} {1e3 * t:8.1f} ms   {t / ref:5.2f} x the audit's")


if __name__ == "__main__":
    main()
