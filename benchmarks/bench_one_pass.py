"""Commands of order V d, and ``inspect``, on a Llama-3-sized head, against their floors
measured in the same run.

    python benchmarks/bench_one_pass.py [--file W.npy] [--dir DIR] [--repeat 3] [--no-inspect]

Builds (once) a 128256 x 4096 float32 ``.npy`` (2.1 GB; ``benchmarks/bench_memory.py``'s
rows), or takes ``--file``. Every figure is a whole fresh process, timed from outside
(interpreter start and imports included), the best of ``--repeat``, with its peak resident
memory (``getrusage`` of the child: a memory map's page-cache pages count, read(2)'s do not).

* **floor, one pass**: a fresh Python process that memory-maps the file and sums its rows in
  float64, in blocks of 1024 rows (the mean row): what any command that looks at every row
  once costs. Each O(V d) command is printed as a ratio to it: a cosine of two labels in the
  raw, centered, normalized and differences views, the neighbours of two labels, and the
  rows' norms and mean through the API.
* **floor, covariance**: the d x d covariance of the centered rows by blocked DSYRK in float64
  (V d^2 / 2 multiply-adds), the file read in blocks, in a fresh process: what ``inspect``
  (whose causal view needs it) cannot go below.

Not run by the test suite: minutes, and 2.1 GB on disk.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import make_npy

V, D = 128256, 4096

_PASS = """
import sys, numpy as np
W = np.load(sys.argv[1], mmap_mode="r")
t = np.zeros(W.shape[1])
for s in range(0, W.shape[0], 1024):
    t += np.asarray(W[s:s + 1024], dtype=np.float64).sum(axis=0)
print(t[0])
"""

_COV = """
import sys, numpy as np
from scipy.linalg.blas import dsyrk
W = np.load(sys.argv[1], mmap_mode="r")
V, d = W.shape
m = np.zeros(d)
for s in range(0, V, 1024):
    m += np.asarray(W[s:s + 1024], dtype=np.float64).sum(axis=0)
m /= V
cov = np.zeros((d, d), order="F")
for s in range(0, V, 2048):
    C = np.asarray(W[s:s + 2048], dtype=np.float64) - m
    cov = dsyrk(1.0, C.T, beta=1.0, c=cov, trans=0, overwrite_c=1)
print(cov[0, 0])
"""

_NORMS = """
import sys
from unembed import load_head_file
head = load_head_file(sys.argv[1])
print(head.stats.norms()[:2], head.stats.mean()[:2])
"""


def run(argv: list[str], repeat: int) -> tuple[float, float]:
    """(best wall seconds, peak RSS bytes of that run) of a fresh process (``os.wait4``
    gives the child's own resource usage)."""
    best, rss = float("inf"), 0.0
    for _ in range(repeat):
        with tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                err.seek(0)
                raise SystemExit(f"{' '.join(argv[:4])}...: {err.read().decode()[-800:]}")
        if wall < best:
            best, rss = wall, usage.ru_maxrss * 1024.0
    return best, rss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", default=None)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-inspect", action="store_true")
    args = ap.parse_args()
    if args.file:
        path = Path(args.file)
    else:
        folder = Path(args.dir or tempfile.mkdtemp(prefix="unembed-bench-"))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "llama_W.npy"
        make_npy(path, V, D)
    py = sys.executable
    cli = [py, "-m", "unembed"]
    f = str(path)
    import numpy as np

    shape = np.load(path, mmap_mode="r").shape
    head64 = 8 * shape[0] * shape[1]
    run([py, "-c", _PASS, f], 1)  # the file into the page cache, as every command finds it
    print(f"{path}: {shape[0]} x {shape[1]}, float64 head {head64 / 2**30:.2f} GiB; load "
          f"{os.getloadavg()[0]:.1f}; best of {args.repeat} fresh processes, whole process")
    floor, floor_rss = run([py, "-c", _PASS, f], args.repeat)
    print(f"  floor: memory map + float64 mean row in blocks   {floor:6.2f} s  peak RSS "
          f"{floor_rss / 2**30:5.2f} GiB")
    work = {
        "cosine A B --view raw": [*cli, "cosine", f, "#5", "#9", "--view", "raw"],
        "cosine A B --view centered": [*cli, "cosine", f, "#5", "#9", "--view", "centered"],
        "cosine A B --view normalized": [*cli, "cosine", f, "#5", "#9", "--view",
                                         "normalized"],
        "cosine A B --view differences": [*cli, "cosine", f, "#5", "#9", "--view",
                                          "differences"],
        "neighbours A B -k 10 (centered)": [*cli, "neighbours", f, "#5", "#9", "-k", "10"],
        "neighbours A B -k 10 --view raw": [*cli, "neighbours", f, "#5", "#9", "-k", "10",
                                            "--view", "raw"],
        "API: head.stats.norms() and mean()": [py, "-c", _NORMS, f],
    }
    for name, argv in work.items():
        t, rss = run(argv, args.repeat)
        print(f"  {name:<36} {t:6.2f} s  {t / floor:4.2f}x the floor  peak RSS "
              f"{rss / 2**30:5.2f} GiB ({rss / head64:.2f}x the float64 head)  load "
              f"{os.getloadavg()[0]:.1f}", flush=True)
    if not args.no_inspect:
        cov, cov_rss = run([py, "-c", _COV, f], 1)
        print(f"  floor: the centered covariance by DSYRK in float64 {cov:6.2f} s  peak RSS "
              f"{cov_rss / 2**30:5.2f} GiB")
        t, rss = run([*cli, "inspect", f, "--json"], 1)
        print(f"  {'inspect --json':<36} {t:6.2f} s  {t / cov:4.2f}x the covariance  peak RSS "
              f"{rss / 2**30:5.2f} GiB ({rss / head64:.2f}x the float64 head)  load "
              f"{os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
