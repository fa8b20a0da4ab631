"""Every label's top-k neighbours (``neighbours --all``) on a GPT-2-sized head, against the
float32 matrix-product floor and FAISS's exact index, in one run.

    python benchmarks/bench_neighbours.py [--V 50257] [--d 768] [--view raw] [-k 10]
                                          [--repeat 1] [--no-faiss] [--no-sklearn]
                                          [--float64-floor]

* floor: one float32 V x V x d product of the unit rows in 4096-row blocks (4096 x 2048 tiles),
  nothing kept: what any exact all-pairs search in float32 must at least compute.
* unembed: :func:`unembed.neighbours.neighbour_arrays` for every label (half the float32
  product, the cosine being symmetric, plus the candidates' float64 re-score: exact in
  float64), then the JSON lines ``neighbours --all`` writes; phases timed apart.
* FAISS (optional, ``pip install faiss-cpu==1.15.1``, a benchmark dependency only):
  ``faiss.IndexFlatIP`` on the same normalised float32 rows with the same number of threads
  (``faiss.omp_set_num_threads``), k + 1 results per row (the row itself is among them).
  Exactness: the rows whose top-k labels (in order) differ from unembed's float64 answer.
* scikit-learn (when installed, unless ``--no-sklearn``): ``NearestNeighbors(metric="cosine",
  algorithm="brute")`` on the float64 unit rows, same k.
* unembed's own answer is checked against a plain float64 brute force on a sample of rows.

Prints each time (best of ``--repeat``) with the load average beside it, and the ratios.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable

import numpy as np


def _load() -> str:
    return "load " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _best(f: Callable[[], object], repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--V", type=int, default=50257)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--view", default="raw")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--no-faiss", action="store_true", help="skip FAISS's timing")
    ap.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn's timing")
    ap.add_argument("--float64-floor", action="store_true",
                    help="also time the float64 product floor")
    args = ap.parse_args()
    from threadpoolctl import threadpool_info

    from unembed import Head
    from unembed.cli.neighbours import _write_lines
    from unembed.few_neighbours import unit_rows
    from unembed.neighbours import NeighbourArrays, neighbour_arrays

    threads = max(int(p.get("num_threads", 1)) for p in threadpool_info()) if \
        threadpool_info() else os.cpu_count() or 1
    rng = np.random.default_rng(0)
    W = rng.standard_normal((args.V, args.d)) * 0.1 + rng.standard_normal(args.d) * 0.3
    head = Head(W)
    U = unit_rows(head, np.arange(args.V), args.view, None)  # also warms cached statistics
    U32 = np.ascontiguousarray(U, dtype=np.float32)
    print(f"{args.V} x {args.d}, every label's top-{args.k} ({args.view} view), "
          f"{threads} BLAS threads")

    def floor_of(X: np.ndarray) -> Callable[[], None]:
        def floor() -> None:
            for s in range(0, args.V, 4096):
                Q = X[s:s + 4096]
                for b in range(0, args.V, 2048):
                    Q @ X[b:b + 2048].T
        return floor

    t_floor = _best(floor_of(U32), args.repeat)
    print(f"  floor: float32 V x V x d product      {t_floor:8.2f} s   ({_load()})")
    if args.float64_floor:
        t64 = _best(floor_of(U), args.repeat)
        print(f"  float64 V x V x d product             {t64:8.2f} s   ({_load()})")

    res: dict[str, NeighbourArrays] = {}

    def ours() -> None:
        res["x"] = neighbour_arrays(head, None, k=args.k, view=args.view)

    t_ours = _best(ours, args.repeat)
    bi = res["x"].index
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        _write_lines(os.path.join(tmp, "n.jsonl"), head.labels, res["x"], {"view": args.view})
        t_write = time.perf_counter() - t0
    total = t_ours + t_write
    print(f"  unembed: exact top-k (float64)        {t_ours:8.2f} s   ({_load()})")
    print(f"  unembed: writing the JSON lines       {t_write:8.2f} s")
    print(f"  unembed --all, both                   {total:8.2f} s   "
          f"({total / t_floor:.2f} x the floor; target <= 1.3)")

    sample = rng.choice(args.V, size=min(args.V, 200), replace=False)
    wrong = 0
    for i in sample.tolist():
        c = U @ U[i]
        c[i] = -np.inf
        order = np.lexsort((np.arange(args.V), -c))[:args.k]
        wrong += order.tolist() != bi[i].tolist()
    print(f"  unembed vs float64 brute force: {wrong} of {sample.size} sampled rows differ")
    if not args.no_sklearn:
        try:
            from sklearn.neighbors import NearestNeighbors
        except ImportError:
            print("  scikit-learn not installed: skipped")
        else:
            t0 = time.perf_counter()
            NearestNeighbors(n_neighbors=args.k + 1, metric="cosine",
                             algorithm="brute").fit(U).kneighbors(U)
            t_sk = time.perf_counter() - t0
            print(f"  scikit-learn brute (float64)          {t_sk:8.2f} s   ({_load()}; "
                  f"{t_sk / total:.2f} x unembed --all)")

    if args.no_faiss:
        return
    try:
        import faiss
    except ImportError:
        print("  FAISS not installed (pip install faiss-cpu==1.15.1): skipped")
        return
    faiss.omp_set_num_threads(threads)
    got: dict[str, np.ndarray] = {}

    def flat() -> None:
        index = faiss.IndexFlatIP(args.d)
        index.add(U32)
        got["I"] = index.search(U32, args.k + 1)[1]

    t_faiss = _best(flat, args.repeat)
    I = got["I"]
    differ = 0
    for i in range(args.V):
        row = [j for j in I[i].tolist() if j != i][:args.k]
        differ += row != bi[i].tolist()
    print(f"  FAISS IndexFlatIP ({threads} threads)      {t_faiss:8.2f} s   ({_load()}; "
          f"{t_faiss / total:.2f} x unembed --all; {differ} of {args.V} rows' top-{args.k} "
          f"differ from the exact float64 answer)")


if __name__ == "__main__":
    main()
