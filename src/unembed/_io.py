"""Writing outputs: one atomic write for files and directories, and which files are pickles.

Every output of unembed (a weight file written back, an exported model, a report directory)
goes through :func:`atomic_write` (or :func:`atomic_target` when the caller must inspect what
it wrote before it replaces anything):

1. :func:`check_target`, before any work: an existing ``out`` needs ``force``; the parent must
   be a directory we can write in (tried, not guessed from permission bits); stale temporaries
   of earlier runs that died are removed first.
2. The caller writes into a temporary sibling ``.NAME.unembed-tmp-PID`` (a file or a
   directory), which is flushed to disk (``fsync``).
3. The temporary is renamed into place. An existing ``out`` that is a directory (or is replaced
   by one) is first renamed aside to ``.NAME.unembed-old-PID`` and removed last.

So ``out`` is at every moment either the old content or the new one, never half-written; an
error (or an interrupt) leaves the old ``out`` as it was and removes the temporary. A run that
is killed between the two renames of step 3 leaves ``.NAME.unembed-old-PID``: the next write
to ``out`` puts it back if ``out`` is missing (then replaces it as asked), or removes it.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> out = atomic_write(d / "a.txt", lambda tmp: tmp.write_text("one"), force=False)
>>> out.read_text()
'one'
>>> atomic_write(d / "a.txt", lambda tmp: tmp.write_text("two"), force=False)
Traceback (most recent call last):
...
unembed.errors.UnembedError: ...a.txt: already exists; pass --force (force=True) to replace it.
>>> _ = atomic_write(d / "a.txt", lambda tmp: tmp.write_text("two"), force=True)
>>> (d / "a.txt").read_text(), sorted(p.name for p in d.iterdir())
('two', ['a.txt'])
>>> import shutil; shutil.rmtree(d)
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from unembed._checks import UnembedError
from unembed.errors import FORCE

__all__ = [
    "PICKLE_SUFFIXES",
    "atomic_target",
    "atomic_write",
    "check_target",
    "is_pickle",
    "remove_path",
]

#: Suffixes of files that hold a pickle (read only with ``trust_pickle``/``--trust-pickle``).
PICKLE_SUFFIXES: tuple[str, ...] = (".pkl", ".pickle", ".joblib")

_TMP = "unembed-tmp"
_OLD = "unembed-old"


def is_pickle(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a pickle by its suffix (case-insensitive).

    >>> is_pickle("model.PKL"), is_pickle("w.safetensors")
    (True, False)
    """
    return os.fspath(path).lower().endswith(PICKLE_SUFFIXES)


def _sibling(out: Path, mark: str, pid: int | None = None) -> Path:
    return out.with_name(f".{out.name}.{mark}-{os.getpid() if pid is None else pid}")


def remove_path(p: Path) -> None:
    """Remove a file, a link or a whole directory tree; nothing if absent."""
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return True
    return True


def _clean_stale(out: Path) -> None:
    """Remove temporaries of ``out`` left by runs that died; put back an old ``out`` that such
    a run had moved aside but not yet replaced."""
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.({_TMP}|{_OLD})-(\d+)$")
    try:
        entries = list(out.parent.iterdir())
    except OSError:
        return
    for p in entries:
        m = pattern.match(p.name)
        if not m or _alive(int(m.group(2))):
            continue
        if m.group(1) == _OLD and not (out.exists() or out.is_symlink()):
            os.replace(p, out)
        else:
            remove_path(p)


def _refuse_holding_cwd(out: str | os.PathLike[str], outp: Path, *, force: bool) -> None:
    """An output is replaced as a whole: ``.``, ``''``, ``..``, ``/`` or any directory holding
    the working directory is refused (nothing is deleted)."""
    real = os.path.realpath(outp)
    cwd = os.path.realpath(os.getcwd())
    if outp.name in ("", ".", "..") or os.path.commonpath([real, cwd]) == real:
        what = "is the working directory or holds it" if os.path.commonpath(
            [real, cwd]) == real else "names no file or directory of its own"
        raise UnembedError(f"--out {os.fspath(out)!r}: {what}; an output is replaced as a whole, "
                           f"so "
                           f"unembed does not write there{' even with --force' if force else ''}. "
                           f"Nothing was deleted; name a new file or directory.")


def check_target(out: str | os.PathLike[str], *, force: bool) -> Path:
    """Refuse an output before any work is done; returns ``out`` as a Path.

    Raises :class:`~unembed.errors.UnembedError` (file grammar, one line) when ``out`` exists
    and ``force`` is false, when its parent is not a directory, when nothing can be created
    in the parent, or when ``out`` names no entry of its own (``.``, ``''``, ``..``, ``/``) or
    holds the working directory (replacing it would delete that directory; nothing is
    deleted). Removes stale temporaries of ``out`` (see the module docstring).
    """
    outp = Path(out)
    _refuse_holding_cwd(out, outp, force=force)
    parent = outp.absolute().parent
    if not parent.is_dir():
        raise UnembedError("no such directory for the output.", path=parent)
    _clean_stale(outp)
    if (outp.exists() or outp.is_symlink()) and not force:
        raise UnembedError(("already exists; pass ", FORCE, " to replace it."), path=outp)
    probe = _sibling(outp, _TMP)
    remove_path(probe)
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as e:
        why = "not writable" if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else (
            e.strerror or "cannot create a file there").lower()
        raise UnembedError(f"cannot write the output {outp.name} here ({why}).",
                           path=parent) from None
    os.close(fd)
    os.unlink(probe)
    return outp


def _fsync_tree(p: Path) -> None:
    """Flush a written file, or every file of a written directory and the directories, to
    disk."""
    if p.is_symlink():
        return
    if p.is_dir():
        for sub in p.iterdir():
            _fsync_tree(sub)
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    elif p.is_file():
        flags = os.O_RDONLY
    else:
        return
    try:
        fd = os.open(p, flags)
    except OSError:  # pragma: no cover - e.g. directories on some platforms
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems without fsync on directories
        pass
    finally:
        os.close(fd)


def _move_into_place(tmp: Path, out: Path) -> None:
    if (out.exists() or out.is_symlink()) and (out.is_dir() or tmp.is_dir()):
        old = _sibling(out, _OLD)
        remove_path(old)
        os.replace(out, old)
        os.replace(tmp, out)
        remove_path(old)
    else:
        os.replace(tmp, out)
    _fsync_tree(out.absolute().parent)


@contextmanager
def atomic_target(out: str | os.PathLike[str], *, force: bool, directory: bool = False
                  ) -> Iterator[Path]:
    """Check ``out`` (:func:`check_target`), yield a temporary sibling path to write to, and on
    a normal exit flush it and move it into place; on an exception (raised by the caller, for
    instance because what it wrote failed a verification) remove it and leave ``out`` as it was.

    ``directory=True`` creates the temporary as an empty directory; otherwise nothing exists at
    the yielded path until the caller writes it (a file, or a directory it creates itself).
    """
    outp = check_target(out, force=force)
    tmp = _sibling(outp, _TMP)
    remove_path(tmp)
    if directory:
        tmp.mkdir()
    try:
        yield tmp
        if not (tmp.exists() or tmp.is_symlink()):
            raise UnembedError("nothing was written.", path=outp)
        _fsync_tree(tmp)
        _move_into_place(tmp, outp)
    finally:
        remove_path(tmp)


def atomic_write(out: str | os.PathLike[str], write: Callable[[Path], object], *, force: bool,
                 directory: bool = False) -> Path:
    """Write ``out`` atomically through ``write(tmp)`` (see :func:`atomic_target`); returns
    ``out`` as a Path. ``directory=True``: ``tmp`` is an empty directory to fill."""
    with atomic_target(out, force=force, directory=directory) as tmp:
        write(tmp)
    return Path(out)
