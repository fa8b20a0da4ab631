"""``unembed inspect HEAD``: shape, norms, mean-vector share, symmetries, extreme pairs."""

from __future__ import annotations

import argparse
from typing import Any

from unembed.cli._data import add_data_args, view_data
from unembed.cli._loading import load_model
from unembed.cli._options import add_head_args, add_json_arg, positive_int
from unembed.cli._print import fmt, print_json


def register(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("inspect", help="shape, norms, symmetries and extreme pairs of a head",
                       description="Summarise a head: shape, row norms, the share of the mean "
                                   "vector, which probability-preserving transformations hold, "
                                   "and the most and least similar pairs under each view.")
    add_head_args(p)
    p.add_argument("--top", type=positive_int, default=5, help="pairs to show per view (default 5)")
    p.add_argument("--max-labels", type=positive_int, default=500,
                   help="search pairs among at most this many labels (a seeded sample)")
    p.add_argument("--pairs", metavar="FILE",
                   help="also write every pair of labels, one row per view (label_a, label_b, "
                        "view, cosine) as .csv or .parquet (heads of at most --max-labels "
                        "labels); with --data also the logit view's rows, the data named in a "
                        "'data' column")
    p.add_argument("--force", action="store_true", help="replace an existing --pairs FILE")
    add_data_args(p)
    add_json_arg(p)
    return p


def run(args: argparse.Namespace) -> int:
    from unembed.summary import summarize

    model = load_model(args)
    head = model.head
    spec = view_data(args, model)
    data = None if spec is None else spec.moments(not (args.json or args.no_progress), head.W)
    s = summarize(head, max_labels=args.max_labels, top=args.top, data=data)
    pairs_file = None
    if args.pairs:
        from unembed._checks import UnembedError
        from unembed.tables import pair_table, write_pairs

        if head.n_labels > args.max_labels:
            raise UnembedError(f"{args.pairs}: all pairs of {head.n_labels} labels would be "
                               f"{head.n_labels * (head.n_labels - 1) // 2} rows per view; raise "
                               f"--max-labels to {head.n_labels} to write them.")
        pairs_file = str(write_pairs(pair_table(head, data=data), args.pairs,
                                     force=args.force))
    if args.json:
        print_json({**s.to_dict(), **({} if pairs_file is None else {"pairs_file": pairs_file})})
        return 0
    print(f"{s.head}  from {s.source}  (rows: {s.rows})")
    if pairs_file is not None:
        on = "" if data is None else f" (with the logit view on {data.source})"
        print(f"  pairs written   {pairs_file}{on}")
    n = s.row_norms
    print(f"  row norms       min {n.min:.4g}  median {n.median:.4g}  max {n.max:.4g}")
    print(f"  mean vector     |m| = {s.mean_vector_norm:.4g}, "
          f"{100 * s.mean_vector_share:.1f}% of the mean squared row norm")
    print(f"  causal rank     {s.causal_rank}")
    for note in head.meta.get("notes", []):
        print(f"  note            {note}")
    for k, v in s.degenerate.items():
        print(f"  degenerate      {k}: {v[:5]}")
    print("  symmetries (transformations that keep every probability):")
    for name, sym in s.symmetries.items():
        word = {True: "yes", False: "NO", None: "unknown"}[sym.holds]
        print(f"    {name:<18} {word:<8} {sym.reason}")
    print(f"  rows            {s.rows_identified}")
    if s.data is not None:
        print(f"  data            {s.data['source']} ({s.data['n_hidden_states']} hidden "
              f"states: the logit view)")
    for view, r in s.pairs.items():
        inv = s.invariance[view]
        searched = (f"{r.labels_searched} of {s.n_labels} labels, a seeded sample" if r.sampled
                    else f"all {r.labels_searched} labels")
        print(f"  {view} view, {searched}; invariant under: "
              f"{', '.join(inv.invariant_under) or 'none'}"
              + (f"; NOT under {', '.join(inv.not_invariant_under)}"
                 if inv.not_invariant_under else ""))
        if inv.note:
            print(f"    note: {inv.note}")
        if r.undefined is not None:
            print(f"    {r.undefined}")
            continue
        for side, items in (("most", r.most), ("least", r.least)):
            text = ", ".join(f"{p.labels[0]!r}-{p.labels[1]!r} {fmt(p.cosine, 3)}"
                             for p in items)
            print(f"    {side:<5} {text}")
    return 0
