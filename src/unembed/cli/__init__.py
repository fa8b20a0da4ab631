"""``unembed`` command line: parse arguments, call the library, print. No math here.

Each command lives in its own module of this package with ``register(subparsers)`` and
``run(args) -> int``; :data:`COMMANDS` lists them in the order ``--help`` shows.

Options and positional arguments may come in any order (``unembed cosine W.npy --labels L a
b``). Whatever goes wrong ends in one line on stderr and a documented exit status
(:data:`EXIT_CODES`), never a traceback; with ``--json`` the same message is also printed on
stdout as ``{"error": ..., "exit_code": ...}``. Errors speak the command line: an error's
fields are rendered by :meth:`~unembed.errors.UnembedError.render_cli`, a library argument as
the option that sets it (``--force``, not ``force=True``); no message text is rewritten.
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from unembed._checks import UnembedError

COMMANDS: tuple[str, ...] = (
    "demo",
    "audit",
    "inspect",
    "cosine",
    "neighbours",
    "counterexample",
    "verify",
    "argmaxable",
    "feasible",
)

#: exit status -> meaning (shown by ``unembed --help``)
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "a negative verdict (verify: not equivalent; counterexample: the written head is not "
       "equivalent)",
    2: "a usage or input error (bad option, unreadable or refused file, unknown label)",
    3: "an internal error of unembed (a bug: please report it with the message)",
    130: "interrupted (SIGINT or SIGTERM); worker processes are stopped too",
    141: "the output pipe was closed (e.g. by head)",
}


class UsageError(Exception):
    """A command line that does not parse (raised instead of argparse's exit)."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are raised (one line, handled by :func:`main`), said
    where argparse finds them: an invalid choice and an unknown option name the closest
    valid ones."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.prog, message)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """A value outside ``choices`` (``--view centred``): the closest choices named."""
        if action.choices is None or value in action.choices:
            return
        import difflib

        choices = [str(c) for c in action.choices]
        near = difflib.get_close_matches(str(value), choices, n=2, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(c) for c in near)}?" if near else ""
        raise argparse.ArgumentError(action, f"invalid choice: {value!r}.{hint} Choices: "
                                             f"{', '.join(choices)}.")

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        ns, extras = self.parse_known_args(args, namespace)
        self._refuse_extras(extras)
        return ns

    def parse_intermixed_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                              namespace: argparse.Namespace | None = None
                              ) -> argparse.Namespace:
        ns, extras = self.parse_known_intermixed_args(args, namespace)
        self._refuse_extras(extras)
        return ns

    def _refuse_extras(self, extras: Sequence[str]) -> None:
        """Arguments nothing took: the first unknown option with the closest options of this
        parser, else the arguments themselves."""
        if not extras:
            return
        import difflib

        unknown = [t.split("=", 1)[0] for t in extras if t.startswith("--")]
        if not unknown:
            raise UsageError(self.prog, f"unrecognized arguments: {' '.join(extras)}")
        known = sorted(o[2:] for o in self._option_string_actions if o.startswith("--"))
        near = difflib.get_close_matches(unknown[0][2:], known, n=2, cutoff=0.6)
        hint = f" Did you mean {' or '.join('--' + n for n in near)}?" if near else ""
        raise UsageError(self.prog, f"unknown option {unknown[0]} for '{self.prog}'.{hint}")


def _epilog() -> str:
    lines = ["exit status:"] + [f"  {k:<4} {v}" for k, v in EXIT_CODES.items()]
    return "\n".join(lines)


#: One worked example per command, shown at the end of its ``--help``.
EXAMPLES: dict[str, str] = {
    "demo": "unembed demo --out demo-report --quick",
    "audit": "unembed audit --model openai-community/gpt2 --data notes.txt --out gpt2-audit\n"
             "  unembed audit --model W.npy --bias b.npy --data H.npy --out my-audit "
             "--pairs pairs.csv",
    "inspect": "unembed inspect --model openai-community/gpt2 --revision main\n"
               "  unembed inspect W.npy --labels labels.txt --pairs pairs.parquet\n"
               "  unembed inspect --model gpt2-small --as transformer-lens --no-center-unembed\n"
               "  unembed inspect --model en_pipeline/ --component parser",
    "cosine": "unembed cosine W.npy --labels labels.txt cat dog --view raw --view centered",
    "neighbours": "unembed neighbours W.npy --labels labels.txt cat dog -k 10 --view causal\n"
                  "  unembed neighbours W.npy --all --out nn.jsonl -k 10\n"
                  "  unembed neighbours W.npy cat -k 10 --view logit --data H.npy",
    "counterexample": "unembed counterexample W.npy --labels labels.txt --pair cat dog "
                      "--target -1 --out W_new.npy",
    "verify": "unembed verify W.npy W_new.npy --data H.npy\n"
              "  unembed verify --model gpt2-dir --model2 gpt2-new --data notes.txt",
    "argmaxable": "unembed argmaxable W.npy --labels labels.txt --radius arch",
    "feasible": "unembed feasible W.npy --labels labels.txt --top-two cat dog",
}


def _finish_command(name: str, p: argparse.ArgumentParser) -> None:
    """Every command: an example at the end of its help, ``--no-progress``, and its own
    options listed before the shared groups (:func:`~unembed.cli._options.own_options_first`)."""
    from unembed.cli._options import OUTPUT, own_options_first, shared_group

    example = EXAMPLES.get(name)
    if example:
        p.epilog = f"example:\n  {example}"
        p.formatter_class = argparse.RawDescriptionHelpFormatter
    if "--no-progress" not in p._option_string_actions:
        shared_group(p, OUTPUT).add_argument(
            "--no-progress", action="store_true",
            help="no progress bars or spinners (they are off anyway when stderr is not a "
                 "terminal)")
    own_options_first(p)


def _unknown_command(argv: Sequence[str]) -> str | None:
    """The error for a first argument that is neither an option nor a command, with the
    closest commands."""
    import difflib

    if not argv or argv[0].startswith("-") or argv[0] in COMMANDS:
        return None
    near = difflib.get_close_matches(argv[0], COMMANDS, n=2, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in near)}?" if near else ""
    return (f"invalid choice: {argv[0]!r} is not a command.{hint} Commands: "
            f"{', '.join(COMMANDS)} (see 'unembed --help').")


def build_parser() -> Parser:
    from unembed import __version__

    parser = Parser(
        prog="unembed",
        description="What the cosine of two label representations does and does not say "
        "about a classifier's probabilities.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"unembed {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=Parser)
    for name in COMMANDS:
        mod = importlib.import_module(f"unembed.cli.{name}")
        p = mod.register(sub)
        _finish_command(name, p)
        p.set_defaults(_run=mod.run, _arg_options=None)  # a command may map arguments at run
    return parser


def subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    """The parser of command ``name``, or None."""
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser | None = action.choices.get(name)
            return found
    return None


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; a command's options and positionals may be intermixed."""
    idx = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if idx is None or idx > 0 or argv[0] not in COMMANDS:
        return parser.parse_args(argv)  # --help, --version, or a usage error
    sub = subparser(parser, argv[0])
    assert sub is not None
    args = sub.parse_intermixed_args(argv[1:])
    args.command = argv[0]
    _place_positionals(sub, args)
    return args


def _place_positionals(sub: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """With ``--model PATH`` the head is not a positional: what argparse put in HEAD is the
    command's next positional (``unembed cosine --model DIR A B``)."""
    from unembed.cli._loading import head_options

    # the positionals after HEAD and those required, as the command declared them with
    # ``set_defaults`` (none when it declared none)
    extra: tuple[str, ...] = sub.get_default("_positionals") or ()
    required: tuple[str, ...] = sub.get_default("_required") or ()
    given = vars(args)
    if extra and head_options(args).model is not None and args.head is not None:
        vals = [v for v in [args.head, *(given[n] for n in extra)] if v is not None]
        if len(vals) > len(extra):
            sub.error(f"unrecognized arguments: {' '.join(vals[len(extra):])}")
        for n in extra:
            given[n] = vals.pop(0) if vals else None
        args.head = None
    missing = [n.upper() for n in required if given[n] is None]
    if missing:
        sub.error(f"the following arguments are required: {', '.join(missing)}")


# ------------------------------------------------------------------------------ error text
#: library arguments that are not the option of the same name (``labels`` of a function is a
#: list of labels, ``--labels`` a labels file): mapped only by a command's own ``_arg_options``
_NOT_OPTIONS = frozenset({"labels", "label", "head", "model", "inputs", "h", "W", "b"})


def option_names(p: argparse.ArgumentParser | None,
                 args: argparse.Namespace | None = None) -> dict[str, str]:
    """library argument -> the option that sets it (``force`` -> ``--force``)."""
    out: dict[str, str] = {}
    for a in p._actions if p is not None else []:
        longs = [o for o in a.option_strings if o.startswith("--")]
        if longs and a.dest not in out and a.dest not in _NOT_OPTIONS:
            out[a.dest] = longs[0]
    if args is not None and args._arg_options:
        out.update(args._arg_options)
    return out


def render(e: UnembedError, p: argparse.ArgumentParser | None,
           args: argparse.Namespace | None = None) -> str:
    """The message of ``e`` as the command line says it (:meth:`UnembedError.render_cli`): the
    option that sets the library argument at fault as the subject, no Python function names,
    settings as options. The error's fields are rendered; its text is never rewritten."""
    opt = None
    if e.argument is not None:
        opt = option_names(p, args).get(e.argument.replace("-", "_"))
    return e.render_cli(opt)


# ------------------------------------------------------------------------------ signals
def _stop_children() -> None:
    """Terminate this process's worker processes (LP pools), then reap them."""
    import multiprocessing

    kids = multiprocessing.active_children()
    for c in kids:
        c.terminate()
    for c in kids:
        c.join(timeout=5)
        if c.is_alive():
            c.kill()


@contextmanager
def _signals() -> Iterator[None]:
    """Within the block, SIGTERM (and SIGINT) stop the worker processes first and then raise
    KeyboardInterrupt in the main thread, so that cleanup (temporary outputs) runs."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    import os

    owner = os.getpid()

    def handler(signum: int, _frame: Any) -> None:
        if os.getpid() != owner:
            # a forked worker that has not yet installed its own handlers inherited this
            # one: it ends at once and quietly (no KeyboardInterrupt, no traceback)
            os._exit(128 + signum)
        if watchdogs:  # a second signal while unwinding: already on the way out
            return
        # cleanup runs as the exception unwinds; should it hang (a pool waiting on a worker
        # that was stopped), the process still ends with 130 within a few seconds

        def force_exit() -> None:
            # the same last line as an interrupt that unwinds in time (stderr, unbuffered)
            os.write(2, b"unembed: interrupted\n")
            os._exit(130)

        watchdog = threading.Timer(10.0, force_exit)
        watchdog.daemon = True
        watchdog.start()
        watchdogs.append(watchdog)
        _stop_children()
        raise KeyboardInterrupt

    watchdogs: list[threading.Timer] = []
    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for w in watchdogs:  # unwinding finished: no need to force the exit
            w.cancel()
        for s, h in old.items():
            signal.signal(s, h)


# ------------------------------------------------------------------------------ main
def _report(command: str | None, msg: str, code: int, as_json: bool) -> int:
    msg = " ".join(str(msg).split())
    where = f"unembed {command}" if command else "unembed"
    print(f"{where}: error: {msg}", file=sys.stderr)
    if as_json:
        try:
            print(json.dumps({"error": msg, "exit_code": code}, ensure_ascii=False))
        except BrokenPipeError:  # pragma: no cover
            pass
    return code


def _keep_freed_blocks() -> None:
    """On glibc, allocations below 64 MiB come from the heap and up to 256 MiB of freed
    memory stays mapped (``mallopt``), so that a command walking a file in blocks of a few MiB
    reuses the same pages block after block instead of mapping, faulting in and unmapping fresh
    ones (measured: about 2 s of system time in a neighbours query on a 2 GB head, 6.8 s ->
    2.7 s). Nothing on a C library without ``mallopt``."""
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD
    mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``unembed`` and ``python -m unembed``; returns the exit status
    (:data:`EXIT_CODES`)."""
    _keep_freed_blocks()
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    as_json = "--json" in argv
    command = argv[0] if argv and argv[0] in COMMANDS else None
    parser: argparse.ArgumentParser | None = None
    args: argparse.Namespace | None = None
    if not argv:  # bare ``unembed``: the help, not an error
        build_parser().print_help()
        return 0
    unknown = _unknown_command(argv)
    if unknown is not None:
        return _report(None, unknown, 2, as_json)
    try:
        with _signals():
            parser = build_parser()
            args = parse(parser, argv)
            return int(args._run(args))
    except UsageError as e:
        return _report(command, f"{e} (see '{e.prog} --help')", 2, as_json)
    except UnembedError as e:
        sub = subparser(parser, command) if parser is not None and command else None
        return _report(command, render(e, sub, args), 2, as_json)
    except KeyboardInterrupt:
        _stop_children()
        print("unembed: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``unembed inspect ... | head``): stop quietly, and keep Python
        # from complaining again while it flushes stdout at exit.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except SystemExit as e:  # --help, --version
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except MemoryError:
        return _report(command, "out of memory.", 2, as_json)
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        return _report(command, f"{where}{e.strerror or type(e).__name__}.", 2, as_json)
    except RecursionError:
        return _report(command, "input nested too deeply.", 2, as_json)
    except Exception as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return _report(command, f"internal error ({type(e).__name__}: {text}); this is a bug "
                                f"in unembed, please report it.", 3, as_json)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
