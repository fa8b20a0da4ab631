"""The options of the command line, declared: which option each command takes, its type and
help. What the options mean for the library is in :mod:`unembed.cli._loading`; how results are
printed, :mod:`unembed.cli._print`."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

#: The option groups every command shares, in the order ``--help`` lists them, after the
#: command's own options (which ``--help`` shows first, under "options").
READING = "reading the model"
LABELS = "labels"
DATA = "data"
ENGINE = "engine"
OUTPUT = "output"
SHARED_GROUPS: tuple[str, ...] = (READING, LABELS, DATA, ENGINE, OUTPUT)


#: what a shared group's title adds in ``--help``: where its options are explained
_GROUP_NOTES = {READING: " (every option explained: docs/sources.md)"}


def shared_group(p: argparse.ArgumentParser, title: str) -> argparse._ArgumentGroup:
    """The parser's argument group ``title`` (one of :data:`SHARED_GROUPS`), made on first
    use."""
    for g in p._action_groups:
        if _shared_title(g) == title:
            return g
    return p.add_argument_group(title + _GROUP_NOTES.get(title, ""))


def _shared_title(g: argparse._ArgumentGroup) -> str | None:
    """The shared group ``g`` is (its title without the note), or None for another group."""
    title = g.title or ""
    return next((t for t in SHARED_GROUPS if title == t + _GROUP_NOTES.get(t, "")), None)


def own_options_first(p: argparse.ArgumentParser, width: int = 79) -> None:
    """List the command's own options first in its ``--help``, then the shared groups in the
    order of :data:`SHARED_GROUPS`; the usage names only the command's own options and
    positionals, then the shared groups by title ("and the options of: ...")."""
    shared = {t: g for g in p._action_groups if (t := _shared_title(g)) is not None}
    own = [g for g in p._action_groups if _shared_title(g) is None]
    p._action_groups[:] = own + [shared[t] for t in SHARED_GROUPS if t in shared]
    shared_actions = {id(a) for g in shared.values() for a in g._group_actions}
    mine = [a for a in p._actions if id(a) not in shared_actions]
    groups = [g for g in p._mutually_exclusive_groups
              if all(id(a) not in shared_actions for a in g._group_actions)]
    fmt = p._get_formatter()
    fmt.add_usage(None, mine, groups, prefix="usage: ")
    indent = " " * (len(p.prog) + 8)
    lines = [_break_alternatives(line, indent, width)
             for line in fmt.format_help().strip()[len("usage: "):].splitlines()]
    if shared:
        names = ", ".join(t for t in SHARED_GROUPS if t in shared)
        lines.append(textwrap.fill(f"(and the options of: {names})", width,
                                   initial_indent=indent, subsequent_indent=indent))
    p.usage = "\n".join(lines).replace("%", "%%")


def _break_alternatives(line: str, indent: str, width: int) -> str:
    """A usage line longer than ``width`` (a mutually exclusive group: argparse does not wrap
    one) broken before its `` | `` alternatives."""
    if len(line) <= width or " | " not in line:
        return line
    out: list[str] = []
    cur = ""
    for i, part in enumerate(line.split(" | ")):
        piece = part if i == 0 else f"| {part}"
        if cur and len(cur) + 1 + len(piece) > width:
            out.append(cur)
            cur = indent + piece
        else:
            cur = f"{cur} {piece}" if cur else piece
    out.append(cur)
    return "\n".join(out)


def add_head_args(p: argparse.ArgumentParser) -> None:
    """Options that name one head: HEAD or --model PATH (the same thing: a weight file spec,
    a model directory or a pickled estimator), bias, labels, link. HEAD is the command's
    first positional; the options go to the shared groups "reading the model", "labels" and
    "engine"."""
    p.add_argument("head", metavar="HEAD", nargs="?",
                   help="the head: a weight file (V, d) as PATH or PATH:TENSOR (.npy, .pt, "
                        ".safetensors), a model directory, or a pickled estimator (.pkl); or "
                        "--model PATH")
    r = shared_group(p, READING)
    r.add_argument("--model", metavar="PATH",
                   help="as HEAD, or a hub name ORG/NAME (local cache, never downloaded) or a "
                        "spaCy pipeline")
    r.add_argument("--bias", metavar="FILE", help="bias (V,): PATH or PATH:TENSOR")
    r.add_argument("--link", choices=("softmax", "sigmoid"), default="softmax",
                   help="logits -> probabilities (default: softmax)")
    r.add_argument("--softcap", type=float, default=None, metavar="CAP",
                   help="logits pass through CAP * tanh(z / CAP)")
    r.add_argument("--temperature", metavar="T|FILE",
                   help="scores / T before the softmax (T > 0, or a .npy of one T per row "
                        "of --data)")
    r.add_argument("--fold", action="store_true",
                   help="fold the final norm's gain (and shift) into the head")
    r.add_argument("--revision", metavar="REV",
                   help="hub name: branch, tag or commit (default: main)")
    r.add_argument("--component", metavar="NAME",
                   help="spaCy: tagger, morphologizer, senter, parser or ner")
    r.add_argument("--transpose", action="store_true",
                   help="weight file stored (d, V) (TransformerLens's W_U): read its transpose")
    r.add_argument("--allow-degenerate", action="store_true",
                   help="accept all-zero and identical (padding) rows")
    r.add_argument("--trust-remote-code", action="store_true",
                   help="run a HuggingFace directory's own code (auto_map)")
    r.add_argument("--trust-pickle", action="store_true",
                   help="allow unpickling --model FILE (a pickle can run code)")
    lab = shared_group(p, LABELS)
    lab.add_argument("--labels", metavar="FILE|DIR",
                     help="a file (lines, JSON list, id2label) or tokenizer dir")
    lab.add_argument("--unique-labels", action="store_true",
                     help="rename repeated labels (sr, sr -> sr, sr#2)")
    add_tl_args(p)
    add_device_args(p)


def add_tl_args(p: argparse.ArgumentParser) -> None:
    """--as transformer-lens and TransformerLens's from_pretrained processing switches."""
    r = shared_group(p, READING)
    r.add_argument("--as", dest="read_as", choices=("transformer-lens",), default=None,
                   help="read --model as HookedTransformer.from_pretrained does")
    r.add_argument("--no-fold-ln", action="store_true",
                   help="with --as transformer-lens: fold_ln=False")
    r.add_argument("--no-center-unembed", action="store_true",
                   help="with --as transformer-lens: center_unembed=False")
    r.add_argument("--no-center-writing-weights", action="store_true",
                   help="with --as transformer-lens: center_writing_weights=False")


def add_device_args(p: argparse.ArgumentParser) -> None:
    """--device and --model-dtype: where and in what precision a torch model runs."""
    e = shared_group(p, ENGINE)
    e.add_argument("--device", default=None, metavar="DEV",
                   help="torch device: cpu, cuda, mps (default: CUDA if any)")
    e.add_argument("--model-dtype", default=None, metavar="DTYPE",
                   help="torch forward-pass dtype (default: the model's own)")


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
    audit's data and the data views' ``--data``), in the shared group "data"; ``when``
    prefixes each help text."""
    g = shared_group(p, DATA)
    g.add_argument("--max-inputs", type=positive_int, default=None, metavar="N",
                   help=f"{when}read at most N inputs (windows for text, rows for arrays)")
    g.add_argument("--batch-size", type=positive_int, default=16, metavar="B",
                   help=f"{when}inputs per model call (default 16)")
    g.add_argument("--window", type=positive_int, default=64, metavar="T",
                   help=f"{when}tokens per window for text data (default 64)")


def add_json_arg(p: argparse.ArgumentParser, *, progress: bool = True) -> None:
    """--json (one JSON object on stdout; errors too) and --no-progress, in the shared group
    "output"."""
    g = shared_group(p, OUTPUT)
    g.add_argument("--json", action="store_true",
                   help="print one JSON object for scripts (an error prints "
                        '{"error": ..., "exit_code": ...})')
    if progress:
        g.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_engine_args(p: argparse.ArgumentParser, *, workers_help: str) -> None:
    """--engine, --address, --workers, in the shared group "engine"."""
    g = shared_group(p, ENGINE)
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="'ray': spread the work over Ray workers (pip install 'unembed[ray]'; "
                        "default: this machine's processes)")
    g.add_argument("--address", default=None, metavar="ADDR",
                   help="with --engine ray: the cluster to join (default: start a local Ray)")
    g.add_argument("--workers", type=positive_int, default=None, metavar="N", help=workers_help)
