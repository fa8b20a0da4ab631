"""Streaming, mergeable accumulators of a model's probabilities over data.

Both are fed with batches of log-probabilities of shape (n, V) (float64, every label of the
head), or with what :mod:`unembed.behaviour` summarises them to, and both merge:
``a.merge(b)`` over two shards equals one accumulator fed with both (sums in float64: counts
exactly, moments up to rounding), so work can be split over processes and machines.

* :class:`LabelTally` over all V labels: n, the sum of p_i and how often each label is the
  argmax. It picks the label set: the N labels of largest mean probability.
* :class:`PairStats` over a label set of k labels, per pair (i, j): the correlation of p_i and
  p_j across inputs, the same on log p, the mean of min(p_i, p_j), how often both are among the
  top k of all V labels, and the input where min(p_i, p_j) is largest (a witness).

>>> import numpy as np
>>> lp = np.log(np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]]))
>>> t = LabelTally.empty(3)
>>> t.update(lp)
>>> t.mean_p.round(3).tolist(), t.argmax_count.tolist(), t.top(2)
([0.45, 0.35, 0.2], [1, 1, 0], [0, 1])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed._stats import merge_moments

__all__ = ["MEASURES", "MEASURE_TITLES", "LabelTally", "PairMoments", "PairStats", "top_k_indices"]

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
        raise UnembedError(f"must have shape (n, {v}). "
                           f"Got shape {a.shape} instead.", argument="log_probs")
    return a


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
class PairMoments:
    """Mean (k,) and co-moment sum (k, k) of n rows, merged with Chan et al.'s formula."""

    n: int
    mean: NDArray[np.float64]
    comoment: NDArray[np.float64]

    @classmethod
    def of(cls, x: NDArray[np.float64]) -> PairMoments:
        m = x.mean(axis=0)
        xc = x - m
        return cls(x.shape[0], m, xc.T @ xc)

    def merge(self, o: PairMoments) -> PairMoments:
        if self.n == 0:
            return o
        if o.n == 0:
            return self
        return PairMoments(*merge_moments(self.n, self.mean, self.comoment, o.n, o.mean,
                                          o.comoment))

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
    p: PairMoments = field(init=False)
    logp: PairMoments = field(init=False)
    sum_min: NDArray[np.float64] = field(init=False)
    both_top: NDArray[np.int64] = field(init=False)
    best_min: NDArray[np.float64] = field(init=False)
    best_at: NDArray[np.int64] = field(init=False)
    best_p: NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        self.idx = np.asarray(self.idx, dtype=np.int64)
        k = self.idx.size
        if self.top_k < 1:
            raise UnembedError("must be at least 1. "
                               f"Got {self.top_k} instead.", argument="top_k", function="PairStats")
        self.p = PairMoments(0, np.zeros(k), np.zeros((k, k)))
        self.logp = PairMoments(0, np.zeros(k), np.zeros((k, k)))
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
            raise UnembedError("must have shape (n, V). "
                               f"Got shape {lp_all.shape} instead.", argument="log_probs")
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
        self.p = self.p.merge(PairMoments.of(p))
        self.logp = self.logp.merge(PairMoments.of(lp))
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
        """The statistics of both shards (same label set and top_k; any two disjoint sets of
        inputs, in either order)."""
        if not np.array_equal(self.idx, other.idx) or self.top_k != other.top_k:
            raise UnembedError("PairStats.merge needs shards over the same labels and the same "
                               "top_k.")
        out = PairStats(self.idx, self.top_k)
        out.n = self.n + other.n
        out.p = self.p.merge(other.p)
        out.logp = self.logp.merge(other.logp)
        out.sum_min = self.sum_min + other.sum_min
        out.both_top = self.both_top + other.both_top
        # on equal minima the earlier input wins, as in one pass over the data (whatever
        # order the shards are merged in)
        take = (other.best_min > self.best_min) | (
            (other.best_min == self.best_min) & (other.best_at >= 0)
            & ((other.best_at < self.best_at) | (self.best_at < 0)))
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


