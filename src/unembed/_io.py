"""Writing outputs atomically: the one way unembed writes a file or a directory the user named.

:func:`atomic_output` hands out a temporary path beside the target (``.NAME.tmp-PID``); only
when the block finishes without an exception is it moved into place (an old target, replaced
with ``force``, is moved aside first and removed last). A run that is killed leaves at most its
temporary path behind, and the next run that writes into the same directory removes the
temporaries of processes that no longer exist. So the user's target is never half-written,
and nothing is left behind that the next run does not clean.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from unembed._checks import file_error

__all__ = ["atomic_output", "check_output", "clean_stale", "remove"]

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def remove(p: Path) -> None:
    """Remove a file, a symbolic link or a directory tree (whatever is at ``p``)."""
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def clean_stale(directory: Path) -> list[Path]:
    """Remove ``.NAME.tmp-PID`` and ``.NAME.old-PID`` entries of ``directory`` whose process
    PID no longer runs (left by a killed run); returns what was removed."""
    gone: list[Path] = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return gone
    for e in entries:
        m = _TEMP.match(e.name)
        if m and not _alive(int(m.group("pid"))):
            remove(e)
            gone.append(e)
    return gone


def check_output(path: str | os.PathLike[str], *, force: bool) -> Path:
    """Check, before any work, that ``path`` can be written: it does not exist (or ``force``),
    its parent is an existing directory this process may write into. Returns it as a Path."""
    out = Path(path)
    if out.exists() and not force:
        raise file_error(out, "already exists; pass force=True to replace it.")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise file_error(parent, "no such directory for the output.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise file_error(parent, "cannot write there (permission denied).")
    return out


@contextmanager
def atomic_output(path: str | os.PathLike[str], *, force: bool,
                  kind: Literal["file", "dir"] = "file") -> Iterator[Path]:
    """``with atomic_output(out, force=f) as tmp:`` write ``tmp`` (a file, or with
    ``kind="dir"`` a directory, created empty); on leaving the block without an exception
    ``tmp`` replaces ``out``; on an exception (or a signal turned into one) ``tmp`` is removed
    and ``out`` is as it was. Stale temporaries of dead processes beside ``out`` are removed
    first."""
    out = check_output(path, force=force)
    parent = out.parent
    clean_stale(parent)
    tmp = parent / f".{out.name}.tmp-{os.getpid()}"
    remove(tmp)
    try:
        if kind == "dir":
            tmp.mkdir()
    except OSError as e:
        raise file_error(parent, f"cannot write there ({e.strerror or type(e).__name__}).") \
            from None
    try:
        yield tmp
        if not tmp.exists():
            raise file_error(out, "nothing was written.")
        old = parent / f".{out.name}.old-{os.getpid()}"
        if out.exists() or out.is_symlink():
            os.replace(out, old)
        os.replace(tmp, out)
        remove(old)
    except BaseException:
        remove(tmp)
        raise
