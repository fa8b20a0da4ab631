"""``unembed feasible``: pairs on top together, rankings, top-k sets, sigmoid combinations."""

from __future__ import annotations

import argparse
from typing import Any

from unembed.cli._loading import load_head
from unembed.cli._options import add_deprecated_alias, add_head_args, add_json_arg, positive_int
from unembed.cli._print import masked_note, print_json
from unembed.cli.argmaxable import add_lp_args, bound_lines


def register(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "feasible",
        help="decide what the head can predict: top two, rankings, top-k sets, combinations",
        description="Each answer is decided exactly by an LP: 'yes' with a witness hidden "
        "state, 'no' with a dual certificate; margins are reported. Labels are names, or #N "
        "for row N.",
    )
    add_head_args(p)
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--argmaxable", metavar="A", help="can label A be the argmax?")
    add_deprecated_alias(q, "--argmax", "--argmaxable", "argmaxable", metavar="A")
    q.add_argument("--top-two", nargs=2, metavar=("A", "B"),
                   help="can A and B be the top two together (tied, all others below)?")
    q.add_argument("--ranking", nargs="+", metavar="L",
                   help="is z_L1 > z_L2 > ... feasible (with --top: above all other labels)?")
    q.add_argument("--top-k-set", nargs="+", metavar="L",
                   help="are these labels the top k of the whole head for some input?")
    q.add_argument("--on", nargs="+", metavar="L",
                   help="sigmoid heads: can these labels be on (with --off: those off) together?")
    q.add_argument("--enumerate", nargs="+", metavar="L",
                   help="enumerate within up to 8 labels (see --kind)")
    q.add_argument("--co-top", nargs="+", metavar="L",
                   help="the top-two verdict for every pair of these labels")
    p.add_argument("--off", nargs="+", metavar="L", default=[],
                   help="with --on: labels that must be off")
    p.add_argument("--top", action="store_true", help="with --ranking: above all other labels")
    p.add_argument("--kind", choices=("rankings", "top-k-sets", "combinations"),
                   default="rankings", help="what --enumerate lists (default: rankings)")
    p.add_argument("--k", type=positive_int, default=None, help="set size for --kind top-k-sets")
    add_lp_args(p)
    add_json_arg(p)
    return p


def run(args: argparse.Namespace) -> int:
    from unembed import feasibility as f
    from unembed._checks import UnembedError

    if args.off and not args.on:
        raise UnembedError("needs '--on' (at least one label on).", option="--off")
    head = load_head(args)
    asked = (("argmaxable", args.argmaxable), ("top_two", args.top_two),
             ("ranking", args.ranking), ("top_k_set", args.top_k_set), ("on", args.on),
             ("co_top", args.co_top), ("enumerate", args.enumerate))
    question = next(o for o, value in asked if value)
    args._arg_options = {"labels": "--" + question.replace("_", "-"), "label": "--argmaxable"}
    kw: dict[str, Any] = {"bias": not args.no_bias, "radius": args.radius, "rtol": args.rtol}
    result: Any
    if args.argmaxable is not None:
        result = f.is_argmaxable(head, args.argmaxable, **kw)
    elif args.top_two:
        result = f.can_be_top_two(head, *args.top_two, **kw)
    elif args.ranking:
        result = f.is_feasible_ranking(head, args.ranking, top=args.top, **kw)
    elif args.top_k_set:
        result = f.is_top_k_set(head, args.top_k_set, **kw)
    elif args.on:
        result = f.is_feasible_combination(head, args.on, args.off, **kw)
    elif args.co_top:
        result = f.co_top_matrix(head, args.co_top, **kw)
    else:
        if args.kind == "rankings":
            result = f.enumerate_rankings(head, args.enumerate, **kw)
        elif args.kind == "top-k-sets":
            if args.k is None:
                raise UnembedError("is required with --kind top-k-sets.", option="--k")
            result = f.enumerate_top_k_sets(head, args.enumerate, args.k, **kw)
        else:
            result = f.enumerate_combinations(head, args.enumerate, **kw)
    masked = masked_note(head)
    if args.json:
        print_json(result if masked is None else {**result.to_dict(), "note": masked})
        return 0
    _print(result)
    if masked is not None:
        print(f"note: {masked}")
    return 0


def _print(result: Any) -> None:
    from unembed.feasibility import CoTopMatrix, Enumeration

    if isinstance(result, (Enumeration, CoTopMatrix)):
        for line in bound_lines(result.hidden_bound):
            print(line)
    if isinstance(result, Enumeration):
        print(f"{result.kind} of {list(result.labels)}: {result.n_feasible} feasible, "
              f"{result.n_infeasible} infeasible, {len(result.undecided)} undecided, of "
              f"{result.total} ({result.lp_solves} LPs after {result.samples} samples)")
        for r in result.feasible:
            sep = " > " if result.kind == "ranking" else " "
            print(f"  yes  {sep.join(r.labels)}   margin {r.margin:.4g}")
        for r in result.infeasible:
            cov = r.covers or 1
            what = " (prefix)" if cov > 1 else ""
            print(f"  no   {' '.join(r.labels)}{what}   margin {r.margin:.4g}")
        return
    if isinstance(result, CoTopMatrix):
        w = max(len(x) for x in result.labels)
        print(" " * (w + 2) + " ".join(x[:6].rjust(6) for x in result.labels))
        for a, x in enumerate(result.labels):
            cells = ["     -" if a == b else ("   yes" if result.feasible[a, b] else "    no")
                     for b in range(len(result.labels))]
            print(x.rjust(w) + "  " + " ".join(cells))
        return
    print(f"{result.question} {list(result.labels)}: {result.status}   "
          f"margin {result.margin:.6g} (tol {result.tol:.3g}, by {result.method})")
    print(f"formulation: {result.formulation}")
    for line in bound_lines(result.hidden_bound)[:1]:
        print(line)
    print(f"claim: {result.claim or ''}")
    if result.certificate is not None:
        c = result.certificate.to_dict()
        pairs = ", ".join(f"{w:.3g} x ({p} - {n})" for (p, n), w in
                          zip(c["rows"][:6], c["weights"][:6]))
        print(f"certificate: {pairs}; proves margin <= {c['bound']:.3g}")
