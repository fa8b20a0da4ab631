"""``unembed neighbours HEAD LABEL [LABEL ...] -k K --view VIEW [--data FILE]``: the k nearest
labels over the whole vocabulary; ``--all --out FILE`` for every label's (JSON lines)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from unembed.cli._common import (
    add_head_args,
    add_json_arg,
    fmt,
    load_model,
    positive_int,
    print_json,
)
from unembed.cli._data import add_data_args, needs_data, view_data
from unembed.neighbours import NEIGHBOUR_VIEWS

_DATA_VIEWS = ("logit", "coprob")


def register(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("neighbours", help="the k nearest labels over the whole vocabulary",
                       description="The k nearest labels of each LABEL over the whole "
                                   "vocabulary under one view (exact, blocked matrix products "
                                   "in float64; ties by label index). The logit view (the "
                                   "correlation of centered logits) and coprob (the cosine of "
                                   "two labels' probabilities across inputs) need --data.")
    add_head_args(p)
    p.add_argument("query", metavar="LABEL", nargs="*",
                   help="labels (their strings, or #N for row N)")
    p.add_argument("-k", type=positive_int, default=10, help="neighbours per label (default 10)")
    p.add_argument("--view", choices=NEIGHBOUR_VIEWS, default="centered",
                   help="the view (default: centered, as for the cosine() and neighbours() "
                        "of the Python API: invariant under translations of the rows, "
                        "which change no probability; raw is not)")
    add_data_args(p)
    p.add_argument("--all", action="store_true",
                   help="every label's neighbours, written to --out as JSON lines")
    p.add_argument("--out", metavar="FILE", help="with --all: where to write")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    add_json_arg(p)
    return p


def run(args: argparse.Namespace) -> int:
    from unembed._checks import fail
    from unembed.neighbours import neighbours_or_undefined

    if args.view in _DATA_VIEWS and args.data is None:
        raise fail(needs_data(args.view))
    if args.view not in _DATA_VIEWS and args.data is not None:
        raise fail(f"--data is used by the logit and coprob views only, not by --view "
                   f"{args.view}.")
    if args.all:
        if getattr(args, "model", None) is not None and args.head is not None:
            raise fail("--all takes no LABEL.")
        if not args.out:
            raise fail("--all writes every label's neighbours to a file: pass --out FILE.")
        from unembed._io import check_target

        check_target(args.out, force=args.force)
    elif getattr(args, "model", None) is not None and args.head is not None:
        args.query, args.head = [args.head, *args.query], None  # --model DIR LABEL ...
    if not args.all and not args.query:
        raise fail("name at least one LABEL, or pass --all --out FILE.")
    model = load_model(args)
    head = model.head
    spec = view_data(args, model)
    data: Any = None
    if spec is not None:
        data = (spec.moments(not (args.json or args.no_progress), head.W) if args.view == "logit"
                else spec.batches)
    queries = None if args.all else args.query
    if queries is not None:
        head.indices(queries)  # an unknown label fails before any pass over the data
    res, undefined = neighbours_or_undefined(head, queries, k=args.k, view=args.view,
                                             data=data)
    named = {} if spec is None else {"data": spec.record()}
    if args.all:
        from unembed._io import atomic_write

        def write(tmp: Any) -> None:
            with open(tmp, "w", encoding="utf-8") as fh:
                for lab, ns in res.items():
                    fh.write(json.dumps({"label": lab, "view": args.view, **named,
                                         **_listed(lab, ns, undefined)},
                                        ensure_ascii=False) + "\n")

        atomic_write(args.out, write, force=args.force)
        if args.json:
            print_json({"out": str(args.out), "labels": len(res), "k": args.k,
                        "view": args.view, **named, "undefined": len(undefined)})
        else:
            print(f"wrote {len(res)} labels' {args.k} nearest ({args.view} view"
                  f"{_on(spec)}) to {args.out}"
                  + (f"; {len(undefined)} of them undefined (the view ranks nothing: "
                     f"{next(iter(undefined.values()))})" if undefined else ""))
        return 0
    if args.json:
        print_json({"view": args.view, "k": args.k, **named,
                    "neighbours": {lab: _listed(lab, ns, undefined)["neighbours"]
                                   for lab, ns in res.items()},
                    "undefined": undefined})
        return 0
    for lab, ns in res.items():
        print(f"{lab!r} ({args.view} view{_on(spec)}):")
        if lab in undefined:
            print(f"  {undefined[lab]}")
        for n in ns:
            print(f"  {fmt(n.cosine, 4)}  {n.label!r}")
    return 0


def _listed(lab: str, ns: list[Any], undefined: dict[str, str]) -> dict[str, Any]:
    """A label's neighbours as JSON: the list, or null with the reason the view ranks
    nothing."""
    if lab in undefined:
        return {"neighbours": None, "reason": undefined[lab]}
    return {"neighbours": [n.to_dict() for n in ns]}


def _on(spec: Any) -> str:
    return "" if spec is None else f" on {spec.source}, {spec.n} hidden states"
