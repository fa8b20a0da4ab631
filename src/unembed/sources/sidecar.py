"""What travels beside a weight file: its labels, and where labels can come from.

* Labels beside a head: a weight file ``NAME.EXT`` may have ``NAME.labels.json`` next to it (a
  JSON list, one label per row). Exports of weight files write it (:func:`write_labels`) and
  :func:`unembed.load_head_file` reads it when no labels are given (:func:`find_labels`), so a
  head written by ``unembed counterexample`` keeps its labels in every later command.
* ``--labels`` takes a labels file (one per line, a JSON list or an ``id2label`` dict) or a
  tokenizer directory (``tokenizer.json`` / ``vocab.json`` ...): then row i is token i, shown
  readably (:func:`unembed.sources.hf_lm.readable_labels`).

Examples
--------
>>> import tempfile, pathlib, numpy as np
>>> from unembed import Head
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> w = d / "head.npy"; np.save(w, np.eye(2))
>>> write_labels(Head(np.eye(2), labels=["yes", "no"]), w).name
'head.labels.json'
>>> find_labels(w)
['yes', 'no']
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from unembed._checks import UnembedError

if TYPE_CHECKING:
    from unembed.sources.base import LoadedModel

_M = TypeVar("_M", bound="LoadedModel")

__all__ = ["find_labels", "labels_path", "read_labels_spec", "relabel", "write_labels"]

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model",
                    "spiece.model", "vocab.txt")


def labels_path(weights: str | os.PathLike[str]) -> Path:
    """``dir/NAME.labels.json`` for the weight file ``dir/NAME.EXT`` (a ``PATH:TENSOR`` spec's
    tensor name is ignored: one labels file per weight file)."""
    from unembed.sources.matrix_file import split_spec

    p, _ = split_spec(weights)
    return p.with_name(p.stem + ".labels.json")


def find_labels(weights: str | os.PathLike[str]) -> list[str] | None:
    """The labels beside a weight file, or None when there is no labels file there."""
    from unembed.sources._paths import contained

    lp = labels_path(weights)
    lp = contained(lp.parent, lp.name, "labels file")  # beside the file named, not elsewhere
    if not lp.is_file():
        return None
    from unembed.sources.files import read_labels

    return read_labels(lp)


def write_labels(head: Any, weights: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write ``head.labels`` as a JSON list beside the weight file ``weights`` (atomically);
    an existing labels file there needs ``force``."""
    from unembed._io import atomic_write

    lp = labels_path(weights)
    text = json.dumps(list(head.labels), ensure_ascii=False, indent=0) + "\n"
    return atomic_write(lp, lambda tmp: tmp.write_text(text, encoding="utf-8"), force=force)


def _is_tokenizer_dir(p: Path) -> bool:
    return p.is_dir() and any((p / f).is_file() for f in _TOKENIZER_FILES)


def read_labels_spec(spec: str | os.PathLike[str], n_rows: int) -> list[str]:
    """Labels from ``--labels``: a labels file, or a tokenizer directory (n_rows readable
    tokens, rows past the tokenizer's vocabulary shown as '[#N]')."""
    p = Path(spec)
    if p.is_dir():
        from unembed.sources._paths import check_tree
        from unembed.sources.hf_dir import check_tokenizer_config

        check_tree(p, "tokenizer directory")  # its links stay inside, no device or pipe
        if not _is_tokenizer_dir(p):
            raise UnembedError("a directory without a tokenizer (no "
                               f"{', '.join(_TOKENIZER_FILES)}"
                               f"); --labels takes a labels file or a tokenizer directory.", path=p)
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise UnembedError("reading a tokenizer needs transformers: pip install "
                               "'unembed[hf]'.", path=p) from None
        check_tokenizer_config(p)  # names no file outside it
        try:
            tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise UnembedError(f"not a readable tokenizer ({type(e).__name__}).", path=p) from None
        n_special = len(set(tok.all_special_tokens))
        if len(tok) <= n_special:  # transformers builds one from the config alone
            raise UnembedError(f"the tokenizer has no vocabulary (only its {n_special} "
                               f"special "
                               f"tokens); --labels takes a labels file or a tokenizer directory "
                               f"with "
                               f"its vocabulary.", path=p)
        from unembed.sources.hf_lm import readable_labels

        return list(readable_labels(tok, n_rows))
    from unembed.sources.files import read_labels

    return read_labels(p)


def relabel(model: _M, spec: str | os.PathLike[str] | list[str], *,
            unique: bool = False) -> _M:
    """``model`` with its head's labels replaced by ``--labels``: a labels file or a tokenizer
    directory (read for the head's V rows), or a list; ``unique`` renames repeats
    ('sr', 'sr' -> 'sr', 'sr#2'). A count that does not match the rows is refused by the Head."""

    head = model.head
    labs = list(spec) if isinstance(spec, list) else read_labels_spec(spec, head.n_labels)
    if unique:
        from unembed._checks import unique_labels

        labs = list(unique_labels(labs))
    where = "the caller" if isinstance(spec, list) else str(spec)
    model.head = head.with_labels(labs, where)
    return model
