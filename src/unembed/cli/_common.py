"""Shared CLI pieces: how a head is named on the command line, and how results are printed."""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from unembed._json import jsonable
from unembed.head import Head

if TYPE_CHECKING:
    from unembed.model import LoadedModel


def add_head_args(p: argparse.ArgumentParser) -> None:
    """Options that name one head: HEAD or --model PATH (the same thing: a weight file spec,
    a model directory or a pickled estimator), bias, labels, link."""
    p.add_argument("head", metavar="HEAD", nargs="?",
                   help="the head: a weight file of shape (V, d), PATH or PATH:TENSOR "
                        "(.npy, .pt/.pth/.bin read with weights_only=True, .safetensors), a "
                        "local HuggingFace model directory or a pickled scikit-learn estimator "
                        "(.pkl); or give it as --model PATH")
    p.add_argument("--model", metavar="PATH",
                   help="the same as HEAD: a weight file, a local HuggingFace directory "
                        "(causal LM, text or image classifier), a hub name ORG/NAME read from "
                        "the local hub cache (never downloaded), a spaCy pipeline directory, or "
                        "a pickled scikit-learn estimator (.pkl, needs --trust-pickle)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="run the Python code a HuggingFace directory names (auto_map); only "
                        "for directories you trust (default: such a directory is refused)")
    p.add_argument("--unique-labels", action="store_true",
                   help="rename repeated labels instead of refusing them: sr, sr -> sr, sr#2")
    p.add_argument("--component", metavar="NAME",
                   help="with a spaCy pipeline: the component to read: tagger, morphologizer, "
                        "senter, parser or ner (default: the only tagger; without one, the only "
                        "other component of these)")
    p.add_argument("--revision", metavar="REV",
                   help="with a hub name: the branch, tag or commit hash in the hub cache "
                        "(default: main)")
    p.add_argument("--fold", action="store_true",
                   help="with --model: fold the final norm's gain (and shift) into the head "
                        "(the 'folded' view; default: the raw stored rows)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow unpickling --model FILE (a pickle can run code: only for files "
                        "you trust)")
    p.add_argument("--bias", metavar="FILE", help="bias file of shape (V,): PATH or PATH:TENSOR")
    p.add_argument("--labels", metavar="FILE|DIR",
                   help="labels: a file (one per line, or a JSON list / id2label dict) or a "
                        "tokenizer directory (row i is token i); for a model with labels of its "
                        "own, these replace them")
    p.add_argument("--link", choices=("softmax", "sigmoid"), default="softmax",
                   help="how logits become probabilities (default: softmax)")
    p.add_argument("--softcap", type=float, default=None, metavar="CAP",
                   help="the logits pass through CAP * tanh(z / CAP)")
    p.add_argument("--temperature", metavar="T|FILE",
                   help="weight-file heads: the model divides its scores by a temperature "
                        "before the softmax: a number T > 0, or a .npy file of one T per "
                        "input row (with --data H.npy)")
    p.add_argument("--transpose", action="store_true",
                   help="weight files: the matrix is stored (d, V), one column per label "
                        "(TransformerLens's W_U): read its transpose (without it such a "
                        "matrix is refused when its labels or name say so)")
    p.add_argument("--allow-degenerate", action="store_true",
                   help="accept all-zero and identical rows (padding rows of real checkpoints)")
    add_device_args(p)
    add_tl_args(p)


def add_tl_args(p: argparse.ArgumentParser) -> None:
    """--as transformer-lens and TransformerLens's from_pretrained processing switches."""
    p.add_argument("--as", dest="read_as", choices=("transformer-lens",), default=None,
                   help="read --model NAME as TransformerLens reads it: "
                        "HookedTransformer.from_pretrained(NAME) from the local hub cache "
                        "(a name from TransformerLens 3.x's model table, e.g. gpt2-small; "
                        "never downloaded) or a local HuggingFace directory it converts, "
                        "with its default processing (fold_ln, center_writing_weights, "
                        "center_unembed)")
    p.add_argument("--no-fold-ln", action="store_true",
                   help="with --as transformer-lens: fold_ln=False (keep the final LayerNorm's "
                        "gain out of W_U: the stored rows)")
    p.add_argument("--no-center-unembed", action="store_true",
                   help="with --as transformer-lens: center_unembed=False (do not subtract the "
                        "mean row from W_U)")
    p.add_argument("--no-center-writing-weights", action="store_true",
                   help="with --as transformer-lens: center_writing_weights=False")


def add_device_args(p: argparse.ArgumentParser) -> None:
    """--device and --model-dtype: where and in what precision a torch model runs."""
    p.add_argument("--device", default=None, metavar="DEV",
                   help="where a torch model's forward passes run: cpu, cuda, cuda:1, mps "
                        "(default: CUDA when present, else the CPU)")
    p.add_argument("--model-dtype", default=None, metavar="DTYPE",
                   help="dtype of a torch model's forward passes: float32, float16, bfloat16, "
                        "float64 (default: the checkpoint's own; the head analysed is always "
                        "the checkpoint's)")


class _DeprecatedAlias(argparse.Action):
    """An old spelling of an option: stores into the new option's ``dest`` and says on stderr
    that it is deprecated (hidden from ``--help``)."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, new: str,
                 **kw: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kw)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(f"{parser.prog}: {option_string} is deprecated; use {self.new}.", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_deprecated_alias(p: argparse.ArgumentParser | argparse._ActionsContainer, old: str,
                         new: str, dest: str, **kw: Any) -> None:
    """``old`` as a hidden, deprecated spelling of the option ``new`` (same ``dest``, nargs
    and metavar given in ``kw``): it still works and warns on stderr."""
    p.add_argument(old, dest=dest, action=_DeprecatedAlias, new=new, **kw)


def _int_at_least(text: str, low: int, kind: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a {kind} integer. Got {text!r} "
                                         f"instead") from None
    if v < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}. Got {v} instead")
    return v


def positive_int(text: str) -> int:
    """An option value that must be an integer >= 1 (argparse names the option on error)."""
    return _int_at_least(text, 1, "positive")


def non_negative_int(text: str) -> int:
    """An option value that must be an integer >= 0 (argparse names the option on error)."""
    return _int_at_least(text, 0, "non-negative")


def add_stream_args(p: argparse.ArgumentParser, when: str = "") -> None:
    """--max-inputs, --batch-size and --window: how data are streamed through a model (the
    audit's data and the data views' ``--data``); ``when`` prefixes each help text."""
    p.add_argument("--max-inputs", type=positive_int, default=None, metavar="N",
                   help=f"{when}read at most N inputs (windows for text, rows for arrays)")
    p.add_argument("--batch-size", type=positive_int, default=16, metavar="B",
                   help=f"{when}inputs per model call (default 16)")
    p.add_argument("--window", type=positive_int, default=64, metavar="T",
                   help=f"{when}tokens per window for text data (default 64)")


def add_json_arg(p: argparse.ArgumentParser, *, progress: bool = True) -> None:
    """--json (one JSON object on stdout; errors too) and --no-progress."""
    p.add_argument("--json", action="store_true",
                   help="print one JSON object for scripts (an error prints "
                        '{"error": ..., "exit_code": ...})')
    if progress:
        p.add_argument("--no-progress", action="store_true", help="no progress bars")


def head_source(args: argparse.Namespace) -> str:
    """What names the head: HEAD or --model (one of them, not both)."""
    from unembed._checks import fail

    head, model = getattr(args, "head", None), getattr(args, "model", None)
    if head is not None and model is not None and head != model:
        raise fail(f"name the head once: HEAD ({head}) or --model ({model}), not both.")
    source = model if model is not None else head
    if source is None:
        raise fail("name a head: HEAD (a weight file, model directory or .pkl), or "
                   "--model PATH.")
    return str(source)


def fixed_temperature(args: argparse.Namespace) -> float | None:
    """``--temperature T`` as a number (None when absent or a per-input file)."""
    t = getattr(args, "temperature", None)
    if t is None:
        return None
    try:
        value = float(t)
    except ValueError:
        return None
    if not (0 < value < float("inf")):
        from unembed._checks import fail

        raise fail(f"--temperature must be a positive number or a .npy file. Got {t!r} "
                   f"instead.")
    return value


def per_input_temperature(args: argparse.Namespace, n: int) -> Any:
    """``--temperature FILE``: one positive T per input row, shape (n,) float64; None when
    the option is absent or a number."""
    t = getattr(args, "temperature", None)
    if t is None or fixed_temperature(args) is not None:
        return None
    import numpy as np

    from unembed._checks import fail
    from unembed.sources.files import read_tensor

    arr = np.asarray(read_tensor(t, ndim=1).array, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n:
        raise fail(f"{t}: {arr.shape[0]} temperatures for {n} input rows; expected one per "
                   f"row.")
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise fail(f"{t}: every temperature must be a positive finite number.")
    return arr


def scaled_inputs(args: argparse.Namespace, H: Any, head: Head) -> Any:
    """Hidden states H (n, d) with ``--temperature FILE`` applied: z = (W h + b) / T is
    W (h / T) exactly when the head has no bias; with a bias the per-input T is not one head
    and is refused."""
    import numpy as np

    T = per_input_temperature(args, int(np.asarray(H).shape[0]))
    if T is None:
        return H
    if head.b is not None and np.any(head.b != 0):
        from unembed._checks import fail

        raise fail(f"{args.temperature}: a per-input temperature with a bias is not one head "
                   f"(the bias would be divided by a different T for each input); fold the "
                   f"bias into the weights or give a fixed --temperature.")
    return np.asarray(H, dtype=np.float64) / T[:, None]


def model_loader(args: argparse.Namespace,
                 spec: str | None = None) -> functools.partial[LoadedModel]:
    """``load(...)`` of the model named by HEAD or ``--model`` (``spec`` overrides both), with
    the options given, as a picklable call: workers of ``--engine ray`` run it themselves."""
    from unembed.sources import load

    if getattr(args, "read_as", None) == "transformer-lens":
        return _tl_loader(args, spec)
    tl_only = [o for o, dest in (("--no-fold-ln", "no_fold_ln"),
                                 ("--no-center-unembed", "no_center_unembed"),
                                 ("--no-center-writing-weights", "no_center_writing_weights"))
               if getattr(args, dest, False)]
    if tl_only:
        from unembed._checks import fail

        raise fail(f"{tl_only[0]} applies with --as transformer-lens.")
    return functools.partial(
        load,
        spec if spec is not None else head_source(args),
        fold=getattr(args, "fold", False),
        trust_pickle=getattr(args, "trust_pickle", False),
        labels=args.labels,
        bias=args.bias,
        link=args.link,
        softcap=args.softcap,
        strict=not args.allow_degenerate,
        trust_remote_code=getattr(args, "trust_remote_code", False),
        unique_labels=getattr(args, "unique_labels", False),
        device=getattr(args, "device", None),
        model_dtype=getattr(args, "model_dtype", None),
        revision=getattr(args, "revision", None),
        component=getattr(args, "component", None),
        temperature=fixed_temperature(args),
        transpose=getattr(args, "transpose", False),
    )


def _tl_loader(args: argparse.Namespace, spec: str | None) -> functools.partial[Any]:
    """``load_pretrained(NAME, ...)`` for ``--as transformer-lens``; options that mean nothing
    for a TransformerLens model are refused, not ignored."""
    from unembed._checks import fail
    from unembed.sources.tlens import load_pretrained

    given = [(o, v) for o, v in (("--fold", getattr(args, "fold", False)),
                                 ("--bias", args.bias), ("--softcap", args.softcap),
                                 ("--temperature", getattr(args, "temperature", None)),
                                 ("--trust-pickle", getattr(args, "trust_pickle", False)),
                                 ("--trust-remote-code", getattr(args, "trust_remote_code",
                                                                 False)),
                                 ("--component", getattr(args, "component", None)),
                                 ("--transpose", getattr(args, "transpose", False)))
             if v not in (None, False)]
    if args.link != "softmax":
        given.append(("--link", args.link))
    if given:
        why = (" (TransformerLens folds the final norm by default: fold_ln; --no-fold-ln turns "
               "it off)" if given[0][0] == "--fold" else "")
        raise fail(f"{given[0][0]} does not apply with --as transformer-lens{why}.")
    device = getattr(args, "device", None)
    if device is not None and device != "cpu":
        raise fail(f"--device {device}: with --as transformer-lens the model runs on the CPU "
                   f"here.")
    from unembed.sources.tlens import STATE_DICT_SUFFIXES

    source = spec if spec is not None else head_source(args)
    if os.path.isfile(source) or source.endswith(STATE_DICT_SUFFIXES):
        return _tl_file_loader(args, source)
    return functools.partial(
        load_pretrained, spec if spec is not None else head_source(args),
        revision=getattr(args, "revision", None),
        fold_ln=not args.no_fold_ln, center_unembed=not args.no_center_unembed,
        center_writing_weights=not args.no_center_writing_weights,
        dtype=getattr(args, "model_dtype", None), strict=not args.allow_degenerate,
        labels=args.labels, unique_labels=getattr(args, "unique_labels", False))


def _tl_file_loader(args: argparse.Namespace, path: str) -> functools.partial[Any]:
    """``load_state_dict_file(PATH, ...)``: a state dict (with its config beside it) is read as
    written, so the processing switches and --revision are refused, not ignored."""
    from unembed._checks import fail
    from unembed.sources.tlens import load_state_dict_file

    for option, dest in (("--no-fold-ln", "no_fold_ln"),
                         ("--no-center-unembed", "no_center_unembed"),
                         ("--no-center-writing-weights", "no_center_writing_weights"),
                         ("--revision", "revision")):
        if getattr(args, dest, None) not in (None, False):
            raise fail(f"{option} does not apply to a state dict file ({path}): it is read as "
                       f"written, and its processing is read off its weights.")
    return functools.partial(
        load_state_dict_file, path, dtype=getattr(args, "model_dtype", None),
        strict=not args.allow_degenerate, labels=args.labels,
        unique_labels=getattr(args, "unique_labels", False))


def load_model(args: argparse.Namespace, spec: str | None = None) -> LoadedModel:
    """The model named by HEAD or ``--model``; ``spec`` overrides both. What a command needs
    beyond :class:`~unembed.sources.base.LoadedModel` it narrows to explicitly (an export:
    :func:`unembed.sources.base.check_exportable`)."""
    return model_loader(args, spec)()


def add_engine_args(p: argparse.ArgumentParser, *, workers_help: str) -> None:
    """--engine, --address, --workers."""
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="'ray': spread the work over Ray workers (pip install 'unembed[ray]'; "
                        "default: this machine's processes)")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="with --engine ray: the cluster to join (default: start a local Ray)")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N", help=workers_help)


def ray_engine(args: argparse.Namespace) -> Any:
    """The RayEngine the options ask for, or None for --engine local."""
    if args.engine != "ray":
        if args.address is not None:
            from unembed._checks import fail

            raise fail("--address needs --engine ray.")
        return None
    import os

    from unembed.engine import RayEngine, reachable

    if args.address is not None:
        reachable(args.address)  # before any work: an unreachable cluster is an error now
    return RayEngine(workers=args.workers or max(1, min(8, os.cpu_count() or 1)),
                     address=args.address)


def load_head(args: argparse.Namespace, spec: str | None = None) -> Head:
    """The head named by the parsed options (``spec`` overrides HEAD and --model)."""
    return load_model(args, spec).head


def masked_note(head: Head) -> str | None:
    """For a head whose model takes the argmax over a per-input subset of labels (spaCy's
    parser and NER: the moves valid in each state), what a feasibility answer over all labels
    does and does not say; None for every other head."""
    if not head.masked_argmax:
        return None
    return ("this component takes the argmax over the moves valid in each state; these "
            "answers are over all moves: a move that is never the argmax over all moves can "
            "still be chosen in states where the moves beating it are invalid")


def print_json(obj: Any) -> None:
    json.dump(jsonable(obj), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def fmt(x: float, digits: int = 6) -> str:
    return f"{x:+.{digits}f}" if math.isfinite(x) else str(x)
