"""Every label's top-10 neighbours on a GPT-2-sized head, against the matrix-product floor.

    python benchmarks/bench_neighbours.py [--V 50257] [--d 768] [--view centered] [--repeat 2]

The floor, measured in the same run: the same float64 products of unit rows, query chunk by
label block (what any exact all-pairs search must compute), with nothing kept. ``unembed``'s
:func:`unembed.neighbours.neighbours` adds the exact top-k selection (partition, stable merge,
ties by index) and the view's rows. Prints both times (best of ``--repeat``) and the ratio;
the target is <= 1.3x. For reference, the tool a user would otherwise reach for,
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
    args = ap.parse_args()
    from unembed import Head
    from unembed.neighbours import _unit_rows, neighbours

    rng = np.random.default_rng(0)
    head = Head(rng.standard_normal((args.V, args.d)) * 0.1 + rng.standard_normal(args.d) * 0.3)
    idx = np.arange(args.V)
    U = _unit_rows(head, idx, args.view, None)  # also warms the head's cached statistics

    def floor() -> None:
        chunk = 4096
        step = max(args.k + 1, min(8192, (1 << 23) // chunk))
        for s in range(0, args.V, chunk):
            Q = U[s:s + chunk]
            for b in range(0, args.V, step):
                Q @ U[b:b + step].T

    def ours() -> None:
        neighbours(head, None, k=args.k, view=args.view)

    def best(f) -> float:
        ts = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        return min(ts)

    t_floor = best(floor)
    t_ours = best(ours)
    print(f"{args.V} x {args.d}, every label's top-{args.k} ({args.view} view), float64")
    print(f"  matrix-product floor  {t_floor:8.2f} s")
    print(f"  unembed neighbours    {t_ours:8.2f} s   ({t_ours / t_floor:.2f} x the floor)")
    try:
        from sklearn.neighbors import NearestNeighbors
    except ImportError:
        return
    t0 = time.perf_counter()
    nn = NearestNeighbors(n_neighbors=args.k + 1, metric="cosine", algorithm="brute").fit(U)
    nn.kneighbors(U)
    t_sk = time.perf_counter() - t0
    print(f"  scikit-learn brute    {t_sk:8.2f} s   ({t_sk / t_floor:.2f} x the floor)")


if __name__ == "__main__":
    main()
