"""The one rule for every file a source reads because the user's input leads to it.

A user names a path (a model directory, a weight file, a hub name resolved to a snapshot of
the hub cache, a pipeline directory, a tokenizer directory); the files unembed then reads are
the ones that path *contains*: files it names (an index's shards, a pipeline's component
models, a ref of the hub cache), files found beside it (``NAME.labels.json``,
``NAME.tl_config.json``) and everything a library reads below it. Each of them is checked
here, before it is opened:

* :func:`contained` -- ``root / relative`` is refused unless ``relative`` is a relative path
  without '..' and the file, with every symbolic link on the way resolved, is inside the
  *boundary* of ``root``: ``root`` itself, or, for a snapshot of the HuggingFace hub cache
  (``models--ORG--NAME/snapshots/HASH``), the repository's folder ``models--ORG--NAME``
  (a snapshot's files are links into ``../../blobs``; ``blobs`` or the snapshot being a link
  out of that folder is refused).
* :func:`check_tree` -- the same for every entry below a directory that a library reads as a
  whole (a spaCy pipeline, a tokenizer directory): every link stays inside the boundary, and
  every entry is a regular file or a directory (a device or a pipe can be read without end).
* :func:`revision_name` -- a revision of the hub cache is a branch, tag or commit name (git's
  ``check-ref-format`` rules), never a path.

Each refusal is one line naming the file (exit 2 on the command line). What a link points to
is not printed, nor the content of a file that is not what it should be.

Examples
--------
>>> import tempfile, pathlib, os
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> (d / "a.json").write_text("{}")
2
>>> contained(d, "a.json", "config file") == d / "a.json"
True
>>> os.symlink("/etc/hostname", d / "b.json")
>>> contained(d, "b.json", "config file")
Traceback (most recent call last):
...
unembed.errors.UnembedError: ...b.json: a symbolic link that leads outside ... refused.
>>> revision_name("v1.0"), revision_name("refs/pr/1")
('v1.0', 'refs/pr/1')
>>> revision_name("../../x")
Traceback (most recent call last):
...
unembed.errors.UnembedError: --revision '../../x': not a branch, tag or commit name ...
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath

from unembed._checks import UnembedError

__all__ = ["boundary", "check_tree", "contained", "revision_name"]

#: The most entries :func:`check_tree` visits (a pipeline or tokenizer directory has tens).
MAX_ENTRIES = 100_000


def boundary(root: str | os.PathLike[str]) -> Path:
    """The directory inside which the files under ``root`` must resolve: ``root``, or the
    repository folder ``models--ORG--NAME`` for a snapshot ``.../snapshots/HASH`` of the hub
    cache (and for anything below such a snapshot). Not resolved: see :func:`_real`."""
    r = Path(os.path.abspath(root))
    for p in (r, *r.parents):
        if p.parent.name == "snapshots" and p.parent.parent.name.startswith("models--"):
            return p.parent.parent
    return r


def _real(p: str | os.PathLike[str]) -> str:
    return os.path.realpath(p)


def _within(path: str, bound: str) -> bool:
    return os.path.commonpath([bound, path]) == bound


def _check_link_free(root: Path, p: Path, what: str) -> None:
    """Refuse ``p`` (under ``root``) when it or ``root`` resolves outside ``root``'s boundary."""
    bound = _real(boundary(root))
    for q in (root, p):
        if not _within(_real(q), bound):
            raise UnembedError(f"a symbolic link that leads outside the directory "
                                f"{boundary(root)} (the {what} must be inside it); refused.",
                               path=q)


def contained(root: str | os.PathLike[str], relative: str | os.PathLike[str],
              what: str = "file") -> Path:
    """``root / relative`` for a file that ``root`` names or holds, refused unless it stays
    inside ``root``'s :func:`boundary`: no absolute path, no '..', no symbolic link (of the
    file or of any directory on the way, ``root`` included) that leads out. Nothing is opened;
    the caller opens the path returned (``root / relative``, unresolved)."""
    r = Path(root)
    s = os.fspath(relative)
    if (not s or "\x00" in s or PurePosixPath(s).is_absolute() or PureWindowsPath(s).is_absolute()
            or PureWindowsPath(s).drive or ".." in PurePosixPath(s.replace("\\", "/")).parts):
        raise UnembedError(f"names the {what} {s!r}, which is not a path inside the "
                            f"directory; refused.", path=r)
    p = r / s
    _check_link_free(r, p, what)
    return p


def check_tree(root: str | os.PathLike[str], what: str = "directory") -> Path:
    """Check every entry below the directory ``root`` (links not followed out): each symbolic
    link resolves inside ``root``'s :func:`boundary` (a link to a directory inside it is walked
    too), each entry is a regular file or a directory. Returns ``root`` as a Path; refuses,
    naming the entry, before anything is opened."""
    r = Path(root)
    bound = _real(boundary(r))
    if not _within(_real(r), bound):
        raise UnembedError(f"a symbolic link that leads outside the directory "
                            f"{boundary(r)}; refused.", path=r)
    seen: set[str] = set()
    todo = [r]
    count = 0
    while todo:
        d = todo.pop()
        real_d = _real(d)
        if real_d in seen:
            continue
        seen.add(real_d)
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as e:
            raise UnembedError(f"cannot list it ({e.strerror or type(e).__name__}).",
                               path=d) from None
        for entry in entries:
            count += 1
            if count > MAX_ENTRIES:
                raise UnembedError(f"holds more than {MAX_ENTRIES} entries; not a {what} "
                                    f"unembed reads.", path=r)
            p = Path(entry.path)
            if entry.is_symlink() and not _within(_real(p), bound):
                raise UnembedError(f"a symbolic link that leads outside the directory "
                                    f"{boundary(r)} (a {what} must hold its own files); "
                                    f"refused.", path=p)
            try:
                mode = os.stat(p).st_mode
            except OSError:
                continue  # a dangling link inside: refused by whoever would read it
            if stat.S_ISDIR(mode):
                todo.append(p)
            elif not stat.S_ISREG(mode):
                raise UnembedError("not a regular file (a device, pipe or socket); refused.",
                                   path=p)
    return r


#: Characters git refuses in a ref name (``git check-ref-format``): controls, space, ~ ^ : ? * [
#: and the backslash.
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def revision_name(text: str) -> str:
    """``text`` as a revision of the hub cache: a branch, tag or commit name by git's
    ``check-ref-format`` rules (components separated by single '/', none starting with '.' or
    ending with '.lock', no '..', no '@{', no control characters, space, '~^:?*[\\', not '@',
    not ending with '.' or '/'), at most 255 characters; never a path. Returns it unchanged."""
    parts = text.split("/")
    bad = (not text or len(text) > 255 or text == "@" or "@{" in text or ".." in text
           or _BAD_REF_CHARS.search(text) is not None or text.endswith(".")
           or any(not part or part.startswith(".") or part.endswith(".lock")
                  for part in parts))
    if bad:
        raise UnembedError(f"--revision {text[:80]!r}: not a branch, tag or commit name (a "
                           f"revision "
                           f"is a git ref name such as 'main', 'v1.0' or a 40-hex commit hash, "
                           f"never "
                           f"a path); refused.")
    return text
