"""``unembed cosine HEAD A B``: the cosine of two labels under each view."""

from __future__ import annotations

import argparse
from typing import Any

from unembed.cli._common import add_head_args, add_json_arg, fmt, load_head, print_json
from unembed.views import TRANSLATION_INVARIANT, VIEWS, cosine, identification, invariance


def register(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("cosine", help="cosine of two labels under each view",
                       description="Cosine of two labels' representations under one or all "
                                   "views (raw, centered, normalized, causal, differences).")
    add_head_args(p)
    p.add_argument("a", metavar="A", nargs="?", help="first label (its string, or #N for row N)")
    p.add_argument("b", metavar="B", nargs="?", help="second label")
    p.set_defaults(_positionals=("a", "b"), _required=("a", "b"))
    p.add_argument("--view", choices=VIEWS, action="append",
                   help="view(s) to show (default: all)")
    add_json_arg(p)
    return p


def run(args: argparse.Namespace) -> int:
    head = load_head(args)
    i, j = head.index(args.a, argument="label A"), head.index(args.b, argument="label B")
    views = args.view or list(VIEWS)
    values = {v: cosine(head, i, j, v) for v in views}
    if args.json:
        print_json({"pair": [head.labels[i], head.labels[j]], "head": repr(head),
                    "rows": head.rows, "cosine": values,
                    "translation_invariant": {v: v in TRANSLATION_INVARIANT for v in views},
                    "invariance": {v: invariance(head, v).to_dict() for v in views},
                    "rows_identified": identification(head)})
        return 0
    print(f"{head!r}: cosine of {head.labels[i]!r} and {head.labels[j]!r}")
    for v in views:
        note = "" if v in TRANSLATION_INVARIANT else "  (changes under translation)"
        inv = invariance(head, v)
        if inv.note:
            note += "  (no symmetry of this head stands behind it)"
        print(f"  {v:<12} {fmt(values[v])}{note}")
    print(f"  rows: {identification(head)}")
    return 0
