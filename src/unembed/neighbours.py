"""The k nearest labels of a label over the whole vocabulary, under each row view.

For query labels q and every label j != q, the cosine cos(r_q, r_j) of the view's rows
(:mod:`unembed.views`: ``raw``, ``centered``, ``normalized``, ``causal``; rows identified off
the head's known null space for every view but ``raw``) is computed by blocked matrix products
in float64: the unit rows of one block of labels at a time times the unit query rows, so memory
is O(queries x block + queries x k), never V x V. The top k is exact: within a block the k
largest are found by partition, candidates are merged across blocks by a stable sort on the
cosine (every earlier block's labels come first), so ties are broken by label index; a block
whose k-th value is tied beyond k is sorted whole. A label whose row is zero in the view has no
cosine and is never a neighbour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from unembed._blocks import row_blocks
from unembed._checks import arg_error
from unembed.head import Head, LabelRef

__all__ = ["NEIGHBOUR_VIEWS", "Neighbour", "nearest", "neighbours"]

#: The views neighbours are computed under (the row views).
NEIGHBOUR_VIEWS: tuple[str, ...] = ("raw", "centered", "normalized", "causal")


@dataclass(frozen=True)
class Neighbour:
    """One neighbour: its label, row index and cosine (float64)."""

    label: str
    index: int
    cosine: float

    def to_dict(self) -> dict[str, object]:
        return {"label": self.label, "cosine": self.cosine}


def _unit_rows(head: Head, idx: NDArray[np.intp], view: str, weights: ArrayLike | None
               ) -> NDArray[np.float64]:
    from unembed.views import _rows_of

    R = _rows_of(head, idx, view, weights)
    n = np.sqrt(np.einsum("ij,ij->i", R, R))
    with np.errstate(divide="ignore", invalid="ignore"):
        U = R / n[:, None]
    U[~(n > 1e-300)] = np.nan  # no direction: never a neighbour
    return np.asarray(U)


def nearest(head: Head, queries: NDArray[np.intp], *, k: int = 10, view: str = "centered",
            weights: ArrayLike | None = None, block: int | None = None
            ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Indices (q, k) and cosines (q, k) of the k nearest labels of each query label (itself
    excluded), best first, ties by label index; -1 / NaN where fewer than k labels have a
    cosine."""
    if view not in NEIGHBOUR_VIEWS:
        raise arg_error("neighbours", "view", f"must be one of {', '.join(NEIGHBOUR_VIEWS)} "
                        f"(a row view)", got=view)
    V = head.n_labels
    if not (isinstance(k, (int, np.integer)) and 1 <= k):
        raise arg_error("neighbours", "k", "must be a positive integer", got=k)
    k = int(min(k, V - 1))
    Q = _unit_rows(head, queries, view, weights)
    q = Q.shape[0]
    best_i = np.full((q, 0), -1, dtype=np.intp)
    best_v = np.full((q, 0), -np.inf)
    step = block or max(k + 1, min(8192, (1 << 23) // max(q, 1)))
    rows = np.arange(q)[:, None]
    for s, e in row_blocks(V, 1, 8 * step):
        idx = np.arange(s, e)
        B = _unit_rows(head, idx, view, weights)
        S = Q @ B.T  # (q, b) float64
        S[np.isnan(S)] = -np.inf
        own = (queries >= s) & (queries < e)
        S[np.flatnonzero(own), queries[own] - s] = -np.inf  # a label is not its own neighbour
        kk = min(k, e - s)
        if kk < e - s:
            part = np.argpartition(-S, kk - 1, axis=1)[:, :kk]
            part.sort(axis=1)  # by label index, for the stable merge below
            kth = S[rows, part].min(axis=1)
            tied = np.flatnonzero((S >= kth[:, None]).sum(axis=1) > kk)
            for t in tied:  # ties at the k-th value: the lowest indices win
                order = np.argsort(-S[t], kind="stable")[:kk]
                part[t] = np.sort(order)
        else:
            part = np.broadcast_to(np.arange(e - s), (q, e - s)).copy()
        cand_i = np.concatenate([best_i, part + s], axis=1)
        cand_v = np.concatenate([best_v, S[rows, part]], axis=1)
        order = np.argsort(-cand_v, axis=1, kind="stable")[:, :k]
        best_i = np.take_along_axis(cand_i, order, axis=1)
        best_v = np.take_along_axis(cand_v, order, axis=1)
    best_i = np.where(np.isfinite(best_v), best_i, -1)
    best_v = np.where(np.isfinite(best_v), np.clip(best_v, -1.0, 1.0), np.nan)
    return best_i, best_v


def neighbours(head: Head, labels: Sequence[LabelRef] | None = None, *, k: int = 10,
               view: str = "centered", weights: ArrayLike | None = None
               ) -> dict[str, list[Neighbour]]:
    """The k nearest labels of each of ``labels`` (default: every label) over the whole
    vocabulary under one row view; see the module docstring.

    >>> import numpy as np
    >>> from unembed import Head
    >>> head = Head(np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.2]]),
    ...             labels=["cat", "kitten", "car", "dog"])
    >>> [(n.label, round(n.cosine, 3)) for n in neighbours(head, ["cat"], k=2, view="raw")["cat"]]
    [('kitten', 0.994), ('car', 0.0)]
    """
    idx = np.arange(head.n_labels) if labels is None else np.asarray(
        head.indices(labels), dtype=np.intp)
    out: dict[str, list[Neighbour]] = {}
    chunk = 4096
    for s in range(0, idx.size, chunk):
        qi = idx[s:s + chunk]
        bi, bv = nearest(head, qi, k=k, view=view, weights=weights)
        for a, i in enumerate(qi.tolist()):
            out[head.labels[i]] = [Neighbour(head.labels[j], int(j), float(c))
                                   for j, c in zip(bi[a].tolist(), bv[a].tolist()) if j >= 0]
    return out
