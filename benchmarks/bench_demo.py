"""Wall time of ``unembed demo`` (train three models, audit each, write the linked report).

Prints the seconds of each part and the audits' time as a ratio of the training time measured
in the same run (the baseline: what training alone costs on this machine).

    python benchmarks/bench_demo.py [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from unembed.demo import run_demo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = run_demo(Path(d) / "demo", threads=args.threads, progress=False)
        wall = time.perf_counter() - t0
    s = res.seconds
    m = res.metrics
    print(f"threads={args.threads}")
    print(f"training {s['training']:.1f} s, audits {s['audits']:.1f} s "
          f"({s['audits'] / s['training']:.2f} x training), report "
          f"{wall - s['total']:.1f} s, wall {wall:.1f} s")
    print(f"cnn accuracy {m['cnn']['heldout_accuracy']:.4f}, logreg accuracy "
          f"{m['logreg']['heldout_accuracy']:.4f}, lm perplexity "
          f"{m['lm']['heldout_perplexity']:.1f} (unigram {m['lm']['unigram_perplexity']:.1f})")
    for name, a in res.audits.items():
        shown = ", ".join(f"claim {c.number} {'shown' if c.shown else 'NOT shown'}"
                          for c in a.claims)
        print(f"{name}: {shown}")


if __name__ == "__main__":
    main()
