"""``unembed neighbours HEAD LABEL [LABEL ...] -k K --view VIEW [--data FILE]``: the k nearest
labels over the whole vocabulary; ``--all --out FILE`` for every label's (JSON lines)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from unembed.cli._data import add_data_args, needs_data, view_data
from unembed.cli._loading import head_options, load_model
from unembed.cli._options import add_head_args, add_json_arg, positive_int
from unembed.cli._print import fmt, print_json
from unembed.neighbours import NEIGHBOUR_VIEWS, NeighbourArrays

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
    from unembed._checks import UnembedError
    from unembed.neighbours import neighbour_arrays, neighbours_or_undefined

    if args.view in _DATA_VIEWS and args.data is None:
        raise UnembedError(needs_data(args.view))
    if args.view not in _DATA_VIEWS and args.data is not None:
        raise UnembedError(f"--data is used by the logit and coprob views only, not by --view "
                           f"{args.view}.")
    if args.all:
        if head_options(args).model is not None and args.head is not None:
            raise UnembedError("--all takes no LABEL.")
        if not args.out:
            raise UnembedError("--all writes every label's neighbours to a file: pass --out FILE.")
        from unembed._io import check_target

        check_target(args.out, force=args.force)
    elif head_options(args).model is not None and args.head is not None:
        args.query, args.head = [args.head, *args.query], None  # --model DIR LABEL ...
    if not args.all and not args.query:
        raise UnembedError("name at least one LABEL, or pass --all --out FILE.")
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
    named = {} if spec is None else {"data": spec.record()}
    if args.all:
        from unembed._io import atomic_write

        arr = neighbour_arrays(head, None, k=args.k, view=args.view, data=data)
        undefined = arr.undefined
        atomic_write(args.out, lambda tmp: _write_lines(tmp, head.labels, arr,
                                                        {"view": args.view, **named}),
                     force=args.force)
        n_lab = int(arr.queries.size)
        if args.json:
            print_json({"out": str(args.out), "labels": n_lab, "k": args.k,
                        "view": args.view, **named, "undefined": len(undefined)})
        else:
            print(f"wrote {n_lab} labels' {args.k} nearest ({args.view} view"
                  f"{_on(spec)}) to {args.out}"
                  + (f"; {len(undefined)} of them undefined (the view ranks nothing: "
                     f"{next(iter(undefined.values()))})" if undefined else ""))
        return 0
    res, undefined = neighbours_or_undefined(head, queries, k=args.k, view=args.view,
                                             data=data)
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


def _write_lines(path: Any, labels: Sequence[str], arr: NeighbourArrays,
                 fields: dict[str, Any]) -> None:
    """One JSON line per query label, what json.dumps writes for {"label", the fields,
    **:func:`_listed`} (each label's JSON string formed once, the cosines by repr as json
    does)."""
    quoted = [json.dumps(lab, ensure_ascii=False) for lab in labels]
    mid = json.dumps(fields, ensure_ascii=False)[1:-1]
    mid = f", {mid}" if mid else ""
    und = arr.undefined
    with open(path, "w", encoding="utf-8") as fh:
        for i, row_i, row_v in zip(arr.queries.tolist(), arr.index.tolist(),
                                   arr.cosine.tolist()):
            if und and labels[i] in und:
                why = json.dumps(und[labels[i]], ensure_ascii=False)
                fh.write(f'{{"label": {quoted[i]}{mid}, "neighbours": null, '
                         f'"reason": {why}}}\n')
                continue
            ns = ", ".join(f'{{"label": {quoted[j]}, "cosine": {c!r}}}'
                           for j, c in zip(row_i, row_v) if j >= 0)
            fh.write(f'{{"label": {quoted[i]}{mid}, "neighbours": [{ns}]}}\n')


def _listed(lab: str, ns: list[Any], undefined: dict[str, str]) -> dict[str, Any]:
    """A label's neighbours as JSON: the list, or null with the reason the view ranks
    nothing."""
    if lab in undefined:
        return {"neighbours": None, "reason": undefined[lab]}
    return {"neighbours": [n.to_dict() for n in ns]}


def _on(spec: Any) -> str:
    return "" if spec is None else f" on {spec.source}, {spec.n} hidden states"
