"""Every label's top-10 neighbours on a GPT-2-sized head, against the matrix-product floor.

    python benchmarks/bench_neighbours.py [--V 50257] [--d 768] [--view centered] [--repeat 2]
                                          [--no-sklearn]

The floor, measured in the same run: the same float64 products of unit rows, query chunk by
label block (what a float64 all-pairs search must compute), with nothing kept; and the same
products in float32 (what unembed computes: float32 products with a proven bound on their
rounding, then float64 re-scores of the few candidates that bound leaves). ``unembed``'s
:func:`unembed.neighbours.neighbours` adds the exact top-k selection and the view's rows.
Prints the times (best of ``--repeat``), the ratios and the load average; the target is <= 1.3x
the float64 floor. For reference, the tool a user would otherwise reach for,
``sklearn.neighbors.NearestNeighbors(metric="cosine", algorithm="brute")``, is timed on the same
rows when scikit-learn is installed (float64, same k).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--V", type=int, default=50257)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--view", default="centered")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn's timing")
    args = ap.parse_args()
    from unembed import Head
    from unembed.neighbours import _unit_rows, neighbours

    rng = np.random.default_rng(0)
    head = Head(rng.standard_normal((args.V, args.d)) * 0.1 + rng.standard_normal(args.d) * 0.3)
    idx = np.arange(args.V)
    U = _unit_rows(head, idx, args.view, None)  # also warms the head's cached statistics

    def floor_of(X: np.ndarray):
        def floor() -> None:
            chunk = 4096
            step = max(args.k + 1, min(8192, (1 << 23) // chunk))
            for s in range(0, args.V, chunk):
                Q = X[s:s + chunk]
                for b in range(0, args.V, step):
                    Q @ X[b:b + step].T
        return floor

    def ours() -> None:
        neighbours(head, None, k=args.k, view=args.view)

    cpu: dict[str, float] = {}

    def best(f, name: str = "") -> float:
        ts, cs = [], []
        for _ in range(args.repeat):
            c0, t0 = time.process_time(), time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
            cs.append(time.process_time() - c0)
        cpu[name] = min(cs)
        return min(ts)

    import os

    load0 = os.getloadavg()[0]
    t_floor = best(floor_of(U), "floor64")
    t_floor32 = best(floor_of(U.astype(np.float32)), "floor32")
    t_ours = best(ours, "ours")
    print(f"{args.V} x {args.d}, every label's top-{args.k} ({args.view} view), exact float64 "
          f"(load average {load0:.2f} before, {os.getloadavg()[0]:.2f} after)")
    print(f"  float64 matrix-product floor  {t_floor:8.2f} s")
    print(f"  float32 matrix-product floor  {t_floor32:8.2f} s")
    print(f"  unembed neighbours            {t_ours:8.2f} s   ({t_ours / t_floor:.2f} x the "
          f"float64 floor, {t_ours / t_floor32:.2f} x the float32 floor)")
    print(f"  CPU seconds (all threads): floor64 {cpu['floor64']:.1f}, floor32 "
          f"{cpu['floor32']:.1f}, unembed {cpu['ours']:.1f} ({cpu['ours'] / cpu['floor64']:.2f} "
          f"x the float64 floor)")
    if args.no_sklearn:
        return
    try:
        from sklearn.neighbors import NearestNeighbors
    except ImportError:
        return
    t0 = time.perf_counter()
    nn = NearestNeighbors(n_neighbors=args.k + 1, metric="cosine", algorithm="brute").fit(U)
    nn.kneighbors(U)
    t_sk = time.perf_counter() - t0
    print(f"  scikit-learn brute            {t_sk:8.2f} s   ({t_sk / t_floor:.2f} x the float64 "
          f"floor)")


if __name__ == "__main__":
    main()
