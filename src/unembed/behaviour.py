"""What a model does on data: streaming, mergeable statistics of its probabilities.

Two accumulators, both fed with batches of log-probabilities of shape (n, V) (float64, every
label of the head) and both mergeable: ``a.merge(b)`` over two shards equals one accumulator
fed with both (up to float64 rounding), so work can be split over processes.

* :class:`LabelTally` over all V labels: how often each label is probable (sum of p, argmax
  counts). It picks the label set: the N labels of largest mean probability.
* :class:`PairStats` over a chosen label set of k labels, per pair (i, j): the correlation of
  p_i and p_j across inputs, the same on log p, the mean of min(p_i, p_j), how often both are
  among the top k of all V labels, and the input where min(p_i, p_j) is largest (a witness a
  reviewer can look up).

:func:`collect` streams a model over a data source (text windows, arrays) with a progress bar
and a memory footprint set by the batch size and label count, not by the data's length.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from unembed._checks import fail, file_error
from unembed._progress import progress_bars
from unembed.head import Head, LabelRef, logits_to_log_probs

__all__ = [
    "MEASURES",
    "ArrayInputs",
    "Behaviour",
    "DataSource",
    "LabelTally",
    "PairStats",
    "TextWindows",
    "collect",
    "open_data",
]

#: Behavioural measures per pair, in report order.
MEASURES: tuple[str, ...] = ("corr_p", "corr_logp", "mean_min", "co_topk")

MEASURE_TITLES = {
    "corr_p": "correlation of p_i and p_j",
    "corr_logp": "correlation of log p_i and log p_j",
    "mean_min": "mean of min(p_i, p_j)",
    "co_topk": "frequency both in the top k",
}


def _check_log_probs(logp: NDArray[np.float64], v: int) -> NDArray[np.float64]:
    a = np.asarray(logp, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != v:
        raise fail(f"The 'log_probs' argument must have shape (n, {v}). "
                   f"Got shape {a.shape} instead.")
    return a


# ---------------------------------------------------------------------------- accumulators
def top_k_indices(log_probs: NDArray[np.float64], k: int) -> NDArray[np.int64]:
    """Per row of (n, V), the indices of the k largest values (n, min(k, V)), in no order."""
    v = log_probs.shape[1]
    k = min(k, v)
    out: NDArray[np.int64] = np.argpartition(log_probs, v - k, axis=1)[:, v - k:]
    return out


@dataclass
class LabelTally:
    """Over all V labels: n inputs, sum of p per label (V,), argmax counts (V,) int64."""

    n: int
    sum_p: NDArray[np.float64]
    argmax_count: NDArray[np.int64]

    @classmethod
    def empty(cls, n_labels: int) -> LabelTally:
        return cls(0, np.zeros(n_labels), np.zeros(n_labels, dtype=np.int64))

    def update(self, log_probs: NDArray[np.float64]) -> None:
        """Add a batch of log-probabilities (n, V)."""
        lp = _check_log_probs(log_probs, self.sum_p.shape[0])
        self.add(lp.shape[0], np.exp(lp).sum(axis=0),
                 np.bincount(lp.argmax(axis=1), minlength=self.sum_p.shape[0]))

    def add(self, n: int, sum_p: NDArray[np.float64], argmax_count: NDArray[np.int64]) -> None:
        """Add a batch already summarised: its size, sum of p (V,) and argmax counts (V,)."""
        self.n += n
        self.sum_p += sum_p
        self.argmax_count += argmax_count

    def merge(self, other: LabelTally) -> LabelTally:
        """The tally of both shards."""
        return LabelTally(self.n + other.n, self.sum_p + other.sum_p,
                          self.argmax_count + other.argmax_count)

    @property
    def mean_p(self) -> NDArray[np.float64]:
        return self.sum_p / max(self.n, 1)

    def top(self, n_labels: int) -> list[int]:
        """Indices of the ``n_labels`` labels of largest mean probability (ties: more argmax
        wins, then the lower index)."""
        order = np.lexsort((np.arange(self.sum_p.size), -self.argmax_count, -self.sum_p))
        return [int(i) for i in order[:n_labels]]


@dataclass
class _Moments:
    """Mean (k,) and co-moment sum (k, k) of n rows, merged with Chan et al.'s formula."""

    n: int
    mean: NDArray[np.float64]
    comoment: NDArray[np.float64]

    @classmethod
    def of(cls, x: NDArray[np.float64]) -> _Moments:
        m = x.mean(axis=0)
        xc = x - m
        return cls(x.shape[0], m, xc.T @ xc)

    def merge(self, o: _Moments) -> _Moments:
        if self.n == 0:
            return o
        if o.n == 0:
            return self
        n = self.n + o.n
        delta = o.mean - self.mean
        mean = self.mean + delta * (o.n / n)
        com = self.comoment + o.comoment + np.outer(delta, delta) * (self.n * o.n / n)
        return _Moments(n, mean, com)

    def correlation(self) -> NDArray[np.float64]:
        sd = np.sqrt(np.diag(self.comoment))
        with np.errstate(invalid="ignore", divide="ignore"):
            r = self.comoment / np.outer(sd, sd)
        r[~np.isfinite(r)] = np.nan
        return np.clip(r, -1.0, 1.0)


@dataclass
class PairStats:
    """Per-pair statistics over a label set of k labels (indices ``idx`` into the head).

    Fed with log-probabilities over all V labels (the top-k test needs them all). ``offset`` of
    an update is the global index of the batch's first input, so witnesses name inputs of the
    whole data, whichever shard saw them.
    """

    idx: NDArray[np.int64]
    top_k: int
    n: int = 0
    p: _Moments = field(init=False)
    logp: _Moments = field(init=False)
    sum_min: NDArray[np.float64] = field(init=False)
    both_top: NDArray[np.int64] = field(init=False)
    best_min: NDArray[np.float64] = field(init=False)
    best_at: NDArray[np.int64] = field(init=False)
    best_p: NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        self.idx = np.asarray(self.idx, dtype=np.int64)
        k = self.idx.size
        if self.top_k < 1:
            raise fail(f"The 'top_k' argument of PairStats must be at least 1. "
                       f"Got {self.top_k} instead.")
        self.p = _Moments(0, np.zeros(k), np.zeros((k, k)))
        self.logp = _Moments(0, np.zeros(k), np.zeros((k, k)))
        self.sum_min = np.zeros((k, k))
        self.both_top = np.zeros((k, k), dtype=np.int64)
        self.best_min = np.full((k, k), -np.inf)
        self.best_at = np.full((k, k), -1, dtype=np.int64)
        self.best_p = np.full((k, k), np.nan)

    def update(self, log_probs: NDArray[np.float64], offset: int) -> None:
        """Add a batch of log-probabilities (n, V) whose first input has global index
        ``offset``."""
        lp_all = np.asarray(log_probs, dtype=np.float64)
        if lp_all.ndim != 2:
            raise fail(f"The 'log_probs' argument must have shape (n, V). "
                       f"Got shape {lp_all.shape} instead.")
        self.update_selected(lp_all[:, self.idx], top_k_indices(lp_all, self.top_k), offset)

    def update_selected(self, lp: NDArray[np.float64], top: NDArray[np.int64],
                        offset: int) -> None:
        """Add a batch given only the label set's log-probabilities (n, k) and, per input, the
        indices of its top-k labels over all V (n, top_k), as :func:`top_k_indices` gives."""
        n = lp.shape[0]
        if n == 0:
            return
        p = np.exp(lp)
        self.n += n
        self.p = self.p.merge(_Moments.of(p))
        self.logp = self.logp.merge(_Moments.of(lp))
        pos = np.full(int(self.idx.max()) + 2, -1, dtype=np.int64)
        pos[self.idx] = np.arange(self.idx.size)
        slot = pos[np.minimum(top, pos.size - 1)]
        in_top = np.zeros((n, self.idx.size + 1))
        np.put_along_axis(in_top, np.where(slot < 0, self.idx.size, slot), 1.0, axis=1)
        in_top = in_top[:, :-1]
        self.both_top += np.rint(in_top.T @ in_top).astype(np.int64)
        for i in range(self.idx.size):
            mins = np.minimum(p[:, i:i + 1], p)
            self.sum_min[i] += mins.sum(axis=0)
            at = mins.argmax(axis=0)
            val = mins[at, np.arange(mins.shape[1])]
            better = val > self.best_min[i]
            self.best_min[i] = np.where(better, val, self.best_min[i])
            self.best_at[i] = np.where(better, at + offset, self.best_at[i])
            self.best_p[i] = np.where(better, p[at, i], self.best_p[i])

    def merge(self, other: PairStats) -> PairStats:
        """The statistics of both shards (same label set and top_k)."""
        if not np.array_equal(self.idx, other.idx) or self.top_k != other.top_k:
            raise fail("PairStats.merge needs shards over the same labels and the same top_k.")
        out = PairStats(self.idx, self.top_k)
        out.n = self.n + other.n
        out.p = self.p.merge(other.p)
        out.logp = self.logp.merge(other.logp)
        out.sum_min = self.sum_min + other.sum_min
        out.both_top = self.both_top + other.both_top
        take = other.best_min > self.best_min
        out.best_min = np.where(take, other.best_min, self.best_min)
        out.best_at = np.where(take, other.best_at, self.best_at)
        out.best_p = np.where(take, other.best_p, self.best_p)
        return out

    def matrices(self) -> dict[str, NDArray[np.float64]]:
        """The (k, k) float64 matrix of each measure in :data:`MEASURES`."""
        n = max(self.n, 1)
        return {
            "corr_p": self.p.correlation(),
            "corr_logp": self.logp.correlation(),
            "mean_min": self.sum_min / n,
            "co_topk": self.both_top / n,
        }


# ---------------------------------------------------------------------------- data sources
class DataSource(Protocol):
    """Re-iterable batches of model inputs, with a short text for any input index."""

    def batches(self, batch_size: int) -> Iterator[Any]: ...

    def predictions_per_input(self) -> int: ...

    def describe(self, indices: Sequence[int], model: Any) -> dict[int, str]: ...

    def size_hint(self) -> int | None: ...


def _take(it: Iterable[Any], limit: int | None) -> Iterator[Any]:
    for i, x in enumerate(it):
        if limit is not None and i >= limit:
            return
        yield x


class TextWindows:
    """Text files (plain text, or JSON lines with a "text" field) tokenised by the model's
    tokenizer into non-overlapping windows of ``window`` tokens; every position of a window is
    one prediction (n = windows x window). Files are read in chunks: memory does not grow with
    their length.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], tokenize: Any, *, window: int,
                 max_inputs: int | None = None) -> None:
        if window < 1:
            raise fail(f"The 'window' argument must be at least 1. Got {window} instead.")
        self.paths = [Path(p) for p in paths]
        for p in self.paths:
            if not p.is_file():
                raise fail(f"{p}: no such data file.")
        self.tokenize = tokenize
        self.window = window
        self.max_inputs = max_inputs

    def _chunks(self) -> Iterator[str]:
        for p in self.paths:
            try:
                yield from self._file_chunks(p)
            except UnicodeDecodeError as e:
                raise file_error(p, f"not UTF-8 text (byte 0x{e.object[e.start]:02x} near "
                                    f"offset {e.start} of a chunk).") from None

    def _file_chunks(self, p: Path) -> Iterator[str]:
        jsonl = p.suffix.lower() in (".jsonl", ".ndjson")
        with open(p, encoding="utf-8") as fh:
            buf: list[str] = []
            size = 0
            for lineno, line in enumerate(fh, 1):
                if jsonl:
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except (json.JSONDecodeError, RecursionError) as e:
                        raise fail(f"{p}: line {lineno} is not valid JSON ({e}).") from None
                    if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
                        raise fail(f"{p}: line {lineno} has no string field 'text'.")
                    yield rec["text"]
                    continue
                buf.append(line)
                size += len(line)
                if size > 8192 and not line.strip():
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
        return self.max_inputs

    def describe(self, indices: Sequence[int], model: Any) -> dict[int, str]:
        """For prediction i: the window's tokens up to position i and the next one in brackets."""
        want = {int(i) // self.window: [] for i in indices}  # type: dict[int, list[int]]
        for i in indices:
            want[int(i) // self.window].append(int(i))
        labels = model.head.labels
        tok = getattr(model, "tokenizer", None)

        def decode(ids: Any) -> str:
            if tok is not None and callable(getattr(tok, "decode", None)):
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
                raise fail(f"{p}: no such data file.")
            from unembed.sources.files import read_npy

            arr = read_npy(p, mmap=True, numeric=True)
            self.name = str(p)
        else:
            arr = np.asarray(data)
            self.name = "array"
        if arr.ndim < 2 or arr.shape[0] == 0:
            raise fail(f"The data {self.name} must have shape (n, ...) with n >= 1. "
                       f"Got shape {arr.shape} instead.")
        self.array = arr if max_inputs is None else arr[:max_inputs]
        self.targets = targets
        if name is not None:
            self.name = name

    def batches(self, batch_size: int) -> Iterator[NDArray[Any]]:
        for s in range(0, self.array.shape[0], batch_size):
            yield np.asarray(self.array[s:s + batch_size])

    def predictions_per_input(self) -> int:
        return 1

    def size_hint(self) -> int | None:
        return int(self.array.shape[0])

    def describe(self, indices: Sequence[int], model: Any) -> dict[int, str]:
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


def open_data(path: str | os.PathLike[str], model: Any, *, window: int = 64,
              max_inputs: int | None = None) -> DataSource:
    """A data source for ``model`` from a file: ``.npy`` arrays for image classifiers and
    feature-matrix models; text (``.txt`` or anything else) or ``.jsonl`` for language models
    (needs ``model.tokenize``)."""
    p = Path(path)
    if p.suffix.lower() == ".npy":
        return ArrayInputs(p, max_inputs=max_inputs)
    if isinstance(model, OpensOwnText):  # models that read text themselves (spaCy)
        return model.open_text(p, max_inputs=max_inputs)
    if not callable(getattr(model, "tokenize", None)):
        raise fail(f"{p}: a text file needs a language model with a tokenizer; this model "
                   f"({getattr(model, 'kind', type(model).__name__)}) takes arrays (.npy).")
    return TextWindows([p], model.tokenize, window=window, max_inputs=max_inputs)


# ---------------------------------------------------------------------------- collection
#: Below this bound on |logit|, exp(z) in float64 neither overflows (even summed over 10^8
#: labels) nor leaves the normal range, so the softmax needs no shift by the row maximum.
_NO_SHIFT = 600.0


def _summarise(z: NDArray[Any], link: str, top_k: int,
               tally: LabelTally) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """One batch of logits (n, V): add it to ``tally`` and return its top-k label indices
    (n, k) and, for softmax, the log-normaliser log sum_k exp(z_k) (n,) (zeros for sigmoid).

    ``z`` may be float64 or the model's own float32: float32 widens exactly to float64, so the
    top-k sets and argmaxes are those of the float64 logits, and every exp, sum and
    log-normaliser is computed in float64 from the exact widened values (rows are widened
    chunk by chunk, never as a whole (n, V) float64 copy).

    Per chunk of rows (about 2**19 entries, so the float64 buffer stays in cache and is
    reused): ``torch.topk`` for the top k (sorted: its first column is the row maximum and
    the argmax), one exp written to the float64 buffer, one row sum and one weighted column
    sum. When every logit of the chunk lies in (-600, 600), exp(z) is taken directly (no
    shift by the row maximum: the same float64 rounding, one pass fewer); otherwise, as
    always before, exp(z - max). Log-probabilities of the label set follow from z and the
    log-normaliser (:func:`_selected_log_probs`).
    """
    import torch

    if z.dtype == np.float16:
        z = z.astype(np.float32)
    elif z.dtype not in (np.float32, np.float64):
        z = z.astype(np.float64)
    if not (z.flags.c_contiguous and z.flags.writeable):
        z = np.array(z, order="C")
    n, v = z.shape
    k = min(top_k, v)
    top = np.empty((n, k), dtype=np.int64)
    lognorm = np.zeros(n)
    sum_p = np.zeros(v)
    best = np.empty(n, dtype=np.int64)
    step = max(1, (1 << 19) // max(v, 1))
    buf = np.empty((min(step, n), v))
    zt = torch.from_numpy(z)
    for r0 in range(0, n, step):
        zc = z[r0:r0 + step]
        e = buf[: zc.shape[0]]
        vals, ti = torch.topk(zt[r0:r0 + step], k, dim=1)
        tc = ti.numpy()
        top[r0:r0 + step] = tc
        best[r0:r0 + step] = tc[:, 0]
        if link == "softmax":
            m = vals[:, 0].numpy().astype(np.float64)
            if -_NO_SHIFT < float(zc.min()) and float(m.max()) < _NO_SHIFT:
                np.exp(zc, out=e, dtype=np.float64)  # the float64 loop, not float32's
                sc = e.sum(axis=1)
                lognorm[r0:r0 + step] = np.log(sc)
            else:
                np.subtract(zc, m[:, None], out=e)
                np.exp(e, out=e)
                sc = e.sum(axis=1)
                lognorm[r0:r0 + step] = m + np.log(sc)
            sum_p += (1.0 / sc) @ e
        else:
            np.negative(zc, out=e)
            np.logaddexp(0.0, e, out=e)
            np.negative(e, out=e)
            np.exp(e, out=e)
            sum_p += e.sum(axis=0)
    tally.add(n, sum_p, np.bincount(best, minlength=v))
    return top, lognorm


def _selected_log_probs(z_sel: NDArray[Any], lognorm: NDArray[np.float64],
                        link: str) -> NDArray[np.float64]:
    """Log-probabilities (n, k) float64 of some labels from their logits (float32 or float64,
    widened exactly) and the row log-normaliser."""
    z64 = np.asarray(z_sel, dtype=np.float64)
    if link == "softmax":
        out: NDArray[np.float64] = z64 - lognorm[:, None]
        return out
    return logits_to_log_probs(z64, "sigmoid")


@dataclass
class Behaviour:
    """What :func:`collect` found.

    Attributes
    ----------
    labels : tuple of str
        The label set (k labels) in matrix order; ``idx`` their rows in the head.
    matrices : dict of measure -> (k, k) float64
        One matrix per :data:`MEASURES` entry.
    tally : LabelTally
        Over all V labels and all inputs.
    pairs : PairStats
        The raw accumulator (for merging and witnesses).
    hidden : (m, d) float64
        The hidden states of the first m predictions (m <= ``keep_hidden``), for verification.
    n_predictions : int
        How many predictions (inputs x positions) were seen.
    selection : str
        How the label set was chosen.
    """

    labels: tuple[str, ...]
    idx: NDArray[np.int64]
    matrices: dict[str, NDArray[np.float64]]
    tally: LabelTally
    pairs: PairStats
    hidden: NDArray[np.float64]
    n_predictions: int
    top_k: int
    selection: str


def collect(
    model: Any,
    data: DataSource,
    *,
    labels: Sequence[LabelRef] | None = None,
    top_n: int = 40,
    top_k: int = 5,
    batch_size: int = 32,
    keep_hidden: int = 4096,
    selection_predictions: int = 8192,
    progress: bool = True,
    logits: Literal["model", "head"] = "model",
) -> Behaviour:
    """Stream ``model`` over ``data`` once and accumulate behaviour per pair of labels.

    The label set is ``labels`` when given, every label when V <= ``top_n``, otherwise the
    ``top_n`` labels of largest mean probability over the first ``selection_predictions``
    predictions (their log-probabilities are held until the set is chosen, then every
    prediction, those included, feeds the pair statistics: one forward pass in all).

    Parameters
    ----------
    model : LoadedModel
        ``hidden_states(batch) -> (n, d)``. The probabilities analysed come from the model's
        own logits (``logits="model"``, the default, when the model has ``forward``: in the
        model's precision, float32 for most models, widened exactly to float64 where they are
        used) or from the head's float64 logits of the hidden states (``logits="head"``); the
        log-normaliser and every statistic are computed in float64 either way.
    data : DataSource
    top_k : int
        "Both in the top k" counts inputs where both labels are among the k most probable of
        all V labels.
    logits : {"model", "head"}
        "model" (default): when the model has ``forward(inputs) -> (hidden, logits)``, its own
        logits of the same pass are used (widened exactly to float64 chunk by chunk where
        they are used; ``forward_native``, when the model has it, gives them in the model's
        own precision without a whole (n, V) float64 copy): no second product with the
        (V, d) head. "head": the head's float64 logits of the hidden states. Predictions held
        while the label set is chosen get the chosen labels' logits from the head in float64
        either way; both agree to the model's float precision.
    """
    if logits not in ("model", "head"):
        raise fail(f"The 'logits' argument of collect must be 'model' or 'head'. "
                   f"Got {logits!r} instead.")
    use_model = logits == "model" and callable(getattr(model, "forward", None))
    # the model's own precision when it offers it: no (n, V) float64 copy per batch
    forward: Any = getattr(model, "forward_native", None) if use_model else None
    if not callable(forward):
        forward = getattr(model, "forward", None)
    head: Head = model.head
    v = head.n_labels
    tally = LabelTally.empty(v)
    pairs: PairStats | None = None
    selection = ""
    if labels is not None:
        idx = head.indices(list(labels), argument="labels")
        if len(set(idx)) != len(idx) or len(idx) < 2:
            raise fail("The 'labels' argument must name at least 2 distinct labels.")
        pairs = PairStats(np.asarray(idx), top_k)
        selection = f"{len(idx)} labels given by the caller"
    elif v <= top_n:
        pairs = PairStats(np.arange(v), top_k)
        selection = f"all {v} labels"
    # Until the label set is chosen, each prediction is held as its hidden state (d,), its
    # log-normaliser and its top-k labels: enough to recompute the chosen labels' log p.
    held: list[tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], int]] = []
    held_n = 0
    hidden: list[NDArray[np.float64]] = []
    kept = 0
    seen = 0

    def choose() -> PairStats:
        nonlocal selection
        selection = (f"the {top_n} labels of largest mean probability over the first "
                     f"{tally.n} predictions")
        chosen = PairStats(np.asarray(sorted(tally.top(top_n))), top_k)
        sub = head.subset([int(i) for i in chosen.idx])
        for h_h, lognorm_h, top_h, off in held:
            chosen.update_selected(_selected_log_probs(sub.logits(h_h), lognorm_h, head.link),
                                   top_h, off)
        held.clear()
        return chosen

    from threadpoolctl import threadpool_limits

    hint = data.size_hint()
    # The accumulators multiply small (n, k) matrices: one BLAS thread does that fastest, and
    # BLAS threads spinning beside the model's own threads (torch) slow both down many times.
    with threadpool_limits(1, user_api="blas"), progress_bars(progress) as bar:
        task = bar.add("behaviour", total=hint)
        for batch in data.batches(batch_size):
            if use_model:
                h, z = forward(batch)
            else:
                h = model.hidden_states(batch)
                z = head.logits(h)
            top, lognorm = _summarise(z, head.link, top_k, tally)
            if kept < keep_hidden:
                hidden.append(h[: keep_hidden - kept])
                kept += hidden[-1].shape[0]
            if pairs is None:
                held.append((h, lognorm, top, seen))
                held_n += z.shape[0]
                if held_n >= selection_predictions:
                    pairs = choose()
            else:
                pairs.update_selected(_selected_log_probs(z[:, pairs.idx], lognorm, head.link),
                                      top, seen)
            seen += z.shape[0]
            bar.advance(task, len(batch))
    if seen == 0:
        raise fail("The data gave no inputs (empty file, or fewer tokens than one window).")
    if pairs is None:
        pairs = choose()
    return Behaviour(
        labels=tuple(head.labels[i] for i in pairs.idx),
        idx=pairs.idx,
        matrices=pairs.matrices(),
        tally=tally,
        pairs=pairs,
        hidden=np.concatenate(hidden) if hidden else np.zeros((0, head.d)),
        n_predictions=seen,
        top_k=top_k,
        selection=selection,
    )
