"""Peak memory and time of every command on today's head shapes, against the file.

    python benchmarks/bench_memory.py [--shapes llama gemma] [--dir DIR] [--argmaxable SECONDS]
        [--commands cosine-centered cosine-causal cosine inspect counterexample
                    counterexample-dtype] [-n N] [--fast-blocks K]

Builds (once, in blocks) a Llama-3-sized head, 128256 x 4096 float32 as one ``.npy`` (2.1 GB),
and a Gemma-sized head, 256000 x 3584 bfloat16 in a two-shard safetensors checkpoint (1.8 GB),
then runs ``cosine`` (one view, the causal view, every view), ``inspect``, ``counterexample``
(in the file's dtype and with ``--dtype``: float16 for the Llama file, float32 for the Gemma
shard) and ``argmaxable`` (with ``--argmaxable SECONDS`` as a deadline; its JSON summary:
the sketch's rank and the share of rival logits computed exactly), each in a
fresh process (``benchmarks/_peak.py``), and prints, per command: seconds, peak resident
memory, peak / the float64 head (8 V d bytes; the bound is 1.5), seconds / one pass over the
file, wall and CPU (user + system: what a shared machine does not inflate), and the load
average. The floor, one pass over the file (read in 16 MiB blocks, the file in the page cache,
as every command then finds it), is measured in the same run. ``--fast-blocks K`` times
argmaxable's fast pass without the sketch (every rival computed: the direct V^2 d pass, the
baseline) on K blocks of 256 labels spread over the vocabulary, after one untimed block (a
fresh process;
its peak RSS is absolute, the interpreter included) and extrapolates it to the V / 256 blocks
of the whole vocabulary. ``--shapes small`` (32000 x 1024) checks the harness in seconds.
Each ``counterexample`` line is followed by its phases (``--json``'s ``seconds`` and
``cpu_seconds``: read, construct, write, verify) and its own floor, measured in the same run
as plain numpy (:func:`counterexample_floor`): writing V x d values in the output's dtype in
16 MiB blocks (fsync'd, as the command's atomic write is), plus one n x V x d float64 product
per head whose rows the verification must multiply (the original and the written one), and
the ratio of the command to that floor.
Needs about 1.5 x 8 V d bytes of free memory (10 GiB for the Gemma shape) and twice the
files' size on disk.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPES = {"llama": (128256, 4096), "gemma": (256000, 3584), "small": (32000, 1024)}
PEAK = Path(__file__).resolve().parent / "_peak.py"


def _rows(V: int, d: int, seed: int, step: int = 4096):
    rng = np.random.default_rng(seed)
    mean = rng.standard_normal(d, dtype=np.float32) * 0.5
    for s in range(0, V, step):
        e = min(V, s + step)
        yield (rng.standard_normal((e - s, d), dtype=np.float32) * 0.05 + mean)


def make_npy(path: Path, V: int, d: int) -> None:
    if path.exists():
        return
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f4", "fortran_order": False, "shape": (V, d)})
        for blk in _rows(V, d, 0):
            fh.write(blk.tobytes())


def make_bf16_checkpoint(folder: Path, V: int, d: int) -> Path:
    """Two shards: the embedding's first rows in one, lm_head.weight (bfloat16) in the other."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        return index
    folder.mkdir(parents=True, exist_ok=True)

    def header(tensors: dict[str, tuple[int, ...]]) -> bytes:
        h, off = {}, 0
        for k, shape in tensors.items():
            n = int(np.prod(shape)) * 2
            h[k] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
            off += n
        b = json.dumps(h).encode()
        b += b" " * (-len(b) % 8)
        return struct.pack("<Q", len(b)) + b

    small = folder / "model-00001-of-00002.safetensors"
    with open(small, "wb") as fh:
        fh.write(header({"model.embed_tokens.weight": (64, d)}))
        fh.write(np.zeros((64, d), dtype=np.uint16).tobytes())
    big = folder / "model-00002-of-00002.safetensors"
    with open(big, "wb") as fh:
        fh.write(header({"lm_head.weight": (V, d)}))
        for blk in _rows(V, d, 1):
            fh.write((blk.view(np.uint32) >> 16).astype(np.uint16).tobytes())
    index.write_text(json.dumps({"weight_map": {
        "model.embed_tokens.weight": small.name, "lm_head.weight": big.name}}))
    return index


def read_pass(path: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one pass over the file in 16 MiB reads, after a warming pass."""
    buf = bytearray(1 << 24)
    for timed in (False, True):
        t0, c0 = time.perf_counter(), time.process_time()
        with open(path, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass
        if timed:
            return time.perf_counter() - t0, max(time.process_time() - c0, 1e-3)
    return 0.0, 0.0


_FAST_RATE = """
import json, resource, sys, time
import numpy as np
from unembed.feasibility._core import make_space
from unembed.feasibility.fast_pass import Scores, fast_block
from unembed.sources import load_head_file
head = load_head_file(sys.argv[1])
V = head.n_labels
sp = make_space(head, bias=True, radius=None, rtol=1e-6, func="bench")
mean, norms = head.stats.mean(), head.stats.norms()
scores = Scores(head.W, sp.b.astype(np.float32), norms.astype(np.float32))
fast_block(scores, head.W, mean, norms, sp, np.arange(256), 6)  # warm-up, not timed
c0, t0 = time.process_time(), time.perf_counter()
k = int(sys.argv[2])
settled = 0
for start in np.linspace(0, V - 256, k).astype(int):
    low, *_ = fast_block(scores, head.W, mean, norms, sp, np.arange(start, start + 256), 6)
    settled += int((low > sp.tol).sum())
print(json.dumps({"seconds": (time.perf_counter() - t0) / k,
                  "cpu_seconds": (time.process_time() - c0) / k, "settled": settled,
                  "labels": 256 * k,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def counterexample_floor(folder: Path, V: int, d: int, n: int, dtype: str,
                         products: int = 2) -> dict[str, float]:
    """The physical floor of ``counterexample`` as plain numpy, (wall, CPU) seconds: writing
    a V x d matrix of ``dtype`` (float16 or float32; a bfloat16 is written as its 16 bits)
    in 16 MiB blocks to a file in ``folder``, fsync'd and deleted; and ``products`` n x V x d
    float64 products (n inputs times every row: one float64 block of rows multiplied in
    turn, so that only the flops are timed, no conversion or memory traffic)."""
    item = 2 if dtype in ("float16", "bfloat16") else 4
    npdt = np.float16 if item == 2 else np.float32
    step = max(1, (1 << 24) // (item * d))
    blk = np.random.default_rng(0).standard_normal((step, d)).astype(npdt)
    path = folder / "floor_write.bin"
    t0, c0 = time.perf_counter(), time.process_time()
    with open(path, "wb") as fh:
        for s in range(0, V, step):
            fh.write(memoryview(blk[: min(step, V - s)]))
        fh.flush()
        os.fsync(fh.fileno())
    write = (time.perf_counter() - t0, time.process_time() - c0)
    path.unlink()
    rng = np.random.default_rng(1)
    H = rng.standard_normal((n, d))
    rows = max(1, (1 << 24) // (8 * d))
    B = rng.standard_normal((rows, d))
    out = np.empty((n, rows))
    t0, c0 = time.perf_counter(), time.process_time()
    for s in range(0, V, rows):
        k = min(rows, V - s)
        np.matmul(H, B[:k].T, out=out[:, :k])
    product = (time.perf_counter() - t0, time.process_time() - c0)
    return {"write": write[0], "write_cpu": write[1], "product": product[0],
            "product_cpu": product[1], "products": products,
            "floor": write[0] + products * product[0],
            "floor_cpu": write[1] + products * product[1]}


def fast_rate(spec: str, blocks: int) -> dict[str, float]:
    """argmaxable's fast pass on ``blocks`` blocks of 256 labels spread over the vocabulary,
    in a fresh process: seconds per block (to extrapolate to V / 256 blocks)."""
    r = subprocess.run([sys.executable, "-c", _FAST_RATE, spec, str(blocks)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr[-500:]}  # type: ignore[dict-item]
    out: dict[str, float] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def sketch_floor(V: int, k: int) -> float:
    """Seconds for one float32 V x V x (k + 1) product of a random (V, k + 1) matrix with
    itself (``bench_argmaxable.product_floor``): the sketch's own bounds at rank k, the floor
    of argmaxable's fast pass through a sketch."""
    from bench_argmaxable import product_floor

    return product_floor(np.random.default_rng(0).standard_normal((V, k + 1), dtype=np.float32))


def peak(argv: list[str], deadline: int | None = None,
         stdout: Path | None = None) -> dict[str, float]:
    pre = ["--deadline", str(deadline)] if deadline else []
    if stdout is not None:
        pre = ["--stdout", str(stdout), *pre]
    r = subprocess.run([sys.executable, str(PEAK), *pre, *argv], capture_output=True,
                       text=True)
    lines = r.stdout.strip().splitlines()
    if not lines:
        return {"rc": r.returncode, "seconds": float("nan"), "peak_rss": float("nan"),
                "baseline_rss": float("nan"), "error": r.stderr[-500:]}
    out: dict[str, float] = json.loads(lines[-1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", nargs="+", default=["llama", "gemma"], choices=list(SHAPES))
    ap.add_argument("--dir", default=None)
    ap.add_argument("--argmaxable", type=int, default=0, metavar="SECONDS",
                    help="also run argmaxable, interrupted after SECONDS (0: skip)")
    ap.add_argument("--keep", action="store_true", help="keep the files")
    ap.add_argument("--commands", nargs="*",
                    default=["cosine-centered", "cosine-causal", "cosine", "inspect",
                             "counterexample", "counterexample-dtype"],
                    choices=["inspect", "cosine", "cosine-centered", "cosine-causal",
                             "counterexample", "counterexample-dtype"])
    ap.add_argument("--fast-blocks", type=int, default=0, metavar="K",
                    help="also time argmaxable's fast pass on K blocks of 256 labels and "
                    "extrapolate to the vocabulary (0: skip)")
    ap.add_argument("--workers", type=int, default=2,
                    help="argmaxable's LP workers (default 2, the machine's cores)")
    ap.add_argument("-n", type=int, default=1024,
                    help="random hidden states counterexample verifies on (default 1024)")
    args = ap.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="unembed-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    for name in args.shapes:
        V, d = SHAPES[name]
        if name in ("llama", "small"):
            data = folder / f"{name}_W.npy"
            make_npy(data, V, d)
            spec = str(data)
            out = folder / f"{name}_out.npy"
            other = "float16"
        else:
            index = make_bf16_checkpoint(folder / "gemma", V, d)
            data = folder / "gemma" / "model-00002-of-00002.safetensors"
            spec = f"{index}:lm_head.weight"
            out = folder / "gemma_out.safetensors"
            other = "float32"
        head64 = 8 * V * d
        size = data.stat().st_size
        floor, floor_cpu = read_pass(data)
        print(f"\n{name}: {V} x {d}, file {size / 2**30:.2f} GiB, float64 head "
              f"{head64 / 2**30:.2f} GiB, one pass over the file {floor:.2f} s "
              f"(CPU {floor_cpu:.2f} s)")
        every = {
            "inspect": ["inspect", spec, "--json"],
            "cosine": ["cosine", spec, "#5", "#9", "--json"],
            "cosine-centered": ["cosine", spec, "#5", "#9", "--view", "centered", "--json"],
            "cosine-causal": ["cosine", spec, "#5", "#9", "--view", "causal", "--json"],
            "counterexample": ["counterexample", spec, "--pair", "#5", "#9", "--target",
                               "-0.5", "--out", str(out), "--force", "--json", "-n",
                               str(args.n)],
            "counterexample-dtype": ["counterexample", spec, "--pair", "#5", "#9", "--target",
                                     "-0.5", "--out", str(out), "--force", "--json", "-n",
                                     str(args.n), "--dtype", other],
        }
        cmds = {k: every[k] for k in args.commands}
        if args.argmaxable:
            cmds["argmaxable"] = ["argmaxable", spec, "--json", "--workers",
                                  str(args.workers)]
        for label, argv in cmds.items():
            saved = folder / f"{name}_{label}.json"
            keep_json = label == "argmaxable" or label.startswith("counterexample")
            r = peak(argv, args.argmaxable if label == "argmaxable" else None,
                     saved if keep_json else None)
            status = {0: "ok", 130: f"interrupted at {args.argmaxable} s"}.get(
                int(r["rc"]), f"rc {r['rc']}")
            cpu = r.get("cpu_seconds", float("nan"))
            load = os.getloadavg()[0]
            print(f"  {label:<20} wall {r['seconds']:7.1f} s ({r['seconds'] / floor:6.1f} x one "
                  f"pass)  CPU {cpu:7.1f} s ({cpu / floor_cpu:6.1f} x)  peak RSS "
                  f"{r['peak_rss'] / 2**30:5.2f} GiB ({r['peak_rss'] / head64:.2f} x the float64 "
                  f"head)  {status}  load {load:.1f}", flush=True)
            if label == "argmaxable" and int(r["rc"]) == 0:
                res = json.loads(saved.read_text())
                sk = res["sketch"]
                share = sk["exact_share"]
                print(f"    {res['counts']}; fast pass {res['fast_pass']}, LPs {res['lp']}; sketch "
                      f"rank {sk['rank']} ({sk['chosen']}; "
                      + (f"{100 * share:.3g}% of rival logits exact" if share is not None
                         else "share not counted") + f"); narrowest exact: "
                      f"{res['narrowest_exact']}; LP workers: peak RSS "
                      f"{r['children_peak_rss'] / 2**30:.2f} GiB each (shared rows included), "
                      f"CPU {r['children_cpu_seconds']:.1f} s in all", flush=True)
                if sk["rank"]:
                    fl = sketch_floor(V, int(sk["rank"]))
                    print(f"    floor (same run): the sketch's own V x V x (k + 1) float32 "
                          f"products at rank k = {sk['rank']}: {fl:.1f} s; argmaxable "
                          f"{r['seconds'] / fl:.2f}x of it  load {os.getloadavg()[0]:.1f}",
                          flush=True)
            if label.startswith("counterexample") and int(r["rc"]) == 0:
                res = json.loads(saved.read_text())
                if out.exists():
                    out.unlink()
                wrote = res["verification"]["dtype"] if label == "counterexample" else other
                f = counterexample_floor(folder, V, d, args.n, wrote)
                ph = ", ".join(f"{k} {v:.1f} s (CPU {res['cpu_seconds'][k]:.1f})"
                               for k, v in res["seconds"].items())
                print(f"    phases: {ph}\n    floor (same run, plain numpy): writing V x d "
                      f"{wrote} {f['write']:.1f} s (CPU {f['write_cpu']:.1f}) + "
                      f"{f['products']} x the n = {args.n} float64 products "
                      f"{f['product']:.1f} s (CPU {f['product_cpu']:.1f}) each = "
                      f"{f['floor']:.1f} s (CPU {f['floor_cpu']:.1f}); the command: "
                      f"{r['seconds'] / f['floor']:.2f}x the floor (CPU "
                      f"{cpu / f['floor_cpu']:.2f}x)  load {os.getloadavg()[0]:.1f}",
                      flush=True)
            if saved.exists():
                saved.unlink()
            if label.startswith("counterexample") and out.exists():
                out.unlink()
        if args.fast_blocks:
            r = fast_rate(spec, args.fast_blocks)
            if "error" in r:
                print(f"  fast pass: failed: {r['error']}")
            else:
                nb = V / 256
                print(f"  argmaxable fast pass, every rival computed (--sketch 0, the direct "
                      f"V^2 d pass): {r['seconds']:.1f} s wall, {r['cpu_seconds']:.1f} "
                      f"s CPU per block of 256 labels ({int(r['settled'])} of "
                      f"{int(r['labels'])} settled); x {nb:.0f} blocks = {r['seconds'] * nb:.0f} "
                      f"s wall, {r['cpu_seconds'] * nb:.0f} s CPU for the vocabulary; peak RSS "
                      f"{r['peak_rss'] / 2**30:.2f} GiB ({r['peak_rss'] / head64:.2f} x)  "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
        if out.exists() and not args.keep:
            out.unlink()
    if not args.keep and args.dir is None:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
