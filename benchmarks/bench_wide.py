"""Wide heads (V << d): ``inspect`` and ``argmaxable`` against their floors, in one run.

    python benchmarks/bench_wide.py [--only inspect|lp] [--full-baseline]

* ``inspect``: :func:`unembed.summary.summarize` (what ``unembed inspect`` computes: all five
  views, the differences view from one V x V Gram matrix) on a 142 x 100053 float16
  naive-Bayes-like head (the shape of a real language identifier, widened to float64), against
  the floor measured in the same run: one float64 Gram matrix W W^T of the head, which every
  exact all-pairs view needs at least once.
* ``lp``: :func:`unembed.feasibility.argmaxable_all` on a 60 x 20000 float64 head with one row
  planted inside the hull of three others (affinely dependent rows: the span theorem does not
  apply, the LPs decide), LPs in the rows' span; against the same question for the planted
  label decided by one LP in R^d (the code path before the span reduction, measured in the same
  run), and with ``--full-baseline`` the whole ``argmaxable_all`` with LPs in R^d (minutes).

Prints each time and the ratio to its floor / baseline, with the load average.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np


def timed(f: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = f()
    return time.perf_counter() - t0, out


def cpu_timed(f: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call (CPU: this process, all threads)."""
    c0, t0 = time.process_time(), time.perf_counter()
    f()
    return time.perf_counter() - t0, time.process_time() - c0


def bench_inspect() -> None:
    from unembed import Head
    from unembed.summary import summarize

    r = np.random.default_rng(0)
    c = r.gamma(0.3, 1.0, (142, 100053)) + 1e-3
    W16 = np.log(c / c.sum(1, keepdims=True)).astype(np.float16)
    head = Head(W16.astype(np.float64))
    W = head.W
    from unembed._blocks import block_gram

    # the floor: one float64 Gram matrix, the faster of numpy's W @ W.T and row blocks
    f1, f2 = cpu_timed(lambda: W @ W.T), cpu_timed(lambda: block_gram(W))
    floor = f1 if f1[1] <= f2[1] else f2
    ours = cpu_timed(lambda: summarize(head))
    print(f"inspect, 142 x 100053 float16 head (widened to float64): summarize "
          f"{ours[0]:.2f} s wall, {ours[1]:.2f} s CPU; one Gram matrix W W^T {floor[0]:.2f} s "
          f"wall, {floor[1]:.2f} s CPU ({ours[0] / floor[0]:.1f}x the floor's wall time, "
          f"{ours[1] / floor[1]:.1f}x its CPU time)")


def bench_lp(full: bool) -> None:
    from unembed import Head
    from unembed.feasibility import argmaxable_all, is_argmaxable, space

    rng = np.random.default_rng(0)
    W = rng.standard_normal((60, 20000))
    W[7] = 0.3 * W[1] + 0.5 * W[2] + 0.2 * W[3]
    head = Head(W, strict=False)
    t_all, _ = timed(lambda: argmaxable_all(head, workers=1))
    t_one, one = timed(lambda: is_argmaxable(head, 7))
    space.SPAN_LPS = False  # the LPs in R^d, as before the span reduction
    try:
        t_rd, rd = timed(lambda: is_argmaxable(Head(W, strict=False), 7))
        t_full = timed(lambda: argmaxable_all(Head(W, strict=False), workers=1))[0] \
            if full else None
    finally:
        space.SPAN_LPS = True
    print(f"argmaxable, 60 x 20000 float64, one planted row: argmaxable_all {t_all:.2f} s "
          f"(LPs in the rows' span)")
    print(f"  the planted label alone: in the span {t_one:.2f} s ({one.status}), in R^d "
          f"{t_rd:.2f} s ({rd.status}): {t_rd / t_one:.0f}x")
    if t_full is not None:
        print(f"  argmaxable_all with LPs in R^d {t_full:.1f} s ({t_full / t_all:.0f}x)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=("inspect", "lp"))
    ap.add_argument("--full-baseline", action="store_true")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    if args.only in (None, "inspect"):
        bench_inspect()
    if args.only in (None, "lp"):
        bench_lp(args.full_baseline)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
