"""``unembed counterexample HEAD --pair A B --target T --out FILE``: an equivalent head in
which one pair's cosine is T, written in the input's format and dtype, then verified.

With ``--model DIR`` (or a pickled estimator) the whole model is written to ``--out`` in its
own format (:func:`unembed.export.export_model`): a HuggingFace directory that
``from_pretrained`` loads, a pickled estimator, or (``--as transformer-lens``) a state dict with
its config ``NAME.tl_config.json`` beside it, which ``unembed verify --model2`` reads back; both
models are run on inputs before the command reports success."""

from __future__ import annotations

import argparse
from typing import Any

from unembed.cli._loading import head_options, head_source, load_head, load_model, scaled_inputs
from unembed.cli._options import (
    add_deprecated_alias,
    add_head_args,
    add_json_arg,
    positive_int,
)
from unembed.cli._print import fmt, print_json


def register(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("counterexample",
                       help="write an equivalent head with a chosen cosine for one pair",
                       description="Translate every row by one vector so that the raw cosine "
                                   "of a chosen pair is T (softmax heads: no probability "
                                   "changes), write it in the input's format and dtype, "
                                   "re-read it and verify the probabilities.")
    add_head_args(p)
    p.add_argument("--pair", nargs=2, metavar=("A", "B"),
                   help="the two labels (strings, or #N for row N)")
    p.add_argument("--target", type=float, metavar="T",
                   help="the cosine to reach, in [-1, 1]")
    keep = p.add_argument_group("same cosines, different behaviour (v2)")
    keep.add_argument("--keep-cosines", action="store_true",
                      help="rescale rows by positive factors (every raw cosine unchanged) so "
                           "that a behaviour is lost; with --unargmaxable or --not-top-two")
    keep.add_argument("--unargmaxable", metavar="LABEL",
                      help="the label that must no longer be the argmax")
    keep.add_argument("--not-top-two", nargs=2, metavar=("A", "B"),
                      help="the pair that must no longer lead together")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the new head")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--data", metavar="FILE",
                   help="what to verify on: hidden states (n, d) .npy for a weight file; with "
                        "--model, token ids / images / features as .npy, or a text file (one "
                        "text per line) for a language model (default: random ones)")
    add_deprecated_alias(p, "--inputs", "--data", dest="data", metavar="FILE")
    p.add_argument("--dtype", choices=("float16", "bfloat16", "float32", "float64"),
                   help="weight files: store the new head in this dtype (default: the input's; "
                        "e.g. float32 for a float16 head, whose rounding would otherwise move "
                        "the cosine)")
    p.add_argument("-n", "--n-random", type=positive_int, default=1024,
                   help="random inputs to verify on when --data is not given (default 1024)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_json_arg(p)
    return p


def _model_inputs(path: str | None) -> Any:
    import numpy as np

    if path is None:
        return None
    if path.endswith(".npy"):
        from unembed.sources.files import read_tensor

        return read_tensor(path, ndim=2).array
    from pathlib import Path

    from unembed._checks import read_text

    lines = [t for t in read_text(Path(path), "data file").splitlines() if t.strip()]
    return lines or np.zeros((0, 0), dtype=np.int64)


def run_model(args: argparse.Namespace) -> int:
    from time import perf_counter

    import numpy as np

    from unembed.construct import translation_for_cosine
    from unembed.export import check_exportable, export_model
    from unembed.views import cosine

    t0 = perf_counter()
    model = load_model(args)
    check_exportable(model, head_source(args))  # before any work
    head = model.head
    a, b = args.pair
    seconds = {"read": perf_counter() - t0}
    t0 = perf_counter()
    res = translation_for_cosine(head, a, b, args.target, n_random=args.n_random,
                                 seed=args.seed)
    seconds["construct"] = perf_counter() - t0
    t0 = perf_counter()
    exported = export_model(model, res.head, args.out, force=args.force,
                            inputs=_model_inputs(args.data), seed=args.seed,
                            progress=not (args.json or args.no_progress))
    seconds["write_and_verify"] = perf_counter() - t0
    i, j = head.index(a), head.index(b)
    cos_written = cosine(exported.head, i, j, "raw")
    eq = exported.equivalence
    record = {**res.to_dict(), "out": str(exported.out), "cosine_written": cos_written,
              "rows": head.rows, "export": exported.to_dict(),
              "verification": eq.to_dict(), "seconds": seconds}
    if args.json:
        print_json(record)
    else:
        print(f"{head!r} from {head.source}: pair {res.labels[0]!r}, "
              f"{res.labels[1]!r} ({head.rows} rows"
              f"{'; norm ' + str(head.meta['norm']) if head.meta.get('norm') else ''})")
        print(f"  cosine before   {fmt(res.cosine_before, 12)}")
        print(f"  cosine after    {fmt(res.cosine_after, 12)}   (target {args.target:+g}; "
              f"recomputed in float64)")
        print(f"  cosine written  {fmt(cos_written, 12)}   (re-read from {exported.out}, "
              f"stored as {head.dtype})")
        print(f"  translation     |c| = {np.linalg.norm(res.c):.6g}; {res.method}")
        for note in exported.notes:
            print(f"  note: {note}")
        print(f"  model vs written model: {eq.verdict}")
        print(f"wrote {exported.out}")
    return 0 if eq.equivalent else 1


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import numpy as np

    if args.transpose:
        from unembed._checks import UnembedError

        raise UnembedError("does not apply to counterexample: it writes the new head in its "
                           "file's own layout; save the head as (V, d) first.",
                           option="--transpose")
    if args.keep_cosines or args.unargmaxable or args.not_top_two:
        return run_keep_cosines(args)
    if args.pair is None or args.target is None:
        from unembed._checks import UnembedError

        raise UnembedError("--pair A B and --target T are required (or --keep-cosines with "
                           "--unargmaxable LABEL or --not-top-two A B).")
    from unembed._io import check_target

    source = head_source(args)
    check_target(args.out, force=args.force)  # before any work
    if _reads_model(args, source):
        args.model, args.head = source, None
        return run_model(args)
    _check_labels_target(args)  # the labels file written beside it: checked too

    from time import perf_counter, process_time

    from unembed.construct import cosine_translation
    from unembed.export.weights import stored_like, write_weights
    from unembed.sources.files import read_tensor

    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    t0, c0 = perf_counter(), process_time()
    head = load_head(args)
    stored_like(head)  # read from a weight file by load_head
    H = None
    if args.data:
        H = np.asarray(read_tensor(args.data, ndim=2).array, dtype=np.float64)
        H = scaled_inputs(args, H, head)
    elif head_options(args).per_input_temperature:
        from unembed._checks import UnembedError

        raise UnembedError(f"{args.temperature}: a per-input temperature needs the inputs it "
                           f"belongs to (--data H.npy).")
    a, b = args.pair
    seconds["read"], cpu["read"] = perf_counter() - t0, process_time() - c0
    # Large heads: the translation is O(d); the translated rows W + c are written block by
    # block (in --dtype when given), and what was written is re-read block by block: never a
    # second (V, d) copy.
    t0, c0 = perf_counter(), process_time()
    res = cosine_translation(head, a, b, args.target)
    c = res.c
    if args.dtype and args.dtype != head.dtype:
        from unembed.construct import stored_cosine

        res = replace(res, stored_dtype=args.dtype,
                      cosine_after_stored=stored_cosine(head, res.indices, c, args.dtype))
    seconds["construct"], cpu["construct"] = perf_counter() - t0, process_time() - c0
    # written, re-read and verified; the translation's float64 check in the same pass
    written = write_weights(head, args.out, shift=c, dtype=args.dtype, force=args.force,
                            hidden=H, n_random=args.n_random, seed=args.seed, pair=res.indices,
                            check_shift=True)
    seconds["write"], seconds["verify"] = written.write_seconds, written.verify_seconds
    cpu["write"], cpu["verify"] = written.write_cpu_seconds, written.verify_cpu_seconds
    out, eq, cos_written = written.out, written.equivalence, written.cosine_written
    equiv = written.construction
    assert cos_written is not None and equiv is not None  # a pair was given, and the check
    record = {"pair": list(res.labels), "target": res.target,
              "cosine_before": res.cosine_before, "cosine_after": res.cosine_after,
              "cosine_after_stored": res.cosine_after_stored, "stored_dtype": res.stored_dtype,
              "reached": res.reached, "translation_norm": float(np.linalg.norm(c)),
              "method": res.method, "equivalence": equiv.to_dict(), "out": str(out),
              "cosine_written": cos_written, "verification": eq.to_dict(),
              "seconds": seconds, "cpu_seconds": cpu}
    if args.json:
        print_json(record)
    else:
        print(f"{head!r}: pair {res.labels[0]!r}, {res.labels[1]!r}")
        print(f"  cosine before   {fmt(res.cosine_before, 12)}")
        print(f"  cosine after    {fmt(res.cosine_after, 12)}   (target {args.target:+g}; "
              f"recomputed in float64)")
        print(f"  cosine written  {fmt(cos_written, 12)}   (re-read from {out}, "
              f"stored as {written.dtype})")
        print(f"  translation     |c| = {np.linalg.norm(c):.6g}; {res.method}")
        print(f"  {eq.verdict}")
        print(f"wrote {out}")
    return 0 if eq.equivalent else 1


def _check_labels_target(args: argparse.Namespace) -> None:
    """``NAME.labels.json`` beside ``--out``: refused before any work when it exists and
    ``--force`` is not given (the labels written there would replace it)."""
    from unembed._io import check_target
    from unembed.sources.sidecar import labels_path

    check_target(labels_path(args.out), force=args.force)


def _reads_model(args: argparse.Namespace, source: str) -> bool:
    """Whether ``source`` is read as a whole model (written back in its own format) rather
    than as a weight file: a directory, a pickle, a hub name, or anything read with
    ``--as transformer-lens`` (a TransformerLens state dict is a model, not one tensor)."""
    return (args.read_as == "transformer-lens"
            or not _is_weight_file(source, args.revision))


def _is_weight_file(spec: str, revision: str | None = None) -> bool:
    import os

    from unembed._io import is_pickle
    from unembed.sources.hub_cache import find

    return not (os.path.isdir(spec) or is_pickle(spec) or find(spec, revision) is not None)


def run_keep_cosines(args: argparse.Namespace) -> int:
    """``--keep-cosines``: a head with the same raw cosines in which a label can no longer be
    the argmax (or a pair can no longer lead together), with the LP before and after."""
    from unembed._checks import UnembedError
    from unembed.export.weights import write_labels_beside
    from unembed.keep_cosines import not_top_two_keeping_cosines, unargmaxable_keeping_cosines
    from unembed.sources.files import write_head_like

    if not args.keep_cosines or (args.unargmaxable is None) == (args.not_top_two is None):
        raise UnembedError("--keep-cosines needs exactly one of --unargmaxable LABEL and "
                           "--not-top-two A B (and they need --keep-cosines).")
    if args.pair is not None or args.target is not None:
        raise UnembedError("--keep-cosines takes no --pair or --target.")
    from unembed._io import check_target

    source = head_source(args)
    if _reads_model(args, source):
        raise UnembedError(f"--keep-cosines works on a weight file; {source} is a model.")
    check_target(args.out, force=args.force)  # before any work
    _check_labels_target(args)
    head = load_head(args)
    res = (unargmaxable_keeping_cosines(head, args.unargmaxable) if args.unargmaxable
           else not_top_two_keeping_cosines(head, *args.not_top_two))
    out = write_head_like(res.head, args.out, force=args.force)
    write_labels_beside(head, out, force=args.force)
    mf = head.file
    assert mf is not None  # read from a weight file by load_head
    written = load_head(args, str(out) + (f":{mf.tensor}" if mf.tensor else ""))
    from unembed.feasibility import can_be_top_two, is_argmaxable

    idx = [head.index(x) for x in res.labels]
    after_written = (is_argmaxable(written, idx[0]) if res.question == "argmaxable"
                     else can_be_top_two(written, idx[0], idx[1]))
    record = {**res.to_dict(), "out": str(out), "after_written": after_written.to_dict()}
    if args.json:
        print_json(record)
    else:
        what = ("the argmax" if res.question == "argmaxable" else "the top two together")
        cert = res.after.certificate
        bound = f"certificate bound {cert.bound:.3g}" if cert is not None else "no certificate"
        print(f"{head!r}: {', '.join(repr(x) for x in res.labels)} can be {what}: "
              f"{res.before.status} before (margin {res.before.margin:.6g}), "
              f"{res.after.status} after ({bound}, tol {res.after.tol:.3g})")
        for k, v in record["scales"].items():
            print(f"  row {k!r} scaled by {v:.12g}")
        print(f"  largest change of a raw cosine: {res.cosine_change:.3g} (float64)")
        print(f"  as written ({head.dtype}): {after_written.status} "
              f"(margin {after_written.margin:.3g}, tol {after_written.tol:.3g})")
        print(f"wrote {out}")
    return 0 if after_written.status == "no" else 1
