"""Benchmark: the whole-vocabulary argmaxable check against exact LPs for every label.

Two heads, built in-process (no download):
* "gpt2-like": V = 50257, d = 768, stored as float32, rows = a shared mean direction plus
  spread with a decaying spectrum (the anisotropy of real LM heads: mean cosine ~0.3);
* "planted": the same head with ``--planted`` rows replaced by convex combinations of 2..6
  other rows (then rounded to float32), so exactly those labels are unargmaxable.

For each head it times :func:`unembed.feasibility.argmaxable_all` and the baseline, one exact LP
per label over all V - 1 competitors (no fast pass, no row generation). The baseline is timed
on ``--sample`` random labels and extrapolated to V labels (running it for every label would
take days): the ratio printed is (extrapolated baseline) / (whole-vocabulary check), both
measured in the same run on the same machine.

    python benchmarks/bench_argmaxable.py              # full size (minutes)
    python benchmarks/bench_argmaxable.py --V 5000     # quick
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def gpt2_like(V: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    spectrum = 1.0 / np.sqrt(1.0 + np.arange(d) / 16.0)
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    spread = (rng.standard_normal((V, d)) * spectrum) @ basis.T * 0.12
    mean = rng.standard_normal(d)
    mean *= 0.8 * float(np.linalg.norm(spread, axis=1).mean()) / np.linalg.norm(mean)
    return (spread + mean).astype(np.float32)


def plant(W: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    W = W.astype(np.float64)
    planted = rng.choice(W.shape[0], n, replace=False)
    others = np.setdiff1d(np.arange(W.shape[0]), planted)
    for p in planted:
        k = int(rng.integers(2, 7))
        src = rng.choice(others, k, replace=False)
        W[p] = rng.dirichlet(np.ones(k)) @ W[src]
    return W.astype(np.float32), np.sort(planted)


def baseline_lp(head, i: int) -> float:  # type: ignore[no-untyped-def]
    """One exact LP over all V - 1 rows (the same formulation, no generation)."""
    from unembed.feasibility._core import make_space, solve_lp

    sp = make_space(head, bias=True, radius=None, rtol=1e-6, func="bench")
    others = np.array([k for k in range(head.n_labels) if k != i], dtype=np.int64)
    P = np.full(others.size, i, dtype=np.int64)
    t0 = time.perf_counter()
    solve_lp(sp, P, others, np.zeros(0, np.int64), np.zeros(0, np.int64))
    return time.perf_counter() - t0


def run(name: str, W: np.ndarray, planted: np.ndarray | None, sample: int, workers: int,
        seed: int, co_top: int = 0) -> dict[str, object]:
    from unembed import Head
    from unembed.feasibility import argmaxable_all

    head = Head(W)
    t0 = time.perf_counter()
    res = argmaxable_all(head, workers=workers, progress=True)
    t_all = time.perf_counter() - t0
    rng = np.random.default_rng(seed + 2)
    labels = rng.choice(head.n_labels, sample, replace=False)
    t_lp = [baseline_lp(head, int(i)) for i in labels]
    per = float(np.mean(t_lp))
    est = per * head.n_labels / max(workers, 1)
    out = {
        "head": name, "V": head.n_labels, "d": head.d, "workers": workers,
        "check_s": round(t_all, 1),
        "fast_pass_labels": int((res.method == "fast").sum()),
        "lp_labels": int((res.method == "lp").sum()),
        "unargmaxable": len(res.unargmaxable),
        "undecided": len(res.undecided),
        "baseline_lp_s_per_label": round(per, 2),
        "baseline_all_labels_est_s": round(est, 0),
        "ratio_baseline_over_check": round(est / t_all, 1),
        "narrowest_margin": (float(res.narrowest[0].extra.get("lp_optimum",
                                                              res.narrowest[0].margin))
                             if res.narrowest else None),
        "narrowest_exact": res.narrowest_exact,
    }
    if planted is not None:
        got = sorted(head.index(x) for x in res.unargmaxable)
        out["planted_exactly_reported"] = got == planted.tolist()
    if co_top:
        from unembed.feasibility import co_top_matrix

        t0 = time.perf_counter()
        m = co_top_matrix(head, rng.choice(head.n_labels, co_top, replace=False).tolist())
        out[f"co_top_{co_top}_labels_s"] = round(time.perf_counter() - t0, 1)
        out["co_top_feasible_pairs"] = int(m.feasible.sum() // 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--V", type=int, default=50257)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--planted", type=int, default=50)
    ap.add_argument("--sample", type=int, default=2, help="labels timed for the baseline")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=("gpt2-like", "planted"), default=None)
    ap.add_argument("--co-top", type=int, default=20,
                    help="also time co_top_matrix on this many random labels (0: skip)")
    a = ap.parse_args()
    W = gpt2_like(a.V, a.d, a.seed)
    for name in ("gpt2-like", "planted"):
        if a.only and name != a.only:
            continue
        if name == "planted":
            Wp, planted = plant(W, a.planted, a.seed)
            r = run(name, Wp, planted, a.sample, a.workers, a.seed, a.co_top)
        else:
            r = run(name, W, None, a.sample, a.workers, a.seed, a.co_top)
        print("  ".join(f"{k}={v}" for k, v in r.items()), flush=True)


if __name__ == "__main__":
    main()
