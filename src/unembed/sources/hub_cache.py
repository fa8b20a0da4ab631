"""Models by their hub name, read from the local HuggingFace cache: never a download.

``from_pretrained("openai-community/gpt2")`` with no network reads the model from the hub cache;
:func:`resolve` does the same resolution, by the cache's documented layout, without calling any
hub client:

* the cache directory: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
  ``~/.cache/huggingface/hub`` (``$HUGGINGFACE_HUB_CACHE`` is honoured as the older name);
* the repository ``ORG/NAME`` lives in ``models--ORG--NAME`` (a name without an organisation:
  ``models--NAME``);
* a branch or tag ``REV`` (default ``main``) is the file ``refs/REV`` holding a commit hash; a
  40-hex commit hash names its snapshot directly;
* the files of that commit are in ``snapshots/<hash>/`` (links into ``blobs/``).

A name missing from the cache, a revision the cache does not know and an empty snapshot are
one-line errors naming the directory looked at.

Examples
--------
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> repo = root / "models--org--tiny"
>>> snap = repo / "snapshots" / ("ab" * 20)
>>> snap.mkdir(parents=True); (snap / "config.json").write_text("{}")
2
>>> (repo / "refs").mkdir(); (repo / "refs" / "main").write_text("ab" * 20)
40
>>> resolve("org/tiny", cache_dir=root).path == snap
True
>>> looks_like_repo_id("org/tiny"), looks_like_repo_id("./weights.npy"), looks_like_repo_id("a/b/c")
(True, False, False)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from unembed._checks import UnembedError
from unembed._io import PICKLE_SUFFIXES

if TYPE_CHECKING:
    from unembed.sources.base import LoadedModel

_T = TypeVar("_T", bound="LoadedModel")

__all__ = ["HubSnapshot", "find", "hub_cache_dir", "looks_like_repo_id", "mark", "resolve"]

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_REPO_ID = re.compile(rf"^(?:{_NAME}/)?{_NAME}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_COMMIT_BYTES = re.compile(rb"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class HubSnapshot:
    """Where a hub name resolved to: the snapshot directory and how it was found."""

    repo_id: str
    revision: str
    commit: str
    path: Path
    cache_dir: Path

    def describe(self) -> dict[str, str]:
        return {"repo_id": self.repo_id, "revision": self.revision, "commit": self.commit,
                "snapshot": str(self.path), "cache": str(self.cache_dir)}


def hub_cache_dir() -> Path:
    """The hub cache directory, as ``huggingface_hub`` and ``transformers`` find it."""
    env = os.environ
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(name):
            return Path(env[name]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    xdg = env.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def looks_like_repo_id(name: str) -> bool:
    """Whether ``name`` has the shape of a hub repository id (``NAME`` or ``ORG/NAME``), not of
    a file path (no suffix-only names, no more than one slash, no leading dot or slash)."""
    return bool(_REPO_ID.match(name)) and not name.endswith((".", "-"))


def resolve(repo_id: str, revision: str | None = None, *,
            cache_dir: str | os.PathLike[str] | None = None) -> HubSnapshot:
    """The snapshot directory of ``repo_id`` at ``revision`` (default "main") in the local
    hub cache; raises UnembedError with the directory looked at when it is not there."""
    from unembed._checks import read_bytes_bounded
    from unembed.sources._paths import contained, revision_name

    root = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    if not looks_like_repo_id(repo_id):
        raise UnembedError(f"{repo_id[:80]!r}: not a hub repository name (NAME or ORG/NAME); "
                           f"refused.")
    rev = revision_name(revision or "main")
    repo_dir = root / ("models--" + repo_id.replace("/", "--"))
    if not repo_dir.is_dir():
        raise UnembedError(f"{repo_id}: neither a local path nor in the HuggingFace hub cache "
                           f"(looked for {repo_dir}; set HF_HUB_CACHE or HF_HOME if the cache is "
                           f"elsewhere); unembed never downloads.")
    if _COMMIT.match(rev):
        commit = rev
    else:
        # the ref and the snapshot are files of this repository's folder: a link out of it
        # (refs/, snapshots/ or the file itself) is refused before anything is read
        ref = contained(repo_dir, f"refs/{rev}", "ref")
        if not ref.is_file():
            have = sorted(str(p.relative_to(repo_dir / "refs"))
                          for p in (repo_dir / "refs").rglob("*") if p.is_file()) \
                if (repo_dir / "refs").is_dir() else []
            raise UnembedError(f"{repo_id}: revision {rev!r} is not in the hub cache (looked for "
                               f"{ref}; cached refs: {', '.join(have) or 'none'}).")
        raw = read_bytes_bounded(ref, 1024, "ref of the hub cache").strip()
        commit = raw.decode("ascii") if _COMMIT_BYTES.match(raw) else ""
        if not commit:  # its content is not shown: it is no hash
            raise UnembedError(f"{ref}: not a commit hash (a ref of the hub cache holds 40 hex "
                               f"digits); refused.")
    path = contained(repo_dir, f"snapshots/{commit}", "snapshot")
    if not path.is_dir() or not any(path.iterdir()):
        raise UnembedError(f"{repo_id}: revision {rev!r} (commit {commit}) has no files in the hub "
                           f"cache (looked in {path}).")
    return HubSnapshot(repo_id=repo_id, revision=rev, commit=commit, path=path,
                       cache_dir=root)


#: Suffixes of the files unembed reads: a missing ``head.npy`` is a missing file, not a hub name.
_FILE_SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".bin", ".safetensors", *PICKLE_SUFFIXES,
                  ".json", ".txt", ".jsonl", ".csv", ".h5", ".ckpt")


def find(source: str | os.PathLike[str], revision: str | None = None) -> HubSnapshot | None:
    """The snapshot a ``load`` source names when it is a hub name and no local path: None for
    an existing path or anything shaped like a file; an error when it is a hub name the cache
    does not hold."""
    s = os.fspath(source)
    if os.path.exists(s) or not looks_like_repo_id(s) or s.lower().endswith(_FILE_SUFFIXES):
        return None
    if "/" not in s and not (hub_cache_dir() / f"models--{s}").is_dir():
        return None  # a bare word: the path error ("no such file") says more
    return resolve(s, revision)


def mark(model: _T, snap: HubSnapshot | None) -> _T:
    """``model`` with its head's source saying where a hub name resolved to (and
    ``meta["hub"]`` its snapshot; no-op for None): a new head, the old one unchanged."""
    if snap is not None:
        model.head = model.head.with_provenance(
            source=f"{snap.repo_id}@{snap.revision} ({snap.path})", hub=snap.describe())
    return model
