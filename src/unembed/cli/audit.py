"""``unembed audit``: what cosine similarity of a model's label representations says about its
behaviour on data; an HTML report, a JSON file with every number, a terminal summary."""

from __future__ import annotations

import argparse
from typing import Any

from unembed.cli._loading import (
    head_options,
    head_source,
    model_loader,
    ray_engine,
    scaled_inputs,
)
from unembed.cli._options import (
    add_engine_args,
    add_head_args,
    add_json_arg,
    add_stream_args,
    positive_int,
)
from unembed.cli._print import print_json


def per_input_temperature_given(args: argparse.Namespace) -> bool:
    return head_options(args).per_input_temperature


def register(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "audit",
        help="views of label similarity against the model's behaviour on data; HTML + JSON",
        description="Run the model over data (text or JSON lines for language models, .npy "
        "arrays for image classifiers and feature-matrix models), accumulate per pair of labels "
        "how the model makes them likely together, compare with every similarity view, and "
        "check the paper's three claims on this model. Writes DIR/report.html and "
        "DIR/audit.json.",
    )
    add_head_args(p)
    p.add_argument("--data", required=True, metavar="FILE",
                   help="inputs: .txt / .jsonl ('text' field) for language models, .npy for "
                        "arrays (images (n, ...) or features (n, d))")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--force", action="store_true",
                   help="replace DIR (and --pairs FILE) if they exist")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--label-set", nargs="+", metavar="LABEL",
                     help="audit these labels (names or '#N' for row N)")
    sel.add_argument("--top-n", type=positive_int, default=40, metavar="N",
                     help="otherwise: the N labels of largest mean probability (all when V <= N; "
                          "default 40)")
    p.add_argument("--top-k", type=positive_int, default=5, metavar="K",
                   help="'both in the top k' counts inputs where both labels are among the K "
                        "most probable (default 5)")
    add_stream_args(p)
    p.add_argument("--likely", type=float, default=0.1, metavar="P",
                   help="claims 2 and 3: both labels at least this probable on one input "
                        "(default 0.1)")
    p.add_argument("--head-logits", action="store_true",
                   help="recompute the logits from the head in float64 instead of using the "
                        "model's own (slower: a second product with the head)")
    cot = p.add_mutually_exclusive_group()
    cot.add_argument("--co-top", dest="co_top", action="store_const", const=True, default=None,
                     help="decide, per pair, whether it can be the top two together (linear "
                          "programs over all rows; default: only when V <= 5000)")
    cot.add_argument("--no-co-top", dest="co_top", action="store_const", const=False,
                     help="skip those decisions")
    p.add_argument("--witness-region", choices=("data", "any"), default="data",
                   help="where those decisions and claims 2-3's model evidence look for hidden "
                        "states: 'data' (default) the final norm's bound when the head has "
                        "one, else the box the data's hidden states occupy; 'any' all of R^d")
    p.add_argument("--pairs", metavar="FILE",
                   help="also write every pair of the label set, one row per view (label_a, "
                        "label_b, view, cosine and each behavioural measure) as .csv or "
                        ".parquet")
    add_engine_args(p, workers_help="with --engine ray: shards of the data, one per worker "
                                    "(default: the CPU count, at most 8)")
    add_json_arg(p)
    return p


def _check_positive(name: str, value: int | None) -> None:
    from unembed._checks import UnembedError

    if value is not None and value < 1:
        raise UnembedError("must be at least 1", option=f"--{name}", got=value)


def _check_pairs_target(pairs: str, out: str, *, force: bool) -> None:
    """``--pairs FILE`` checked with ``--out`` (before any work): its suffix, and that it can
    be written (inside the report directory, it is written after that directory, whose own
    check stands for it)."""
    import os

    from unembed._io import check_target
    from unembed.tables import check_pairs_suffix

    p = check_pairs_suffix(pairs)
    real_out, real_parent = os.path.realpath(out), os.path.realpath(p.absolute().parent)
    if real_parent == real_out or os.path.commonpath([real_out, real_parent]) == real_out:
        return
    if os.path.realpath(p) == real_out:
        from unembed._checks import UnembedError

        raise UnembedError(f"--pairs {pairs}: the same path as --out; name another file.")
    check_target(p, force=force)


def run(args: argparse.Namespace) -> int:
    import functools
    import sys
    from dataclasses import asdict

    from unembed._checks import UnembedError
    from unembed._io import check_target
    from unembed.audit import AuditInputs, audit
    from unembed.data import ArrayInputs, max_batches, open_data
    from unembed.report import summary_lines, write_report

    for name, value in (("top-n", args.top_n), ("top-k", args.top_k),
                        ("max-inputs", args.max_inputs), ("batch-size", args.batch_size),
                        ("window", args.window), ("workers", args.workers)):
        _check_positive(name, value)
    check_target(args.out, force=args.force)  # every output before any work
    if args.pairs:
        _check_pairs_target(args.pairs, args.out, force=args.force)
    engine = ray_engine(args)
    loader = model_loader(args)
    model = loader()
    opener = functools.partial(open_data, args.data, window=args.window,
                               max_inputs=args.max_inputs)
    data = opener(model)
    if model.kind == "file" and isinstance(data, ArrayInputs) and \
            data.array.shape[1:] != (model.head.d,):
        raise UnembedError(f"holds arrays of shape {data.array.shape}; this head "
                                    f"takes hidden states of shape (n, {model.head.d}).",
                           path=args.data)
    if per_input_temperature_given(args):
        import numpy as np

        from unembed._checks import UnembedError

        if not isinstance(data, ArrayInputs):
            raise UnembedError(f"{args.temperature}: a per-input temperature needs hidden states "
                               f"as "
                               f"--data H.npy.")
        if engine is not None:
            raise UnembedError(f"{args.temperature}: a per-input temperature is applied on this "
                               f"machine; run without --engine ray.")
        data = ArrayInputs(scaled_inputs(args, np.asarray(data.array), model.head),
                           name=f"{data.name} / T from {args.temperature}")
    sharded = None
    if engine is not None:
        from unembed.engine import Sharded

        sharded = Sharded(engine, loader, opener,
                          units=max_batches(data, args.batch_size, args.window))
    try:
        res = audit(model, data, label_set=args.label_set, top_n=args.top_n, top_k=args.top_k,
                    batch_size=args.batch_size, likely=args.likely,
                    progress=not args.no_progress and sys.stderr.isatty(),
                    logits="head" if args.head_logits else "model", co_top=args.co_top,
                    region=args.witness_region,
                    sharded=sharded, inputs=AuditInputs(
                        model=head_source(args), bias=args.bias, labels=args.labels,
                        data=args.data,
                        options={"fold": args.fold, "link": args.link, "softcap": args.softcap,
                                 "max_inputs": args.max_inputs, "window": args.window,
                                 "allow_degenerate": args.allow_degenerate,
                                 "trust_pickle": args.trust_pickle, "revision": args.revision,
                                 "component": args.component,
                                 "trust_remote_code": args.trust_remote_code,
                                 "unique_labels": args.unique_labels,
                                 "engine": args.engine, "workers": args.workers}))
    finally:
        if engine is not None:
            engine.close()
            for note in engine.notes:
                print(f"unembed audit: note: {note}", file=sys.stderr)
    out = write_report(res, args.out, title=f"unembed audit: {res.model['meta'].get('source')}",
                       force=args.force)
    pairs = None
    if args.pairs:
        from unembed.tables import write_pairs

        pairs = write_pairs(res.pair_table(), args.pairs, force=args.force)
    if args.json:
        print_json({"out": str(out), "report": str(out / "report.html"),
                    "pairs": None if pairs is None else str(pairs),
                    "json": str(out / "audit.json"),
                    "claims": [{"number": c.number, "outcome": c.outcome, "shown": c.shown,
                                "grade": c.grade, "verdict": c.verdict_line, "why": c.why}
                               for c in res.claims],
                    "rank_correlations": [asdict(r) for r in res.correlations],
                    "views_ranked": res.advice.views_ranked(),
                    "views_not_ranked": res.advice.not_ranked,
                    "advice": res.advice.to_dict()})
        return 0
    print("\n".join(summary_lines(res)))
    print(f"report: {out / 'report.html'}")
    if pairs is not None:
        print(f"pairs: {pairs}")
    return 0
