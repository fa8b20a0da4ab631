"""Where an audit's inputs come from: re-iterable batches of model inputs read from files.

* :class:`TextWindows`: text files (plain text, or JSON lines with a "text" field) tokenised by
  the model's tokenizer into non-overlapping windows; every position is one prediction.
* :class:`ArrayInputs`: rows of an ``.npy`` array (memory-mapped) or of an array in memory.
* :func:`open_data` picks one for a file and a model.

Every source yields the same batches in the same order each time it is iterated, so a run can be
split by batch number (batch ``b`` holds inputs ``b * batch_size`` onwards): a worker that takes
batches ``b`` with ``b % n_shards == shard`` sees exactly the inputs a single pass would give it.

>>> import numpy as np
>>> src = ArrayInputs(np.arange(10.0).reshape(5, 2))
>>> [b.shape for b in src.batches(2)]
[(2, 2), (2, 2), (1, 2)]
>>> [(b, offset) for b, offset, _ in shard_batches(src, 2, shard=1, n_shards=2)]
[(1, 2)]
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError, check_finite_rows

if TYPE_CHECKING:  # a type only: reading data never imports the model sources
    from unembed.model import LoadedModel

__all__ = ["ArrayInputs", "DataSource", "Decoder", "DecodingTextModel", "OpensOwnText",
           "TextModel", "TextWindows", "open_data", "shard_batches"]


class DataSource(Protocol):
    """Re-iterable batches of model inputs, with a short text for any input index."""

    def batches(self, batch_size: int) -> Iterator[Any]: ...

    def predictions_per_input(self) -> int: ...

    def describe(self, indices: Sequence[int], model: LoadedModel) -> dict[int, str]: ...

    def size_hint(self) -> int | None: ...


def _take(it: Iterable[Any], limit: int | None) -> Iterator[Any]:
    for i, x in enumerate(it):
        if limit is not None and i >= limit:
            return
        yield x


#: Characters a plain-text data file is read in at most (one piece of a longer line).
_PIECE = 1 << 20
#: The longest JSON line read (characters); a longer one is refused.
_MAX_JSON_LINE = 1 << 27


def _json_texts(p: Path, fh: Any) -> Iterator[str]:
    """The "text" field of each JSON line (blank lines skipped)."""
    lineno = 0
    while line := fh.readline(_MAX_JSON_LINE + 1):
        lineno += 1
        if len(line) > _MAX_JSON_LINE:
            raise UnembedError(f"line {lineno} is longer than {_MAX_JSON_LINE} characters; "
                               f"refused (one JSON record per line is expected).", path=p)
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as e:
            raise UnembedError(f"line {lineno} is not valid JSON ({e}).", path=p) from None
        if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
            raise UnembedError(f"line {lineno} has no string field 'text'.", path=p)
        yield rec["text"]


class TextWindows:
    """Text files (plain text, or JSON lines with a "text" field) tokenised by the model's
    tokenizer into non-overlapping windows of ``window`` tokens; every position of a window is
    one prediction (n = windows x window). Files are read in chunks: memory does not grow with
    their length.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]],
                 tokenize: Callable[[str], Sequence[int]], *, window: int,
                 max_inputs: int | None = None) -> None:
        if window < 1:
            raise UnembedError(f"must be at least 1. Got {window} instead.", argument="window")
        self.paths = [Path(p) for p in paths]
        for p in self.paths:
            if not p.is_file():
                raise UnembedError("no such data file.", path=p)
            if p.stat().st_size == 0:
                raise UnembedError("an empty data file; it holds no text.", path=p)
        self.tokenize = tokenize
        self.window = window
        self.max_inputs = max_inputs

    def _chunks(self) -> Iterator[str]:
        for p in self.paths:
            try:
                yield from self._file_chunks(p)
            except UnicodeDecodeError as e:
                raise UnembedError(f"not UTF-8 text (byte 0x{e.object[e.start]:02x} near "
                                    f"offset {e.start} of a chunk).", path=p) from None

    def _file_chunks(self, p: Path) -> Iterator[str]:
        """Pieces of the file's text, read line by line in pieces of at most :data:`_PIECE`
        characters: a plain-text chunk ends at a blank line after 8192 characters, or at a line
        end after :data:`_PIECE`; a longer line is cut at its last whitespace before that many
        characters (mid-word only when a piece has none), so memory stays O(_PIECE) whatever the
        file. A JSON line is parsed whole, up to :data:`_MAX_JSON_LINE` characters."""
        jsonl = p.suffix.lower() in (".jsonl", ".ndjson")
        with open(p, encoding="utf-8") as fh:
            if jsonl:
                yield from _json_texts(p, fh)
                return
            buf: list[str] = []
            size = 0
            while line := fh.readline(_PIECE):
                if len(line) == _PIECE and not line.endswith("\n"):  # part of a longer line
                    cut = max(line.rfind(" "), line.rfind("\t")) + 1
                    cut = cut or len(line)
                    buf.append(line[:cut])
                    yield "".join(buf)
                    buf, size = [line[cut:]], len(line) - cut
                    continue
                buf.append(line)
                size += len(line)
                if (size > 8192 and not line.strip()) or size > _PIECE:
                    yield "".join(buf)
                    buf, size = [], 0
            if buf:
                yield "".join(buf)

    def _windows(self) -> Iterator[NDArray[np.int64]]:
        pending: list[int] = []
        for text in self._chunks():
            pending.extend(self.tokenize(text))
            while len(pending) >= self.window:
                yield np.asarray(pending[: self.window], dtype=np.int64)
                del pending[: self.window]

    def batches(self, batch_size: int) -> Iterator[NDArray[np.int64]]:
        """Token ids (B, window), at most ``max_inputs`` windows in all."""
        buf: list[NDArray[np.int64]] = []
        for w in _take(self._windows(), self.max_inputs):
            buf.append(w)
            if len(buf) == batch_size:
                yield np.stack(buf)
                buf = []
        if buf:
            yield np.stack(buf)

    def predictions_per_input(self) -> int:
        return self.window

    def size_hint(self) -> int | None:
        """None: the number of windows is unknown until the whole text is tokenized
        (``max_inputs`` is only a cap), so the progress bar counts without a total rather
        than stopping short of a false one."""
        return None

    def describe(self, indices: Sequence[int], model: LoadedModel) -> dict[int, str]:
        """For prediction i: the window's tokens up to position i and the next one in brackets."""
        want = {int(i) // self.window: [] for i in indices}  # type: dict[int, list[int]]
        for i in indices:
            want[int(i) // self.window].append(int(i))
        labels = model.head.labels
        tok = model.tokenizer if isinstance(model, DecodingTextModel) else None

        def decode(ids: Any) -> str:
            if tok is not None:
                return str(tok.decode([int(x) for x in ids]))
            return " ".join(labels[int(x)] for x in ids)

        out: dict[int, str] = {}
        for wi, w in enumerate(_take(self._windows(), self.max_inputs)):
            for i in want.get(wi, []):
                t = i % self.window
                ctx = decode(w[max(0, t - 11): t + 1])
                nxt = decode(w[t + 1: t + 2]) if t + 1 < len(w) else "(end of window)"
                out[i] = f"window {wi}, position {t}: …{ctx!r} ⟶ next: {nxt!r}"
            if len(out) == len(set(int(i) for i in indices)):
                break
        return out


class ArrayInputs:
    """Rows of an array (an .npy file, memory-mapped, or an array in memory): images (n, ...)
    or feature matrices (n, d); one prediction per row."""

    def __init__(self, data: str | os.PathLike[str] | NDArray[Any], *,
                 max_inputs: int | None = None, targets: Sequence[str] | None = None,
                 name: str | None = None) -> None:
        if isinstance(data, (str, os.PathLike)):
            p = Path(data)
            if not p.is_file():
                raise UnembedError("no such data file.", path=p)
            from unembed.sources.files import read_npy

            arr = read_npy(p, mmap=True, numeric=True)
            self.name = str(p)
        else:
            arr = np.asarray(data)
            self.name = "array"
        if arr.ndim < 2 or arr.shape[0] == 0:
            raise UnembedError(f"The data {self.name} must have shape (n, ...) with n >= 1. "
                               f"Got shape {arr.shape} instead.")
        self.array = arr if max_inputs is None else arr[:max_inputs]
        self.targets = targets
        if name is not None:
            self.name = name

    def batches(self, batch_size: int) -> Iterator[NDArray[Any]]:
        for s in range(0, self.array.shape[0], batch_size):
            block = np.asarray(self.array[s:s + batch_size])
            check_finite_rows(block, self.name, start=s)
            yield block

    def predictions_per_input(self) -> int:
        return 1

    def size_hint(self) -> int | None:
        return int(self.array.shape[0])

    def describe(self, indices: Sequence[int], model: LoadedModel) -> dict[int, str]:
        out = {}
        for i in indices:
            tgt = f" (true label {self.targets[int(i)]})" if self.targets is not None else ""
            out[int(i)] = f"row {int(i)} of {self.name}{tgt}"
        return out


@runtime_checkable
class OpensOwnText(Protocol):
    """A model that turns a text file into its own data source (spaCy: texts, not ids)."""

    def open_text(self, path: str | os.PathLike[str], *,
                  max_inputs: int | None = None) -> DataSource: ...


class Decoder(Protocol):
    """A tokenizer's way back: the text of some token ids."""

    def decode(self, ids: list[int]) -> str: ...


@runtime_checkable
class TextModel(Protocol):
    """A model that reads text as token ids (the HF language models and classifiers,
    TransformerLens, the demo LM): ``tokenize`` gives a text's token ids (no special tokens
    added; refused with a one-line reason when the model has no tokenizer)."""

    def tokenize(self, text: str) -> list[int]: ...


@runtime_checkable
class DecodingTextModel(TextModel, Protocol):
    """A :class:`TextModel` whose ``tokenizer`` also decodes ids back into text (None when
    the model has none): audit reports quote its inputs in its own text, not as labels."""

    @property
    def tokenizer(self) -> Decoder | None: ...


@runtime_checkable
class TokenLimited(Protocol):
    """A model of token ids with a vocabulary and (perhaps) a most number of positions."""

    def token_limits(self) -> tuple[int, int | None]: ...


def _check_window(window: int, model: LoadedModel) -> None:
    """A window longer than the model's positions is refused with the maximum."""
    limit = model.token_limits()[1] if isinstance(model, TokenLimited) else None
    if limit is not None and window > limit:
        raise UnembedError(f"must be at most {limit}, the most positions "
                           f"this model has", argument="window", function="open_data", got=window)


def _check_token_ids(data: ArrayInputs, model: LoadedModel) -> None:
    """Token ids from an .npy file for a model of token ids: integers, in the vocabulary,
    sequences no longer than the model's positions; else an error naming the file."""
    arr = data.array
    if arr.dtype.kind not in "iu":
        raise UnembedError(f"{data.name}: a {model.kind} model reads token ids from an .npy file, "
                           f"which must hold integers; this one holds {arr.dtype}.")
    if arr.ndim != 2:
        raise UnembedError(f"{data.name}: token ids must have shape (n, T). Got shape {arr.shape}.")
    if not isinstance(model, TokenLimited):
        return
    vocab, positions = model.token_limits()
    if positions is not None and arr.shape[1] > positions:
        raise UnembedError(f"{data.name}: sequences of {arr.shape[1]} token ids; this model has "
                           f"at most "
                           f"{positions} positions.")
    from unembed._blocks import row_blocks

    for s, e in row_blocks(arr.shape[0], arr.shape[1]):
        block = np.asarray(arr[s:e])
        bad = np.argwhere((block < 0) | (block >= vocab))
        if bad.size:
            r, c = (int(x) for x in bad[0])
            raise UnembedError(f"{data.name}: token id {int(block[r, c])} (row {s + r}, position "
                               f"{c}) "
                               f"is outside the vocabulary of {vocab} ids [0, {vocab}).")


def open_data(path: str | os.PathLike[str], model: LoadedModel, *, window: int = 64,
              max_inputs: int | None = None) -> DataSource:
    """A data source for ``model`` from a file: ``.npy`` arrays for image classifiers and
    feature-matrix models; text (``.txt`` or anything else) or ``.jsonl`` for a
    :class:`TextModel` (or a model that opens its own text, :class:`OpensOwnText`)."""
    p = Path(path)
    if p.suffix.lower() == ".npy":
        arrays = ArrayInputs(p, max_inputs=max_inputs)
        if isinstance(model, TextModel):
            _check_token_ids(arrays, model)
        return arrays
    if isinstance(model, OpensOwnText):  # models that read text themselves (spaCy)
        return model.open_text(p, max_inputs=max_inputs)
    if not isinstance(model, TextModel):
        raise UnembedError("a text file needs a language model with a tokenizer; this model "
                           f"({model.kind}) takes arrays (.npy).", path=p)
    _check_window(window, model)
    return TextWindows([p], model.tokenize, window=window, max_inputs=max_inputs)




def max_batches(data: DataSource, batch_size: int, window: int) -> int | None:
    """At most this many batches of ``batch_size`` in ``data`` (None: not known without
    reading it): its size when it knows it; for text windows, one token per byte at most."""
    if isinstance(data, TextWindows):
        n_bytes = sum(p.stat().st_size for p in data.paths)
        return max(1, -(-n_bytes // (window * batch_size)))
    hint = data.size_hint()
    return None if hint is None else max(1, -(-hint // batch_size))


def shard_batches(data: DataSource, batch_size: int, *, shard: int = 0,
                  n_shards: int = 1) -> Iterator[tuple[int, int, Any]]:
    """(batch number, offset, batch) for the batches ``b`` of ``data.batches(batch_size)`` with
    ``b % n_shards == shard``, in order; ``offset`` is the global index of the batch's first
    prediction (every batch before it counted, ``len(batch) x predictions_per_input()``
    predictions each). The other batches are read, to stay in step, but not returned."""
    if not 0 <= shard < n_shards:
        raise UnembedError(f"must be in [0, {n_shards}). Got {shard} instead.", argument="shard")
    per = data.predictions_per_input()
    offset = 0
    for b, batch in enumerate(data.batches(batch_size)):
        if b % n_shards == shard:
            yield b, offset, batch
        offset += len(batch) * per
