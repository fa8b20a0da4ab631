"""Weight files written back: a head read from a weight file (``head.file``), its rows
moved or replaced, written in the file's own format and dtype (or another dtype), with its
labels beside it, re-read block by block from what was written and compared with the original
head (:func:`unembed.equivalence.compare_head_rows_many`): the head's rows are read block by
block (``Head.row_block``) for writing and comparing, never as one (V, d) matrix.

Unlike a model export, a weight file is written first and verified after (its verdict is
reported, and the command exits 1 when the written head is not equivalent).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed.construct import row_cosine
from unembed.equivalence import Equivalence, StoredRows, Translated, compare_head_rows_many
from unembed.head import Head
from unembed.rows import RowBlocks
from unembed.sources.files import read_tensor, write_like
from unembed.sources.matrix_file import MatrixFile

__all__ = ["WrittenWeights", "stored_like", "write_labels_beside", "write_weights"]


@dataclass(frozen=True)
class WrittenWeights:
    """A head written to a weight file and read back from it.

    ``equivalence`` compares the original head with the rows as written (in their stored
    dtype); ``cosine_written`` is the raw cosine of ``pair`` in the written rows (None without
    a pair); ``construction`` (with ``check_shift``) compares it with the translated head in
    float64 (:class:`unembed.equivalence.Translated`: its logits z + h.c, what moving every row
    by c does to them), on the same inputs in the same pass; ``write_seconds`` and
    ``verify_seconds`` the time spent writing and reading back + comparing (wall), and
    ``write_cpu_seconds``, ``verify_cpu_seconds`` this process's CPU time in each."""

    out: Path
    dtype: str
    equivalence: Equivalence
    cosine_written: float | None
    construction: Equivalence | None = None
    write_seconds: float = 0.0
    verify_seconds: float = 0.0
    write_cpu_seconds: float = 0.0
    verify_cpu_seconds: float = 0.0


class _Stopped(Exception):
    """Raised in the writer thread to stop it (the command failed or was interrupted)."""


def stored_like(head: Head) -> MatrixFile:
    """The weight file ``head`` was read from; refused when it was not read from one."""
    source = head.file
    if not isinstance(source, MatrixFile):
        raise UnembedError("this head was not read from a weight file; nothing to "
                           "write it like.", function="write_head_like")
    return source


def _with_dtype(mf: MatrixFile, dtype: str) -> MatrixFile:
    """The weight file description ``mf`` with another storage dtype (for ``--dtype``)."""
    if mf.format == "npy" and dtype == "bfloat16":
        raise UnembedError(f"{mf.path}: .npy cannot store bfloat16; use float32 or a .safetensors "
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
                  seed: int = 0, pair: tuple[int, int] | None = None,
                  check_shift: bool = False) -> WrittenWeights:
    """Write ``head``'s rows moved by ``shift`` (every row u_i + c) to ``out`` in the format
    of the file it was read from, stored as ``dtype`` (default: as read), its labels beside it
    unless they are row numbers (a labels file a replaced ``out`` had is removed: it would name
    other rows); then read what was written back, block by block, and compare it with
    ``head`` on ``hidden`` (n, d) (default: ``n_random`` random hidden states); with
    ``check_shift`` the translated head in float64 too, in the same pass (``head``'s own logits
    formed once for both). ``head``'s rows are read block by block (``Head.row_block``) both
    to write them and to compare.

    The file is written by a second thread while this one draws the random hidden states
    (their scale needs one n x V x d product with ``head``'s rows): writing is bound by the
    disk, the product by the cores, so the two overlap. ``write_seconds`` runs until the file
    is in place, random states drawn meanwhile included. Should drawing them fail or be
    interrupted, the writer stops at its next block of rows and removes its temporary file:
    ``out`` is left as it was."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from time import perf_counter, process_time

    from unembed.equivalence import random_hidden

    t0, c0 = perf_counter(), process_time()
    like = stored_like(head)
    if dtype and dtype != head.dtype:
        like = _with_dtype(like, dtype)
    stop = threading.Event()

    def block(start: int, stop_row: int) -> NDArray[np.float64]:
        if stop.is_set():
            raise _Stopped
        return head.row_block(start, stop_row)

    def write() -> Path:
        path = write_like(like, RowBlocks((head.n_labels, head.d), block), out, force=force,
                          shift=shift)
        write_labels_beside(head, path, force=force)
        return path

    with ThreadPoolExecutor(1, thread_name_prefix="unembed-write") as pool:
        job = pool.submit(write)
        try:
            H = random_hidden(head, n_random, seed=seed) if hidden is None else hidden
            written_to = job.result()
        except BaseException:
            stop.set()  # the writer stops at its next block; `with` waits for it
            raise
    t_write, c_write = perf_counter() - t0, process_time() - c0
    t0, c0 = perf_counter(), process_time()
    # Verify what was written, not what was meant to be written.
    written = read_tensor(str(written_to) + (f":{like.tensor}" if like.tensor else ""), ndim=2)
    cos = None
    if pair is not None:
        i, j = pair
        cos = row_cosine(np.asarray(written.rows(i, i + 1)[0], dtype=np.float64),
                         np.asarray(written.rows(j, j + 1)[0], dtype=np.float64))
    others: list[StoredRows | Translated] = [StoredRows(written.rows, written.dtype)]
    if check_shift:
        others.append(Translated(shift))
    got = compare_head_rows_many(head, others, H)
    return WrittenWeights(out=written_to, dtype=written.dtype, equivalence=got[0],
                          cosine_written=cos, construction=got[1] if check_shift else None,
                          write_seconds=t_write, verify_seconds=perf_counter() - t0,
                          write_cpu_seconds=c_write, verify_cpu_seconds=process_time() - c0)
