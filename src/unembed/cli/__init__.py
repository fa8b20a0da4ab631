"""``unembed`` command line: parse arguments, call the library, print. No math here.

Each command lives in its own module of this package with ``register(subparsers)`` and
``run(args) -> int``; :data:`COMMANDS` lists them in the order ``--help`` shows.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from unembed._checks import UnembedError

COMMANDS: tuple[str, ...] = (
    "demo",
    "audit",
    "inspect",
    "cosine",
    "counterexample",
    "verify",
    "argmaxable",
    "feasible",
)


#: One worked example per command, shown at the end of its ``--help``.
EXAMPLES: dict[str, str] = {
    "demo": "unembed demo --out demo-report --quick",
    "audit": "unembed audit --model openai-community/gpt2 --data notes.txt --out gpt2-audit\n"
             "  unembed audit --model W.npy --bias b.npy --data H.npy --out my-audit "
             "--pairs pairs.csv",
    "inspect": "unembed inspect --model openai-community/gpt2 --revision main\n"
               "  unembed inspect W.npy --labels labels.txt --pairs pairs.parquet",
    "cosine": "unembed cosine W.npy --labels labels.txt cat dog --view raw --view centered",
    "counterexample": "unembed counterexample W.npy --labels labels.txt --pair cat dog "
                      "--target -1 --out W_new.npy",
    "verify": "unembed verify W.npy W_new.npy --inputs H.npy",
    "argmaxable": "unembed argmaxable W.npy --labels labels.txt --radius arch",
    "feasible": "unembed feasible W.npy --labels labels.txt --top-two cat dog",
}


def _finish_command(name: str, p: argparse.ArgumentParser) -> None:
    """Every command: an example at the end of its help, and ``--no-progress``."""
    example = EXAMPLES.get(name)
    if example:
        p.epilog = f"example:\n  {example}"
        p.formatter_class = argparse.RawDescriptionHelpFormatter
    if "--no-progress" not in p._option_string_actions:
        p.add_argument("--no-progress", action="store_true",
                       help="no progress bars or spinners (they are off anyway when stderr "
                            "is not a terminal)")


def _unknown_command(argv: Sequence[str]) -> str | None:
    """The error for a first argument that is neither an option nor a command, with the
    closest commands."""
    import difflib

    if not argv or argv[0].startswith("-") or argv[0] in COMMANDS:
        return None
    near = difflib.get_close_matches(argv[0], COMMANDS, n=2, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in near)}?" if near else ""
    return (f"unembed: unknown command {argv[0]!r}.{hint} Commands: {', '.join(COMMANDS)} "
            f"(unembed --help).")


def build_parser() -> argparse.ArgumentParser:
    from unembed import __version__

    parser = argparse.ArgumentParser(
        prog="unembed",
        description="What the cosine of two label representations does and does not say "
        "about a classifier's probabilities.",
    )
    parser.add_argument("--version", action="version", version=f"unembed {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        mod = importlib.import_module(f"unembed.cli.{name}")
        p = mod.register(sub)
        _finish_command(name, p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``unembed`` and ``python -m unembed``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 0
    unknown = _unknown_command(argv)
    if unknown is not None:
        print(unknown, file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        return int(args._run(args))
    except UnembedError as e:
        print(f"unembed {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("unembed: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``unembed inspect ... | head``): stop quietly, and keep Python
        # from complaining again while it flushes stdout at exit.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
