"""Exceptions that a dependency raises while it reads a file the user named, as one line.

unembed hands the files it is given to spaCy, thinc, confection, transformers,
TransformerLens, torch and safetensors. What they raise on a file they cannot read (a config
with a duplicate section, a language that does not exist, a value of the wrong type) is the
file's fault, not unembed's: :func:`reading` turns it into an
:class:`~unembed.errors.UnembedError` naming the file (exit status 2 on the command line) and
the dependency that refused it::

    PATH: spacy cannot read it (ImportError: [E048] Can't import language zz ...).

Only *known* error types count, and only when they were raised inside a dependency (the
innermost frame of the traceback is not unembed's own code): an exception unembed raises
itself, or a type no dependency documents for bad input, is still a bug (exit status 3).
"""

from __future__ import annotations

import configparser
import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from unembed._checks import UnembedError

__all__ = ["DEPENDENCY_ERRORS", "from_dependency", "raising_package", "reading",
           "reads_named_file"]

#: The exception types a dependency raises on a file it cannot read: bad values and types
#: (ValueError, TypeError, KeyError, IndexError, AttributeError of a config that is not the
#: shape expected), a module a config names that does not exist (ImportError), an unreadable
#: or undecodable file (OSError, UnicodeError, EOFError), a config file that does not parse
#: (configparser.Error), a file nested or sized beyond reason (RecursionError,
#: OverflowError), and torch's and safetensors' refusals (RuntimeError).
DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, TypeError, KeyError, IndexError, AttributeError, ImportError, OSError,
    UnicodeError, EOFError, configparser.Error, RecursionError, OverflowError, RuntimeError,
)

_OWN = str(Path(__file__).resolve().parent) + os.sep


def raising_package(e: BaseException) -> str | None:
    """The top-level package whose code raised ``e`` (the innermost frame of its traceback),
    or None when that frame is unembed's own code or unknown."""
    tb = e.__traceback__
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = str(Path(tb.tb_frame.f_code.co_filename).resolve())
    if filename.startswith(_OWN):
        return None
    module = tb.tb_frame.f_globals.get("__name__")
    if not isinstance(module, str) or not module:
        return "a dependency"
    return module.split(".", 1)[0]


def from_dependency(e: BaseException) -> bool:
    """Whether ``e`` is a known error type raised inside a dependency (see the module
    docstring); an :class:`UnembedError` is unembed's own."""
    if isinstance(e, UnembedError) or not isinstance(e, DEPENDENCY_ERRORS):
        return False
    return raising_package(e) is not None


def _first_line(e: BaseException, limit: int = 200) -> str:
    text = str(e).strip()
    if isinstance(e, KeyError) and e.args:
        text = repr(e.args[0])
    line = " ".join(text.split())  # a multi-line message (confection's) on one line
    return line if len(line) <= limit else line[:limit - 3] + "..."


@contextmanager
def reading(path: str | os.PathLike[str]) -> Iterator[None]:
    """Within the block, a known dependency error (:func:`from_dependency`) becomes
    ``PATH: PACKAGE cannot read it (Type: first line of its message).``; anything else
    passes unchanged."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit, MemoryError, UnembedError):
        raise
    except Exception as e:
        if not from_dependency(e):
            raise
        package = raising_package(e)
        text = _first_line(e)
        detail = f"{type(e).__name__}: {text}" if text else type(e).__name__
        if isinstance(e, RecursionError):
            detail = "nested too deeply"
        raise UnembedError(f"{package} cannot read it ({detail}).", path=path) from None


_P = ParamSpec("_P")
_R = TypeVar("_R")


def reads_named_file(
        func: Callable[Concatenate[Any, _P], _R]) -> Callable[Concatenate[Any, _P], _R]:
    """``func(source, ...)`` under :func:`reading` when ``source`` is a path (a loader whose
    first argument names the file or directory it reads)."""

    @functools.wraps(func)
    def wrapper(source: Any, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if not isinstance(source, (str, os.PathLike)):
            return func(source, *args, **kwargs)
        with reading(source):
            return func(source, *args, **kwargs)

    return wrapper
