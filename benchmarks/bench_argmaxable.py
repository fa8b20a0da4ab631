"""Benchmark: unembed's whole-vocabulary argmaxable check against the tool a user would pick,
Grivas, Bogoychev & Lopez's pipeline (ACL 2022, "Low-Rank Softmax Can Have Unargmaxable
Classes in Theory but Rarely in Practice"), re-implemented here from the paper's description.

The pipeline, per label i (the paper's Section 4; their defaults):
1. Braid reflect (approximate): start at h = u_i; while the argmax j of W h + b is not i (at
   most ``--patience`` = 100 times), reflect h across the hyperplane
   (u_i - u_j) . h + b_i - b_j = 0. Argmaxable if i wins at a point inside the box
   [-100, 100]^d; otherwise go on to 2.
2. Chebyshev ball (exact): maximise r s.t. (u_k - u_i) . x + |u_k - u_i|_2 r <= b_i - b_k for
   every k != i, x in [-100, 100]^d, r >= 1e-8: the largest ball inside i's region of the box.
   Optimal = argmaxable (x is its witness); infeasible = unargmaxable. The paper solves it
   with Gurobi (feasibility tolerance 1e-9); a user without a Gurobi licence runs it with
   SciPy's HiGHS, here on HiGHS's default tolerances (primal feasibility 1e-7). Their code
   then asserts that argmax(W x + b) = i for every label called argmaxable; this benchmark
   records whether that check passes instead of stopping.

Heads, built in-process (no download), stored as float32:
* "gpt2-like": V = 50257, d = 768, rows = a shared mean direction plus spread with a decaying
  spectrum (the anisotropy of real LM heads: mean cosine ~0.3);
* "planted": the same head with ``--planted`` rows (16) replaced by convex combinations of 2..6
  other rows (then rounded to float32): exactly those labels are unargmaxable;
* "wide" (``--wide``): a naive-Bayes-like head, V = 142 labels, d = 100053, float16 (the
  language identifier of issue 13): V - 1 <= d, so no LP is needed at all.

What is timed: :func:`unembed.feasibility.argmaxable_all` on the whole head with ``--workers``
processes; the pipeline on ``--sample`` random labels (step 1, and step 2 for every sampled
label step 1 leaves) and on ``--lp-planted`` planted labels (step 1 then step 2), extrapolated
to all V labels on the same number of processes:
    (V x mean step-1 seconds + (labels step 1 leaves, estimated) x mean step-2 seconds) / workers.
Both are measured in the same run on the same machine; the ratio printed is that estimate
over unembed's time.

Floors, measured in the same run just before unembed (``--no-floor`` skips them): one float32
V x V x d product of the head's rows in 4096-row blocks (what the fast pass would cost with
every rival computed), and, when unembed's fast pass chose a sketch of rank k, one float32
V x V x (k + 1) product (the sketch's own bounds); each printed with unembed's ratio to it,
and the load average beside. ``--no-pipeline`` times unembed and its floors only:

    python benchmarks/bench_argmaxable.py --only planted --no-pipeline   # the issue's row

    python benchmarks/bench_argmaxable.py                    # full size (a few minutes)
    python benchmarks/bench_argmaxable.py --V 5000 --d 256   # quick
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

BOX = 100.0  # the paper's default box [-100, 100]^d
R_MIN = 1e-8  # the paper's lower bound on the Chebyshev radius


def gpt2_like(V: int, d: int, seed: int) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    spectrum = 1.0 / np.sqrt(1.0 + np.arange(d) / 16.0)
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    spread = (rng.standard_normal((V, d)) * spectrum) @ basis.T * 0.12
    mean = rng.standard_normal(d)
    mean *= 0.8 * float(np.linalg.norm(spread, axis=1).mean()) / np.linalg.norm(mean)
    return (spread + mean).astype(np.float32)


def plant(W: NDArray[np.float32], n: int, seed: int
          ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    rng = np.random.default_rng(seed + 1)
    W64 = W.astype(np.float64)
    planted = rng.choice(W.shape[0], n, replace=False)
    others = np.setdiff1d(np.arange(W.shape[0]), planted)
    for p in planted:
        k = int(rng.integers(2, 7))
        src = rng.choice(others, k, replace=False)
        W64[p] = rng.dirichlet(np.ones(k)) @ W64[src]
    return W64.astype(np.float32), np.sort(planted)


def wide_head(V: int, d: int, seed: int) -> NDArray[np.float16]:
    """Naive-Bayes-like rows: log feature probabilities per class (negative, heavy-tailed)."""
    rng = np.random.default_rng(seed + 3)
    counts = rng.gamma(0.3, 1.0, size=(V, d)) + 1e-3
    return np.log(counts / counts.sum(axis=1, keepdims=True)).astype(np.float16)


# ---------------------------------------------------------------------------------- the pipeline
@dataclass
class Verdict:
    label: int
    step: str  # "reflect" or "chebyshev"
    argmaxable: bool
    seconds: float
    iterations: int = 0
    radius: float | None = None
    own_check: bool | None = None  # argmax(W x + b) == i at the LP's point
    witness_margin: float | None = None  # z_i - max_k z_k at that point, float64


def braid_reflect(W: NDArray[np.floating], b: NDArray[np.floating], i: int, patience: int
                  ) -> tuple[bool, int]:
    """Step 1: reflections from h = u_i; True when i wins inside the box."""
    h = W[i].astype(W.dtype)
    j = int(np.argmax(W @ h + b))
    it = 0
    while j != i and it < patience:
        n = W[i] - W[j]
        nn = float(np.linalg.norm(n))
        if nn == 0:
            break
        n = n / nn
        h = h - 2.0 * (float(n @ h) + float(b[i] - b[j]) / nn) * n
        j = int(np.argmax(W @ h + b))
        it += 1
    return bool(j == i and np.abs(h).max() <= BOX), it


def chebyshev(W: NDArray[np.floating], b: NDArray[np.floating], i: int
              ) -> tuple[bool, float | None, NDArray[np.float64] | None]:
    """Step 2 with HiGHS on its default tolerances: (argmaxable, radius, point)."""
    from scipy.optimize import linprog

    A = np.delete(W - W[i], i, axis=0).astype(np.float64)
    rhs = np.delete(b[i] - b, i).astype(np.float64)
    cheb = np.linalg.norm(A, axis=1, keepdims=True)
    d = W.shape[1]
    c = np.zeros(d + 1)
    c[-1] = -1.0
    res = linprog(c, A_ub=np.hstack([A, cheb]), b_ub=rhs,
                  bounds=[(-BOX, BOX)] * d + [(R_MIN, None)], method="highs")
    if res.status != 0 or res.x is None:
        return False, None, None
    return True, float(res.x[-1]), np.asarray(res.x[:d], dtype=np.float64)


def pipeline_label(W: NDArray[np.floating], b: NDArray[np.floating], i: int, patience: int,
                   t_reflect: list[float]) -> Verdict:
    t0 = time.perf_counter()
    ok, it = braid_reflect(W, b, i, patience)
    t_reflect.append(time.perf_counter() - t0)
    if ok:
        return Verdict(i, "reflect", True, t_reflect[-1], it)
    t1 = time.perf_counter()
    ok, r, x = chebyshev(W, b, i)
    own = gap = None
    if ok and x is not None:
        z = W.astype(np.float64) @ x + b
        own = int(np.argmax(z)) == i
        gap = float(z[i] - np.delete(z, i).max())
    return Verdict(i, "chebyshev", ok, time.perf_counter() - t1, it, r, own, gap)


# ---------------------------------------------------------------------------------- floors
def _children_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def product_floor(X: NDArray[np.float32]) -> float:
    """Seconds for one float32 V x V x w product of X (V, w) with itself, in 4096-row
    blocks (4096 x 2048 tiles), nothing kept: what any exact all-pairs pass over these rows
    in float32 must at least compute (w = d: the fast pass without a sketch; w = k + 1: the
    sketch's own bounds at rank k)."""
    X = np.ascontiguousarray(X)
    V = X.shape[0]
    t0 = time.perf_counter()
    for s in range(0, V, 4096):
        Q = X[s:s + 4096]
        for b in range(0, V, 2048):
            Q @ X[b:b + 2048].T
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------- runs
def run(name: str, W: NDArray[np.floating], planted: NDArray[np.int64] | None,
        a: argparse.Namespace) -> dict[str, object]:
    from unembed import Head
    from unembed.feasibility import argmaxable_all

    head = Head(W)
    V = head.n_labels
    t_floor = product_floor(np.asarray(W, dtype=np.float32)) if not a.no_floor else None
    t0 = time.perf_counter()
    c0 = time.process_time()
    k0 = _children_cpu()
    res = argmaxable_all(head, workers=a.workers, progress=a.progress)
    t_unembed = time.perf_counter() - t0
    c_unembed = time.process_time() - c0
    k_unembed = _children_cpu() - k0  # the LP worker processes (reaped when the run ends)
    out: dict[str, object] = {
        "head": name, "V": V, "d": head.d, "dtype": str(W.dtype), "workers": a.workers,
        "unembed_s": round(t_unembed, 1),
        "unembed_cpu_s_this_process": round(c_unembed, 1),
        "unembed_cpu_s_lp_workers": round(k_unembed, 1),
        "load": _load(),
    }
    if t_floor is not None:
        out["floor_f32_VxVxd_s"] = round(t_floor, 1)
        out["ratio_unembed_over_floor"] = round(t_unembed / t_floor, 2)
    k = res.sketch.rank
    if k and not a.no_floor:
        rng = np.random.default_rng(a.seed + 4)
        t_sk = product_floor(rng.standard_normal((V, k + 1)).astype(np.float32))
        out["sketch_rank"] = k
        out["floor_f32_VxVx(k+1)_s"] = round(t_sk, 1)
        out["ratio_unembed_over_sketch_floor"] = round(t_unembed / t_sk, 2)
    out.update({
        "unembed_fast": int((res.method == "fast").sum()),
        "unembed_lp": int((res.method == "lp").sum()),
        "unembed_unargmaxable": len(res.unargmaxable),
        "unembed_undecided": len(res.undecided),
    })
    if planted is not None:
        got = sorted(head.index(x) for x in res.unargmaxable)
        out["unembed_planted_exact"] = got == planted.tolist()
    if a.no_pipeline:
        return out
    if V <= head.d + 1:  # the pipeline's own shortcut: fewer than d + 2 rows, nothing to find
        out["pipeline"] = "skipped: V <= d + 1, every label argmaxable by the paper's count"
        return out
    Wn = np.asarray(W)  # the pipeline works on the stored dtype, as the paper's code does
    b = np.zeros(V, dtype=Wn.dtype)
    rng = np.random.default_rng(a.seed + 2)
    pool = np.setdiff1d(np.arange(V), planted if planted is not None else [])
    sample = rng.choice(pool, a.sample, replace=False)
    t_reflect: list[float] = []
    verdicts = [pipeline_label(Wn, b, int(i), a.patience, t_reflect) for i in sample]
    left = [v for v in verdicts if v.step == "chebyshev"]
    lp_secs = [v.seconds for v in left]
    planted_v: list[Verdict] = []
    if planted is not None:
        for p in planted[: a.lp_planted]:
            v = pipeline_label(Wn, b, int(p), a.patience, t_reflect)
            planted_v.append(v)
            if v.step == "chebyshev":
                lp_secs.append(v.seconds)
    per_reflect = float(np.mean(t_reflect))
    per_lp = float(np.mean(lp_secs)) if lp_secs else 0.0
    n_planted = 0 if planted is None else int(planted.size)
    left_est = len(left) / a.sample * (V - n_planted) + n_planted
    est = (V * per_reflect + left_est * per_lp) / max(1, a.workers)
    out.update({
        "pipeline_sample": a.sample,
        "pipeline_reflect_s_per_label": round(per_reflect, 4),
        "pipeline_sample_left_to_lp": len(left),
        "pipeline_lp_s_per_label": round(per_lp, 1) if lp_secs else None,
        "pipeline_lp_labels_est": round(left_est, 1),
        "pipeline_all_labels_est_s": round(est, 0),
        "ratio_pipeline_over_unembed": round(est / t_unembed, 1),
    })
    if planted_v:
        out["pipeline_planted"] = [
            {"label": v.label, "step": v.step, "called_argmaxable": v.argmaxable,
             "radius": v.radius, "own_check_passes": v.own_check,
             "witness_margin": v.witness_margin, "unembed_tol_at_box": res.tol * BOX,
             "lp_s": round(v.seconds, 1)} for v in planted_v]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--V", type=int, default=50257)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--planted", type=int, default=16)
    ap.add_argument("--sample", type=int, default=200,
                    help="random labels run through the pipeline")
    ap.add_argument("--lp-planted", type=int, default=2,
                    help="planted labels run through the pipeline (each a full LP)")
    ap.add_argument("--patience", type=int, default=100)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=("gpt2-like", "planted", "wide"), default=None)
    ap.add_argument("--wide", action="store_true", help="also the 142 x 100053 float16 head")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--no-floor", action="store_true",
                    help="skip the float32 product floors (V x V x d, and V x V x (k + 1) "
                         "at the sketch's rank)")
    ap.add_argument("--no-pipeline", action="store_true",
                    help="skip the pipeline's sampled labels (unembed and its floors only)")
    a = ap.parse_args()
    names = [n for n in ("gpt2-like", "planted", "wide")
             if (a.only == n) or (a.only is None and (n != "wide" or a.wide))]
    W = gpt2_like(a.V, a.d, a.seed) if set(names) & {"gpt2-like", "planted"} else None
    for name in names:
        if name == "planted":
            assert W is not None
            Wp, planted = plant(W, a.planted, a.seed)
            r = run(name, Wp, planted, a)
        elif name == "wide":
            r = run(name, wide_head(142, 100053, a.seed), None, a)
        else:
            assert W is not None
            r = run(name, W, None, a)
        print("  ".join(f"{k}={v}" for k, v in r.items()), flush=True)


if __name__ == "__main__":
    main()
