"""What a model does on data: the audit's pass, a model over a data source once, into
mergeable accumulators.

:func:`collect` runs the model batch by batch (with a progress bar; memory set by the batch
size and the label count, not by the data's length), summarises each batch of logits
(:mod:`unembed.kernels`) into a :class:`~unembed.accumulators.LabelTally` over all V labels
and a :class:`~unembed.accumulators.PairStats` over the label set.

The same pass split over workers (:mod:`unembed.engine`) uses the pieces below:
:func:`select_labels` (the label set from the first predictions) and :func:`run_shard` (the
batches ``b`` with ``b % n_shards == shard``), whose :class:`Partial` results merge to what
:func:`collect` gives: counts, argmaxes, top-k sets and witnesses identical, sums and moments
equal up to float64 rounding of the order of summation.

The inputs the pass reads (:mod:`unembed.data`: :class:`~unembed.data.ArrayInputs`,
:class:`~unembed.data.TextWindows`, :func:`~unembed.data.open_data`) and the accumulators and
measures it fills (:mod:`unembed.accumulators`) are importable from here too, so a caller of
the pass needs one import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed._progress import progress_bars
from unembed.accumulators import MEASURE_TITLES, MEASURES, LabelTally, PairStats, top_k_indices
from unembed.data import (
    ArrayInputs,
    DataSource,
    OpensOwnText,
    TextWindows,
    open_data,
    shard_batches,
)
from unembed.head import Head, LabelRef
from unembed.kernels import selected_log_probs, summarise, take_columns
from unembed.moments import Moments, merged, moments_for

if TYPE_CHECKING:
    from unembed.model import LoadedModel

__all__ = ["MEASURES", "MEASURE_TITLES", "ArrayInputs", "Behaviour", "DataSource", "LabelSelection",
           "LabelTally", "OpensOwnText", "PairStats", "Partial", "PassOptions", "TextWindows",
           "collect", "collect_with", "label_selection", "open_data", "run_shard",
           "select_labels", "top_k_indices"]


@dataclass
class Behaviour:
    """What :func:`collect` found.

    Attributes
    ----------
    labels : tuple of str
        The label set (k labels) in matrix order; ``idx`` their rows in the head.
    matrices : dict of measure -> (k, k) float64
        One matrix per :data:`~unembed.accumulators.MEASURES` entry.
    tally : LabelTally
        Over all V labels and all inputs.
    pairs : PairStats
        The raw accumulator (for merging and witnesses).
    hidden : (m, d) float64
        The hidden states of the first m predictions, for verification: m <= ``keep_hidden``
        and at most :data:`KEPT_BYTES` of float64 states (a wide head's states are large:
        at d = 60000 that is 559 of them).
    n_predictions : int
        How many predictions (inputs x positions) were seen.
    selection : str
        How the label set was chosen.
    moments : HiddenMoments, LogitMoments or None
        Mean and covariance (float64) of every hidden state seen, or for a head with fewer
        labels than dimensions of its centered logits (:func:`unembed.moments.moments_for`,
        the smaller): the ``logit`` view's data.
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
    moments: Moments | None = None


#: The most memory the hidden states kept for verification may take (float64).
KEPT_BYTES = 1 << 28


def kept_states(keep_hidden: int, d: int) -> int:
    """How many hidden states of width d the pass keeps: ``keep_hidden``, and at most
    :data:`KEPT_BYTES` of them in float64 (at least 64, whatever d)."""
    return min(keep_hidden, max(64, KEPT_BYTES // (8 * max(d, 1))))


Forward = Callable[[Any], tuple[NDArray[np.float64], object]]


def _forward(model: LoadedModel, logits: str) -> Forward:
    """(hidden states (n, d) float64, logits (n, V)) of a batch: the model's own logits (in its
    own precision where it offers them, possibly a tensor on its device) or the head's."""
    if logits not in ("model", "head"):
        raise UnembedError("must be 'model' or 'head'. "
                           f"Got {logits!r} instead.", argument="logits", function="collect")
    head: Head = model.head
    if logits == "model":
        from unembed.sources.torch_base import TorchSource

        # torch models hand their logits over in their own precision (a tensor on an
        # accelerator): no (n, V) float64 copy per batch
        return model.forward_native if isinstance(model, TorchSource) else model.forward

    def via_head(batch: Any) -> tuple[NDArray[np.float64], object]:
        h = model.hidden_states(batch)
        return h, head.logits(h)

    return via_head


@dataclass
class Partial:
    """What a pass over some of the batches gives; :meth:`merge` joins disjoint ones.

    ``hidden`` holds (offset, states) for the predictions with global index below
    ``keep_hidden``; ``batches`` counts the batches seen; ``moments`` the hidden states' mean
    and covariance (merged with Chan et al.'s update).
    """

    tally: LabelTally
    pairs: PairStats | None
    hidden: list[tuple[int, NDArray[np.float64]]] = field(default_factory=list)
    seen: int = 0
    batches: int = 0
    moments: Moments | None = None

    def merge(self, other: Partial) -> Partial:
        pairs = (self.pairs if other.pairs is None else other.pairs if self.pairs is None
                 else self.pairs.merge(other.pairs))
        mom = (self.moments if other.moments is None else other.moments
               if self.moments is None else merged(self.moments, other.moments))
        return Partial(self.tally.merge(other.tally), pairs, self.hidden + other.hidden,
                       self.seen + other.seen, self.batches + other.batches, mom)

    def hidden_states(self, d: int, keep: int) -> NDArray[np.float64]:
        """The first ``keep`` hidden states in input order."""
        parts = [h for _, h in sorted(self.hidden, key=lambda t: t[0])]
        return np.concatenate(parts)[:keep] if parts else np.zeros((0, d))


class _Stream:
    """The per-batch work, shared by the single pass and the shards.

    Batches numbered below ``head_batches`` take the label set's log-probabilities from the
    head's float64 logits of their hidden states (as the predictions held while the label set
    is chosen do in a single pass), the others from the model's own logits.
    """

    def __init__(self, model: LoadedModel, *, idx: NDArray[np.int64] | None, top_k: int,
                 keep_hidden: int, logits: str, head_batches: int = 0) -> None:
        self.head: Head = model.head
        self.forward = _forward(model, logits)
        self.top_k = top_k
        self.keep_hidden = kept_states(keep_hidden, self.head.d)
        self.head_batches = head_batches
        self.part = Partial(LabelTally.empty(self.head.n_labels),
                            None if idx is None else PairStats(idx, top_k),
                            moments=moments_for(self.head.W, source="the audit data",
                                                mean=self.head.stats.mean()))
        self.held: list[tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64],
                              int]] = []
        self.held_n = 0
        self._sub: Head | None = None

    def feed(self, b: int, offset: int, batch: Any) -> int:
        h, z = self.forward(batch)
        top, lognorm = summarise(z, self.head.link, self.top_k, self.part.tally)
        n = int(top.shape[0])
        if self.part.moments is not None:
            self.part.moments.update(h)
        if offset < self.keep_hidden:
            self.part.hidden.append((offset, np.asarray(h[: self.keep_hidden - offset])))
        pairs = self.part.pairs
        if pairs is None:
            self.held.append((h, lognorm, top, offset))
            self.held_n += n
        elif b < self.head_batches:
            pairs.update_selected(selected_log_probs(self.sub(pairs).logits(h), lognorm,
                                                     self.head.link), top, offset)
        else:
            pairs.update_selected(selected_log_probs(take_columns(z, pairs.idx), lognorm,
                                                     self.head.link), top, offset)
        self.part.seen += n
        self.part.batches += 1
        return n

    def sub(self, pairs: PairStats) -> Head:
        if self._sub is None:
            self._sub = self.head.subset([int(i) for i in pairs.idx])
        return self._sub

    def choose(self, idx: NDArray[np.int64]) -> None:
        """Fix the label set and feed it the held predictions (head logits, float64)."""
        pairs = PairStats(idx, self.top_k)
        self.part.pairs = pairs
        sub = self.sub(pairs)
        for h, lognorm, top, off in self.held:
            pairs.update_selected(selected_log_probs(sub.logits(h), lognorm, self.head.link),
                                  top, off)
        self.held.clear()


@dataclass(frozen=True)
class LabelSelection:
    """Which labels the pair statistics are kept for (the *label set*; ``--label-set`` and
    ``--top-n`` on the command line): ``label_set`` when given (names or ``"#N"``; at least 2
    distinct labels); else every label when V <= ``top_n``; else the ``top_n`` labels of
    largest mean probability over the first ``predictions`` predictions.

    Examples
    --------
    >>> import numpy as np
    >>> from unembed import Head
    >>> head = Head(np.eye(4), labels=["a", "b", "c", "d"])
    >>> LabelSelection(label_set=("c", "#0")).fixed(head)
    (array([2, 0]), '2 labels given by the caller')
    >>> LabelSelection(top_n=2).fixed(head)  # more labels than top_n: chosen from the data
    (None, '')
    """

    label_set: tuple[LabelRef, ...] | None = None
    top_n: int = 40
    predictions: int = 8192

    def fixed(self, head: Head) -> tuple[NDArray[np.int64] | None, str]:
        """The label set when it does not depend on the data (given, or every label), with
        how it was chosen; (None, "") when it is chosen from the first predictions."""
        if self.label_set is not None:
            idx = head.indices(list(self.label_set), argument="labels")
            if len(set(idx)) != len(idx) or len(idx) < 2:
                raise UnembedError("must name at least 2 distinct labels.", argument="label_set")
            return np.asarray(idx, dtype=np.int64), f"{len(idx)} labels given by the caller"
        if head.n_labels <= self.top_n:
            return np.arange(head.n_labels, dtype=np.int64), f"all {head.n_labels} labels"
        return None, ""

    def chosen(self, tally: LabelTally) -> tuple[NDArray[np.int64], str]:
        """The ``top_n`` labels of largest mean probability in ``tally``."""
        return (np.asarray(sorted(tally.top(self.top_n)), dtype=np.int64),
                f"the {self.top_n} labels of largest mean probability over the first "
                f"{tally.n} predictions")


@dataclass(frozen=True)
class PassOptions:
    """How the streaming pass runs the model, besides the label set: "both in the top k"
    (``top_k``), inputs per model call, hidden states kept for verification, and whose logits
    give the probabilities ("model": the model's own; "head": the head's, float64)."""

    top_k: int = 5
    batch_size: int = 32
    keep_hidden: int = 4096
    logits: Literal["model", "head"] = "model"


def label_selection(label_set: Sequence[LabelRef] | None, top_n: int,
                    selection_predictions: int, *, labels: Sequence[LabelRef] | None = None,
                    where: str = "collect") -> LabelSelection:
    """The :class:`LabelSelection` of the keyword arguments :func:`collect`,
    :func:`unembed.audit.audit` and :meth:`unembed.engine.RayEngine.collect` share;
    ``labels=`` is the deprecated spelling of ``label_set=`` (a DeprecationWarning)."""
    if labels is not None:
        import warnings

        warnings.warn(f"The 'labels' argument of {where} is deprecated; use 'label_set' (the "
                      f"same list of label names or '#N'). 'labels' names label names of a "
                      f"head everywhere else (load(labels=...), --labels FILE).",
                      DeprecationWarning, stacklevel=3)
        if label_set is not None:
            raise UnembedError(f"{where}: pass the label set once, as 'label_set' (not also as the "
                               f"deprecated 'labels').")
        label_set = labels
    return LabelSelection(None if label_set is None else tuple(label_set), top_n,
                          selection_predictions)


def _check_top_k(top_k: int) -> None:
    if top_k < 1:
        raise UnembedError(f"must be at least 1. Got {top_k} instead.", argument="top_k",
                           function="collect")


def _behaviour(head: Head, part: Partial, selection: str, top_k: int,
               keep_hidden: int) -> Behaviour:
    if part.seen == 0:
        raise UnembedError("The data gave no inputs (empty file, or fewer tokens than one window).")
    assert part.pairs is not None
    pairs = part.pairs
    return Behaviour(
        labels=tuple(head.labels[i] for i in pairs.idx), idx=pairs.idx,
        matrices=pairs.matrices(), tally=part.tally, pairs=pairs,
        hidden=part.hidden_states(head.d, keep_hidden), n_predictions=part.seen, top_k=top_k,
        selection=selection, moments=part.moments)


def collect(
    model: LoadedModel,
    data: DataSource,
    *,
    label_set: Sequence[LabelRef] | None = None,
    top_n: int = 40,
    top_k: int = 5,
    batch_size: int = 32,
    keep_hidden: int = 4096,
    selection_predictions: int = 8192,
    progress: bool = True,
    logits: Literal["model", "head"] = "model",
    labels: Sequence[LabelRef] | None = None,
) -> Behaviour:
    """Stream ``model`` over ``data`` once and accumulate behaviour per pair of labels.

    The label set is ``label_set`` when given (``labels`` is its deprecated spelling), every
    label when V <= ``top_n``, otherwise the ``top_n`` labels of largest mean probability over
    the first ``selection_predictions`` predictions (their hidden states are held until the
    set is chosen, then every prediction, those included, feeds the pair statistics: one
    forward pass in all); see :class:`LabelSelection`.

    Parameters
    ----------
    model : LoadedModel
        ``hidden_states(batch) -> (n, d)``. The probabilities analysed come from the model's
        own logits by default (``logits="model"``, below) or from the head's float64 logits of
        those hidden states (``logits="head"``); the log-normaliser and every statistic are
        float64 either way.
    data : DataSource
    top_k : int
        "Both in the top k" counts inputs where both labels are among the k most probable of
        all V labels.
    logits : {"model", "head"}
        "model" (default): when the model has ``forward(inputs) -> (hidden, logits)``, its own
        logits of the same pass are used: the model's own precision (float32 for most
        checkpoints) widened exactly to float64 where they are used, so top-k sets and
        argmaxes are the model's own, and p = exp(z - log-normaliser) is computed in float64
        from those logits (``forward_native``, when the model has it, gives them without a
        whole (n, V) float64 copy, on the model's device). "head": the head's float64 logits
        of the hidden states. Predictions held while the label set is chosen get the chosen
        labels' logits from the head in float64 either way; both agree to the model's float
        precision.
    """
    return collect_with(model, data, label_selection(label_set, top_n, selection_predictions,
                                                     labels=labels),
                        PassOptions(top_k, batch_size, keep_hidden, logits), progress=progress)


def collect_with(model: LoadedModel, data: DataSource, choice: LabelSelection, opts: PassOptions, *,
                 progress: bool = True) -> Behaviour:
    """:func:`collect` with the label selection and the pass options as objects."""
    from unembed.model import require_loaded

    head: Head = require_loaded(model, "collect").head
    top_k, keep_hidden = opts.top_k, opts.keep_hidden
    _check_top_k(top_k)
    idx, selection = choice.fixed(head)
    stream = _Stream(model, idx=idx, top_k=top_k, keep_hidden=keep_hidden, logits=opts.logits)

    from threadpoolctl import threadpool_limits

    hint = data.size_hint()
    # The accumulators multiply small (n, k) matrices: one BLAS thread does that fastest, and
    # BLAS threads spinning beside the model's own threads (torch) slow both down many times.
    with threadpool_limits(1, user_api="blas"), progress_bars(progress) as bar:
        task = bar.add("behaviour", total=hint)
        for b, _, batch in shard_batches(data, opts.batch_size):
            # global indices count the predictions made (a row of token ids is many)
            stream.feed(b, stream.part.seen, batch)
            if stream.part.pairs is None and stream.held_n >= choice.predictions:
                idx, selection = choice.chosen(stream.part.tally)
                stream.choose(idx)
            bar.advance(task, len(batch))
        if stream.part.pairs is None and stream.part.seen:  # fewer predictions than asked
            idx, selection = choice.chosen(stream.part.tally)
            stream.choose(idx)
    return _behaviour(head, stream.part, selection, top_k, kept_states(keep_hidden, head.d))


# ------------------------------------------------------------------------------ in shards
@dataclass(frozen=True)
class Selection:
    """The label set of a run in shards: its rows, how it was chosen, and how many leading
    batches were held while choosing it (they take the head's logits, as in one pass)."""

    idx: NDArray[np.int64]
    text: str
    head_batches: int


def select_labels(model: LoadedModel, data: DataSource, choice: LabelSelection, *, top_k: int = 5,
                  batch_size: int = 32, logits: Literal["model", "head"] = "model"
                  ) -> Selection:
    """The label set :func:`collect` would choose, and the batches it holds while choosing
    (the first batches until ``choice.predictions`` predictions are seen; none when the set
    is given or every label is in it)."""
    from unembed.model import require_loaded

    head: Head = require_loaded(model, "select_labels").head
    _check_top_k(top_k)
    idx, text = choice.fixed(head)
    if idx is not None:
        return Selection(idx, text, 0)
    from threadpoolctl import threadpool_limits

    stream = _Stream(model, idx=None, top_k=top_k, keep_hidden=0, logits=logits)
    with threadpool_limits(1, user_api="blas"):
        for b, _, batch in shard_batches(data, batch_size):
            stream.feed(b, stream.part.seen, batch)
            if stream.held_n >= choice.predictions:
                break
    if stream.part.seen == 0:
        raise UnembedError("The data gave no inputs (empty file, or fewer tokens than one window).")
    idx, text = choice.chosen(stream.part.tally)
    return Selection(idx, text, stream.part.batches)


def run_shard(model: LoadedModel, data: DataSource, selection: Selection, *, shard: int,
              n_shards: int, top_k: int = 5, batch_size: int = 32, keep_hidden: int = 4096,
              logits: Literal["model", "head"] = "model",
              on_batch: Callable[[int], None] | None = None) -> Partial:
    """The batches ``b`` with ``b % n_shards == shard``, accumulated over ``selection``'s label
    set. Partials of all shards merged (:meth:`Partial.merge`) give :func:`collect`'s
    numbers; :func:`behaviour_of` turns them into a :class:`Behaviour`."""
    from threadpoolctl import threadpool_limits

    stream = _Stream(model, idx=selection.idx, top_k=top_k, keep_hidden=keep_hidden,
                     logits=logits, head_batches=selection.head_batches)
    per = data.predictions_per_input()
    with threadpool_limits(1, user_api="blas"):
        for b, offset, batch in shard_batches(data, batch_size, shard=shard, n_shards=n_shards):
            n = stream.feed(b, offset, batch)
            if n != len(batch) * per:
                raise UnembedError(f"The data source says {per} prediction(s) per input, but the "
                                   f"model "
                                   f"made {n} for {len(batch)} inputs; shards could not name "
                                   f"inputs "
                                   f"by their global index. Use text data (windows) for language "
                                   f"models, or run without an engine.")
            if on_batch is not None:
                on_batch(len(batch))
    return stream.part


def behaviour_of(head: Head, parts: Iterable[Partial], selection: Selection, *, top_k: int,
                 keep_hidden: int) -> Behaviour:
    """The :class:`Behaviour` of merged shard results (merged in the order given)."""
    it = iter(parts)
    total = next(it)
    for p in it:
        total = total.merge(p)
    if total.pairs is None:
        total.pairs = PairStats(selection.idx, top_k)
    return _behaviour(head, total, selection.text, top_k, kept_states(keep_hidden, head.d))
