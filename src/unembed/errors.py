"""The one exception of unembed and its grammar: an error is raised with structured fields,
and each front end renders them; no front end rewrites a message's text.

An :class:`UnembedError` carries

* ``problem``: what is wrong, one sentence that starts with a verb where an argument, option
  or file is the subject ("must be in [-1, 1]"), else a whole sentence; ``got`` (the value
  passed) is shown as ``Got <repr> instead.``;
* ``argument``: the Python argument at fault (its API name), with ``function``, the function
  or class it belongs to;
* ``option``: the command-line option at fault, where the error is about one;
* ``path``: the file or directory at fault;
* ``label``: the label at fault.

A setting named inside the problem (``pass force=True``) is a :class:`Setting`, rendered as
the front end calls it.

Python (``str(e)``, :meth:`UnembedError.render`):

>>> str(UnembedError("must be in [-1, 1]", argument="target",
...                  function="translation_for_cosine", got=1.5))
"The 'target' argument of translation_for_cosine must be in [-1, 1]. Got 1.5 instead."
>>> str(UnembedError(("already exists; pass ", FORCE, " to replace it."), path="out.npy"))
'out.npy: already exists; pass --force (force=True) to replace it.'

Command line (:meth:`UnembedError.render_cli`, given the option that sets the argument):

>>> UnembedError("must be in [-1, 1]", argument="target", function="translation_for_cosine",
...              got=1.5).render_cli("--target")
'--target must be in [-1, 1]. Got 1.5 instead.'
>>> UnembedError(("already exists; pass ", FORCE, " to replace it."),
...              path="out.npy").render_cli()
'out.npy: already exists; pass --force to replace it.'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

__all__ = ["FORCE", "Setting", "UnembedError"]


@dataclass(frozen=True)
class Setting:
    """A setting a message asks for: ``api`` as Python spells it (``force=True``) and ``cli``
    as the command line does (``--force``, None where no option sets it)."""

    api: str
    cli: str | None = None

    def render(self) -> str:
        """Python: ``--force (force=True)`` (both, so a message reads for either user)."""
        return f"{self.cli} ({self.api})" if self.cli else self.api

    def render_cli(self) -> str:
        """Command line: ``--force``."""
        return self.cli or self.api


#: the setting that replaces an existing output
FORCE = Setting("force=True", "--force")

_MISSING: Any = object()

Problem = str | Sequence[str | Setting]


def _words(text: str) -> str:
    return " ".join(text.split())


class UnembedError(ValueError):
    """The one exception type of unembed: bad input, or a request the model does not allow.

    A subclass of :class:`ValueError`. The message (``str(e)``) is a single line naming the
    argument, file or label at fault; the fields it is made from are kept (``argument``,
    ``function``, ``option``, ``path``, ``label``, ``problem``) so that other front ends
    render the same error in their own words (:meth:`render_cli`).
    """

    def __init__(self, problem: Problem, *, argument: str | None = None,
                 function: str | None = None, option: str | None = None,
                 path: str | PathLike[str] | None = None, label: str | None = None,
                 got: Any = _MISSING) -> None:
        self.parts: tuple[str | Setting, ...] = (
            (problem,) if isinstance(problem, str) else tuple(problem))
        self.argument = argument
        self.function = function
        self.option = option
        self.path = None if path is None else str(path)
        self.label = label
        self.got = "" if got is _MISSING else f" Got {got!r} instead."
        super().__init__(self.render())

    def _problem(self, cli: bool) -> str:
        text = _words("".join(p if isinstance(p, str) else
                              (p.render_cli() if cli else p.render()) for p in self.parts))
        if self.got:
            text = text.rstrip(".") + "." + self.got
        return text

    @property
    def problem(self) -> str:
        """What is wrong, as Python says it (no subject)."""
        return self._problem(False)

    def render(self) -> str:
        """The message for a Python caller: ``The 'x' argument of f <problem>``, ``PATH:
        <problem>``, ``f: <problem>`` or the problem alone."""
        problem = self._problem(False)
        if self.argument is not None:
            of = f" of {self.function}" if self.function else ""
            return f"The {self.argument!r} argument{of} {problem}"
        if self.path is not None:
            return f"{self.path}: {problem}"
        if self.option is not None:
            return f"{self.option} {problem}"
        if self.function is not None:
            return f"{self.function}: {problem}"
        return problem

    def render_cli(self, option: str | None = None) -> str:
        """The message for the command line: the option at fault as the subject (``self.option``,
        else ``option``, the one the command maps ``argument`` to), no Python function names,
        settings as options."""
        problem = self._problem(True)
        opt = self.option or option
        if opt is not None:
            return f"{opt} {problem}"
        if self.argument is not None:
            return f"The {self.argument!r} argument {problem}"
        if self.path is not None:
            return f"{self.path}: {problem}"
        return problem

    def __reduce__(self) -> Any:  # survives pickling (worker processes, Ray)
        return (_rebuild, (self.parts, self.argument, self.function, self.option, self.path,
                           self.label, self.got))


def _rebuild(parts: tuple[str | Setting, ...], argument: str | None, function: str | None,
             option: str | None, path: str | None, label: str | None,
             got: str) -> UnembedError:
    e = UnembedError(parts, argument=argument, function=function, option=option, path=path,
                     label=label)
    e.got = got
    Exception.__init__(e, e.render())
    return e
