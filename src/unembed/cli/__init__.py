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
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``unembed`` and ``python -m unembed``; returns the exit status."""
    parser = build_parser()
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
