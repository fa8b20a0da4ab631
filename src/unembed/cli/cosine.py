"""``unembed cosine HEAD A B``: the cosine of two labels under each view."""

from __future__ import annotations

import argparse
from typing import Any

from unembed.cli._data import add_data_args, needs_data, view_data
from unembed.cli._loading import load_model
from unembed.cli._options import add_head_args, add_json_arg
from unembed.cli._print import fmt, print_json
from unembed.views import (
    ALL_VIEWS,
    TRANSLATION_INVARIANT,
    VIEWS,
    cosine,
    identification,
    invariance,
)


def register(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("cosine", help="cosine of two labels under each view",
                       description="Cosine of two labels' representations under one or all "
                                   "views (raw, centered, normalized, causal, differences; "
                                   "logit with --data: the correlation of the two labels' "
                                   "centered logits over the data).")
    add_head_args(p)
    p.add_argument("a", metavar="A", nargs="?", help="first label (its string, or #N for row N)")
    p.add_argument("b", metavar="B", nargs="?", help="second label")
    p.set_defaults(_positionals=("a", "b"), _required=("a", "b"))
    p.add_argument("--view", choices=ALL_VIEWS, action="append",
                   help="view(s) to show (default: all; logit only with --data). The "
                        "one view of a single cosine, as of neighbours and of the Python "
                        "API's cosine(), is centered: invariant under translations of the "
                        "rows, which change no probability; raw is not")
    add_data_args(p)
    add_json_arg(p)
    return p


def run(args: argparse.Namespace) -> int:
    from unembed._checks import UnembedError

    if args.view and "logit" in args.view and args.data is None:
        raise UnembedError(needs_data("logit"))
    model = load_model(args)
    head = model.head
    i, j = head.index(args.a, argument="label A"), head.index(args.b, argument="label B")
    spec = view_data(args, model)
    views = args.view or [*VIEWS, *(["logit"] if spec is not None else [])]
    if spec is not None and "logit" not in views:
        raise UnembedError("--data is used by the logit view only; add --view logit.")
    data = None if spec is None else spec.moments(not (args.json or args.no_progress), head.W)
    from unembed.undefined_views import structural_reason

    undefined = {v: why for v in views if (why := structural_reason(head, v)) is not None}
    values = {v: None if v in undefined else cosine(head, i, j, v, data=data) for v in views}
    named = {} if spec is None else {"data": spec.record()}
    if args.json:
        print_json({"pair": [head.labels[i], head.labels[j]], "head": repr(head),
                    "rows": head.rows, "cosine": values, "undefined": undefined, **named,
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
        if v == "logit" and spec is not None:
            note += f"  (on {spec.source}, {spec.n} hidden states)"
        value = values[v]
        print(f"  {v:<12} {undefined[v] if value is None else fmt(value)}{note}")
    print(f"  rows: {identification(head)}")
    return 0
