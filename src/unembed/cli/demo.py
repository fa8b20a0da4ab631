"""``unembed demo``: train three small models locally, audit each, write one linked report."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from unembed.cli._options import add_json_arg, positive_int
from unembed.cli._print import print_json


def register(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="train a CNN, a language model and a logistic regression locally and audit them",
        description="Train three small models on data that ships with Python and scikit-learn "
        "(no network; seeded; one torch thread): a CNN and a logistic regression on the digits, a "
        "transformer LM on the Python documentation topics. Then audit each and write "
        "DIR/index.html linking the three reports (numbers from this run).",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--force", action="store_true", help="replace DIR if it exists")
    p.add_argument("--quick", action="store_true",
                   help="train for a few seconds only (for tests; the models are then weak)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch threads (default 1: these models are too small to gain from "
                        "more, and extra threads spin against any other load)")
    add_json_arg(p)
    return p


def run(args: argparse.Namespace) -> int:
    from unembed.demo import run_demo
    from unembed.report import summary_lines

    def log(s: str) -> None:
        print(s, file=sys.stderr if args.json else sys.stdout, flush=True)

    from unembed._io import check_target

    check_target(args.out, force=args.force)  # before any work
    res = run_demo(args.out, quick=args.quick, seed=args.seed, threads=args.threads,
                   force=args.force, progress=sys.stderr.isatty() and not args.no_progress, log=log)
    if args.json:
        print_json({"out": str(res.out), "index": str(res.out / "index.html"),
                    "metrics": res.metrics, "seconds": res.seconds,
                    "claims": {n: [{"number": c.number, "shown": c.shown} for c in a.claims]
                               for n, a in res.audits.items()}})
        return 0
    for name, a in res.audits.items():
        print("\n".join(summary_lines(a, name=name)))
    print(f"report: {res.out / 'index.html'} ({res.seconds['total']:.0f} s)")
    return 0
