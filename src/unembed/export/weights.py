"""Weight files written back: a head read from a weight file (``head.file``), its rows
moved or replaced, written in the file's own format and dtype (or another dtype), with its
labels beside it, re-read block by block from what was written and compared with the original
head (:func:`unembed.equivalence.compare_head_rows`): never a second (V, d) copy.

Unlike a model export, a weight file is written first and verified after (its verdict is
reported, and the command exits 1 when the written head is not equivalent).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from unembed._checks import fail
from unembed.construct import row_cosine
from unembed.equivalence import Equivalence, compare_head_rows
from unembed.head import Head
from unembed.sources.files import read_tensor, write_like
from unembed.sources.matrix_file import MatrixFile

__all__ = ["WrittenWeights", "stored_like", "write_labels_beside", "write_weights"]


@dataclass(frozen=True)
class WrittenWeights:
    """A head written to a weight file and read back from it.

    ``equivalence`` compares the original head with the rows as written (in their stored
    dtype); ``cosine_written`` is the raw cosine of ``pair`` in the written rows (None without
    a pair)."""

    out: Path
    dtype: str
    equivalence: Equivalence
    cosine_written: float | None


def stored_like(head: Head) -> MatrixFile:
    """The weight file ``head`` was read from; refused when it was not read from one."""
    source = head.file
    if not isinstance(source, MatrixFile):
        raise fail("write_head_like: this head was not read from a weight file; nothing to "
                   "write it like.")
    return source


def _with_dtype(mf: MatrixFile, dtype: str) -> MatrixFile:
    """The weight file description ``mf`` with another storage dtype (for ``--dtype``)."""
    if mf.format == "npy" and dtype == "bfloat16":
        raise fail(f"{mf.path}: .npy cannot store bfloat16; use float32 or a .safetensors "
                   f"file.")
    return replace(mf, dtype=dtype)


def write_labels_beside(head: Head, written_to: Path, *, force: bool = False) -> None:
    """``head``'s labels written beside the weight file ``written_to`` as
    ``NAME.labels.json`` (so that the next command names its rows as this one did), unless
    they are row numbers; then a labels file a replaced file had there is removed (only with
    ``force``, checked before): it would name other rows."""
    from unembed.sources.sidecar import labels_path, write_labels

    labels_out = labels_path(written_to)
    if head.labels_from != "row numbers":
        write_labels(head, written_to, force=force)
    elif labels_out.exists() or labels_out.is_symlink():
        from unembed._io import remove_path

        remove_path(labels_out)


def write_weights(head: Head, out: str | os.PathLike[str], *, shift: NDArray[np.float64],
                  dtype: str | None = None, force: bool = False,
                  hidden: NDArray[np.float64] | None = None, n_random: int = 1024,
                  seed: int = 0, pair: tuple[int, int] | None = None) -> WrittenWeights:
    """Write ``head``'s rows moved by ``shift`` (every row u_i + c) to ``out`` in the format
    of the file it was read from, stored as ``dtype`` (default: as read), its labels beside it
    unless they are row numbers (a labels file a replaced ``out`` had is removed: it would name
    other rows); then read what was written back, block by block, and compare it with
    ``head`` on ``hidden`` (n, d) (default: ``n_random`` random hidden states)."""
    like = stored_like(head)
    if dtype and dtype != head.dtype:
        like = _with_dtype(like, dtype)
    written_to = write_like(like, head.W, out, force=force, shift=shift)
    write_labels_beside(head, written_to, force=force)
    # Verify what was written, not what was meant to be written.
    written = read_tensor(str(written_to) + (f":{like.tensor}" if like.tensor else ""), ndim=2)
    cos = None
    if pair is not None:
        i, j = pair
        cos = row_cosine(np.asarray(written.rows(i, i + 1)[0], dtype=np.float64),
                         np.asarray(written.rows(j, j + 1)[0], dtype=np.float64))
    eq = compare_head_rows(head, written.rows, written.dtype, hidden, n_random=n_random,
                           seed=seed)
    return WrittenWeights(out=written_to, dtype=written.dtype, equivalence=eq,
                          cosine_written=cos)
