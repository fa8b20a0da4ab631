"""The options of the command line, declared: which option each command takes, its type and
help. What the options mean for the library is in :mod:`unembed.cli._loading`; how results are
printed, :mod:`unembed.cli._print`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


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


def add_engine_args(p: argparse.ArgumentParser, *, workers_help: str) -> None:
    """--engine, --address, --workers."""
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="'ray': spread the work over Ray workers (pip install 'unembed[ray]'; "
                        "default: this machine's processes)")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="with --engine ray: the cluster to join (default: start a local Ray)")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N", help=workers_help)
