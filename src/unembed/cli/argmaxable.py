"""``unembed argmaxable``: which labels of a head can be the argmax, for the whole vocabulary."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from unembed.cli._loading import load_head, ray_engine
from unembed.cli._options import (
    add_engine_args,
    add_head_args,
    add_json_arg,
    non_negative_int,
    positive_int,
)
from unembed.cli._print import masked_note, print_json

if TYPE_CHECKING:
    from unembed.feasibility.result import SearchBound


def add_lp_args(p: argparse.ArgumentParser) -> None:
    """Options shared by the feasibility commands: bias, radius, tolerance."""
    p.add_argument("--no-bias", action="store_true",
                   help="drop the bias (the answer as |h| -> inf)")
    p.add_argument("--radius", type=_radius, default=None, metavar="R|arch",
                   help="only hidden states with |h|_inf <= R; 'arch': the box the model's "
                   "architecture bounds h to (after a final LayerNorm/RMSNorm; a relaxation: "
                   "'no' is proven for the model, 'yes' is a witness in the box); default: "
                   "any h in R^d")
    p.add_argument("--rtol", type=float, default=None,
                   help="margins below rtol x the largest row value count as no (default: by "
                        "the head's storage dtype, 1e-6 for float32/float64, 2^-8 for "
                        "float16, 2^-5 for bfloat16)")


def _radius(text: str) -> float | str:
    """--radius: a number, or 'arch' / 'architecture' (checked by the library)."""
    if text.strip().lower() in ("arch", "architecture"):
        return "architecture"
    try:
        return float(text)
    except ValueError:
        return text  # the library names the bad value in its error


def bound_lines(bound: SearchBound | None) -> list[str]:
    """The bound on h that was used and what the verdicts mean, for the text output."""
    if bound is None or bound.kind != "box":
        return [f"hidden states: {bound.meaning if bound is not None else 'any h in R^d'}"]
    if bound.source == "architecture":
        out = [f"hidden states: the architecture's box |h_j| <= r_j, max r_j = "
               f"{bound.radius:.6g} ({bound.reason or ''})"]
    else:
        out = [f"hidden states: the box given, max half-width {bound.radius:.6g}"]
    return [*out, f"meaning: {bound.meaning}"]


def register(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "argmaxable",
        help="check every label: can some hidden state make it the argmax?",
        description="Check every label of a head: a fast pass settles most labels with a "
        "witness hidden state; exact LPs (HiGHS) decide the rest, in parallel. Lists the "
        "unargmaxable labels (with dual certificates in --json) and the narrowest margins.",
    )
    add_head_args(p)
    add_lp_args(p)
    add_engine_args(p, workers_help="processes for the LPs (with --engine ray: Ray workers for "
                                    "the fast pass and the LPs)")
    p.add_argument("--narrowest", type=positive_int, default=10, metavar="N",
                   help="report the N argmaxable labels with the smallest margins")
    p.add_argument("--narrowest-budget", type=non_negative_int, default=20, metavar="K",
                   help="at most K LPs to optimality for the narrowest margins (default 20; "
                   "each costs seconds to tens of seconds on a 4096-wide head; 0: none)")
    p.add_argument("--sketch", type=non_negative_int, default=None, metavar="RANK",
                   help="rank of the fast pass's sketch, which bounds the rivals of each "
                   "label and computes only the close ones exactly (default: chosen on a "
                   "sample block of labels; 0: none, every rival computed, V^2 d work, and each "
                   "fast-pass margin is its witness's own)")
    add_json_arg(p)
    return p


def run(args: argparse.Namespace) -> int:
    from unembed.feasibility import argmaxable_all

    head = load_head(args)
    engine = ray_engine(args)
    try:
        res = argmaxable_all(head, bias=not args.no_bias, radius=args.radius, rtol=args.rtol,
                             workers=args.workers, n_narrowest=args.narrowest,
                             narrowest_budget=args.narrowest_budget, sketch=args.sketch,
                             progress=not (args.json or args.no_progress), engine=engine,
                             device=args.device)
    finally:
        if engine is not None:
            engine.close()
    d = res.to_dict()
    masked = masked_note(head)
    if masked is not None:
        d["notes"] = [*d["notes"], masked]
    if args.json:
        print_json(d)
        return 0
    c = d["counts"]
    print(f"{head!r}: {c['yes']} argmaxable, {c['no']} not argmaxable, "
          f"{c['undecided']} undecided ({d['fast_pass']} settled by the fast pass, "
          + (f"{d['span']} by the span theorem, " if d["span"] else "")
          + f"{d['lp']} by LPs)")
    print(f"witnesses: hidden states h whose logits {d['realises']} make the label the most "
          + ("probable (the head's bias included)" if d["realises"] == "W h + b"
             else "probable (the bias left out)"))
    for label, why in d["reasons"].items():
        print(f"  {label!r}: {why}")
    for note in d["notes"]:
        print(f"note: {note}")
    print(f"formulation: {d['formulation']}; tol = {d['tol']:.3g}")
    for line in bound_lines(res.hidden_bound):
        print(line)
    if d["unargmaxable"]:
        print("not argmaxable: " + ", ".join(repr(x) for x in d["unargmaxable"]))
    if d["undecided"]:
        print("undecided: " + ", ".join(repr(x) for x in d["undecided"]))
    if d["narrowest"]:
        tag = "" if d["narrowest_exact"] else " (among the labels refined; not proven the least)"
        print(f"narrowest argmaxable{tag}:")
        for r in d["narrowest"]:
            print(f"  {r['label']!r}: margin {r['margin']:.6g}")
    return 0
