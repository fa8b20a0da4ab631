"""Progress bars on stderr (rich): one helper for every long-running step of unembed.

A bar is shown only when it is asked for (``progress=True``; the CLI's ``--no-progress`` turns
it off) *and* stderr is a terminal: output piped to a file or read by a program stays clean.
Each task has a true total (the number of items it will process) or ``None`` when the number
is not known in advance (then a spinner and the count so far). When the bars are off, every
method does nothing, so callers never branch on it.

Examples
--------
>>> with progress_bars(True) as bars:     # stderr is not a terminal here: nothing is drawn
...     t = bars.add("rows", total=3)
...     for _ in range(3):
...         bars.advance(t)
>>> bars.shown
False
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["Bars", "progress_bars", "show_progress"]


def show_progress(enabled: bool, stream: IO[str] | None = None) -> bool:
    """Whether bars are drawn: asked for, and ``stream`` (default stderr) is a terminal."""
    s = sys.stderr if stream is None else stream
    if not enabled or s is None:
        return False
    try:
        return bool(s.isatty())
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


class Bars:
    """Tasks of one progress display (or nothing when ``shown`` is false)."""

    def __init__(self, progress: Progress | None) -> None:
        self._p = progress

    @property
    def shown(self) -> bool:
        """Whether anything is drawn."""
        return self._p is not None

    def add(self, description: str, total: int | None) -> int:
        """A new task; ``total`` is the true number of items, or None when not known."""
        return int(self._p.add_task(description, total=total)) if self._p is not None else 0

    def advance(self, task: int, n: int = 1) -> None:
        """``n`` more items of ``task`` done."""
        if self._p is not None:
            from rich.progress import TaskID

            self._p.advance(TaskID(task), n)

    def describe(self, task: int, description: str) -> None:
        """Change what ``task`` says it is doing."""
        if self._p is not None:
            from rich.progress import TaskID

            self._p.update(TaskID(task), description=description)

    def step(self, description: str) -> Callable[[str], None]:
        """A task without a count, for a sequence of named steps: returns ``say(text)`` that
        shows the current step."""
        task = self.add(description, total=None)
        return lambda text: self.describe(task, text)


@contextmanager
def progress_bars(enabled: bool = True, *, transient: bool = True,
                  stream: IO[str] | None = None) -> Iterator[Bars]:
    """A progress display on ``stream`` (default stderr) while the block runs.

    Parameters
    ----------
    enabled : bool
        False (``--no-progress``) draws nothing. True draws only when ``stream`` is a terminal.
    transient : bool
        Remove the bars when the block ends (True), or leave them as a record (False).
    """
    if not show_progress(enabled, stream):
        yield Bars(None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(file=stream if stream is not None else sys.stderr)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  transient=transient) as p:
        yield Bars(p)
