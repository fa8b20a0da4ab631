"""``unembed neighbours HEAD LABEL [LABEL ...] -k K --view VIEW``: the k nearest labels over the
whole vocabulary; ``--all --out FILE`` for every label's (JSON lines)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from unembed.cli._common import (
    add_head_args,
    add_json_arg,
    fmt,
    load_head,
    positive_int,
    print_json,
)
from unembed.neighbours import NEIGHBOUR_VIEWS


def register(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("neighbours", help="the k nearest labels over the whole vocabulary",
                       description="The k nearest labels of each LABEL over the whole "
                                   "vocabulary under one view (exact, blocked matrix products "
                                   "in float64; ties by label index).")
    add_head_args(p)
    p.add_argument("query", metavar="LABEL", nargs="*",
                   help="labels (their strings, or #N for row N)")
    p.add_argument("-k", type=positive_int, default=10, help="neighbours per label (default 10)")
    p.add_argument("--view", choices=NEIGHBOUR_VIEWS, default="centered",
                   help="the view (default: centered)")
    p.add_argument("--all", action="store_true",
                   help="every label's neighbours, written to --out as JSON lines")
    p.add_argument("--out", metavar="FILE", help="with --all: where to write")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    add_json_arg(p)
    return p


def run(args: argparse.Namespace) -> int:
    from unembed._checks import fail
    from unembed.neighbours import neighbours

    if args.all:
        if getattr(args, "model", None) is not None and args.head is not None:
            raise fail("--all takes no LABEL.")
        if not args.out:
            raise fail("--all writes every label's neighbours to a file: pass --out FILE.")
        from unembed._io import atomic_write, check_target

        check_target(args.out, force=args.force)
        head = load_head(args)
        res = neighbours(head, None, k=args.k, view=args.view)

        def write(tmp: Any) -> None:
            with open(tmp, "w", encoding="utf-8") as fh:
                for lab, ns in res.items():
                    fh.write(json.dumps({"label": lab, "view": args.view,
                                         "neighbours": [n.to_dict() for n in ns]},
                                        ensure_ascii=False) + "\n")

        atomic_write(args.out, write, force=args.force)
        if args.json:
            print_json({"out": str(args.out), "labels": len(res), "k": args.k,
                        "view": args.view})
        else:
            print(f"wrote {len(res)} labels' {args.k} nearest ({args.view} view) to {args.out}")
        return 0
    if getattr(args, "model", None) is not None and args.head is not None:
        args.query, args.head = [args.head, *args.query], None  # --model DIR LABEL ...
    if not args.query:
        raise fail("name at least one LABEL, or pass --all --out FILE.")
    head = load_head(args)
    res = neighbours(head, args.query, k=args.k, view=args.view)
    if args.json:
        print_json({"view": args.view, "k": args.k,
                    "neighbours": {lab: [n.to_dict() for n in ns] for lab, ns in res.items()}})
        return 0
    for lab, ns in res.items():
        print(f"{lab!r} ({args.view} view):")
        for n in ns:
            print(f"  {fmt(n.cosine, 4)}  {n.label!r}")
    return 0
