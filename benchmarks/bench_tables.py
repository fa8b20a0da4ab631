"""Benchmark: the long-format pair table against what a pandas user writes by hand.

Baseline (measured in the same run, same matrices): per view, a labelled DataFrame of the
(k, k) cosine matrix, ``.where`` the upper triangle, ``.stack()`` to (label_a, label_b) rows,
then ``pd.concat`` of the views. Floor: the four row-view similarity matrices alone
(:func:`unembed.views.similarity_matrix`), which both must compute.

Both tables are checked to hold the same rows before any time is reported.

    python benchmarks/bench_tables.py [--labels 500] [--d 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=int, default=500)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import pandas as pd

    from unembed import Head
    from unembed.tables import pairs_from_matrices
    from unembed.views import similarity_matrix

    k = args.labels
    head = Head(np.random.default_rng(0).normal(size=(k, args.d)),
                labels=[f"label {i}" for i in range(k)])
    views = ("raw", "centered", "normalized", "causal")

    def best(f):
        ts = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            out = f()
            ts.append(time.perf_counter() - t)
        return min(ts), out

    t_floor, sims = best(lambda: {v: similarity_matrix(head, None, v) for v in views})
    t_ours, table = best(lambda: pairs_from_matrices(head.labels, sims).to_frame())

    def by_hand():
        mask = np.triu(np.ones((k, k), dtype=bool), 1)
        parts = []
        for v, S in sims.items():
            df = pd.DataFrame(S, index=pd.Index(head.labels, name="label_a"),
                              columns=pd.Index(head.labels, name="label_b"))
            long = df.where(mask).stack().dropna().rename("cosine").reset_index()
            long.insert(2, "view", v)
            parts.append(long)
        return pd.concat(parts, ignore_index=True)

    t_hand, hand = best(by_hand)
    key = ["view", "label_a", "label_b"]
    a = table.astype({c: str for c in key}).sort_values(key).reset_index(drop=True)
    b = hand.sort_values(key).reset_index(drop=True)
    assert len(a) == len(b) == len(views) * k * (k - 1) // 2
    assert np.array_equal(a["cosine"].to_numpy(), b["cosine"].to_numpy())
    assert all(np.array_equal(a[c].to_numpy(), b[c].astype(str).to_numpy()) for c in key)
    print(f"pair table of {k} labels x {len(views)} views = {len(a)} rows (d = {args.d})")
    print(f"  floor (similarity matrices)      {t_floor:.3f} s")
    print(f"  unembed pair table -> DataFrame  {t_ours:.3f} s")
    print(f"  pandas by hand (where/stack)     {t_hand:.3f} s")
    print(f"  ratio by hand / unembed          {t_hand / t_ours:.2f}x")


if __name__ == "__main__":
    main()
