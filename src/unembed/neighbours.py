"""The k nearest labels of a label over the whole vocabulary, under each row view, or by
co-probability over data.

Row views (:mod:`unembed.views`: ``raw``, ``centered``, ``normalized``, ``causal``; rows
identified off the head's known null space for every view but ``raw``; and ``logit`` with
``data``, the correlation over the data of two labels' centered logits): for query labels q and
every label j != q, the cosine cos(r_q, r_j) of the view's rows, in blocked matrix products, so
memory is O(queries x block + queries x k), never V x V.

The top k is exact in float64: float32 products of the unit rows with a proven bound delta on
their rounding (:func:`unembed.top_cosines.rounding_bound`), then float64 re-scores of the
candidates that bound cannot rule out, merged by (-cosine, label index). For query labels, per
block of labels: a label can be among the k best only if c32 >= L - delta, where L is a lower
bound on the k-th best float64 cosine so far (the k-th best re-scored value, or, in the first
block, the smallest of the float32 maxima of k disjoint column strips minus delta). For every
label at once (``labels=None``), :func:`unembed.top_cosines.top_cosines`: half the float32
V x V product (the cosine is symmetric), candidates kept against each row's k-th float32 value
minus 2 delta, re-scored once at the end.

So the answer is the float64 top k with ties broken by label index, at the price of a float32
product. A label whose row is zero in the view (or, for ``logit``, whose centered logit does
not vary on the data) has no cosine and is never a neighbour.

``coprob`` (needs hidden states): the co-probability of labels i and j over the data
x_1..x_n, the cosine of their probability columns,

    coprob(i, j) = sum_t p_i(x_t) p_j(x_t) / sqrt(sum_t p_i(x_t)^2 sum_t p_j(x_t)^2)  in [0, 1]

(p = softmax of the head's logits, or each label's sigmoid for a sigmoid head): 1 when the two
labels' probabilities are proportional across the data, 0 when they are never likely on the
same input. Computed from the (n, V) probabilities in row blocks: for q query labels one pass
accumulating sum_t p_t p_t[Q]^T (V x q) and sum_t p_t^2 (V); for every label (``labels=None``)
one such pass per block of labels, so memory stays O(block V + V k), never V x V. A label
whose probability is 0 on every input in float64 has no co-probability and is never a
neighbour.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from unembed._blocks import row_blocks
from unembed._checks import UnembedError
from unembed.few_neighbours import FEW, excluded, merge, nearest_few, unit_rows
from unembed.head import Head, LabelRef
from unembed.moments import HiddenMoments, LogitMoments, LogitRows
from unembed.top_cosines import dot_rows, rounding_bound, strip_lower, top_cosines

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["NEIGHBOUR_VIEWS", "Neighbour", "NeighbourArrays", "Neighbours", "coprob_nearest",
           "nearest", "nearest_all", "neighbour_arrays", "neighbours", "neighbours_or_undefined"]

#: The views neighbours are computed under (the row views, and ``coprob`` with data).
NEIGHBOUR_VIEWS: tuple[str, ...] = ("raw", "centered", "normalized", "causal", "logit",
                                    "coprob")
_ROW = ("raw", "centered", "normalized", "causal", "logit")

#: Hidden states: an (n, d) array (memory-mapped is fine) or a callable giving, each time it is
#: called, the same batches (n_b, d) of them again.
HiddenStates = NDArray[np.floating] | Callable[[], Iterable[NDArray[np.floating]]]
#: What the data-driven views take: hidden-state moments (``logit``), prepared logit rows, or
#: the hidden states themselves (either view).
NeighbourData = HiddenMoments | LogitMoments | LogitRows | HiddenStates


@dataclass(frozen=True)
class Neighbour:
    """One neighbour: its label, row index and cosine (float64; for ``coprob`` the
    co-probability, the cosine of the two labels' probability columns)."""

    label: str
    index: int
    cosine: float

    def to_dict(self) -> dict[str, object]:
        return {"label": self.label, "cosine": self.cosine}


class Neighbours(dict[str, list[Neighbour]]):
    """What :func:`neighbours` answers: a dict, query label -> its neighbours, best first,
    that also knows the ``view`` and ``k`` they were ranked under; ``to_frame()`` gives one
    row per (label, neighbour).

    >>> import numpy as np
    >>> from unembed import Head
    >>> nb = neighbours(Head(np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]),
    ...                      labels=["cat", "kitten", "car"]), ["cat"], k=1, view="raw")
    >>> nb
    Neighbours(raw view, k=1, 1 label: 'cat' -> 'kitten' +0.9939)
    """

    def __init__(self, items: dict[str, list[Neighbour]], *, view: str, k: int) -> None:
        super().__init__(items)
        self.view = view
        self.k = k

    def __repr__(self) -> str:
        """One line: the view, k, and the first few labels with their nearest neighbour."""
        shown = []
        for lab, nbs in list(self.items())[:3]:
            best = f"{nbs[0].label!r} {nbs[0].cosine:+.4f}" if nbs else "(none)"
            shown.append(f"{lab!r} -> {best}")
        more = ", …" if len(self) > 3 else ""
        noun = "label" if len(self) == 1 else "labels"
        return (f"Neighbours({self.view} view, k={self.k}, {len(self)} {noun}: "
                f"{', '.join(shown)}{more})")

    def _repr_html_(self) -> str:
        from unembed._display import html

        return html("neighbours", self)

    def to_frame(self) -> pd.DataFrame:
        """One row per (label, neighbour): ``label``, ``rank`` (1 = nearest), ``neighbour``,
        ``index`` (its row) and ``cosine`` (for ``coprob`` the co-probability) in float64
        (pandas imported only here: ``pip install 'unembed[frame]'``)."""
        from unembed.pair_table import pandas_module

        pd = pandas_module()
        rows = [(lab, r, n.label, n.index, n.cosine)
                for lab, nbs in self.items() for r, n in enumerate(nbs, start=1)]
        return pd.DataFrame(rows, columns=["label", "rank", "neighbour", "index", "cosine"]
                            ).astype({"rank": "int64", "index": "int64", "cosine": "float64"})


def _delta(d: int) -> float:
    """Bound on |float32 cosine - float64 cosine| of unit rows of width d (module docstring)."""
    return rounding_bound(d)


def nearest(head: Head, queries: NDArray[np.intp], *, k: int = 10, view: str = "centered",
            weights: ArrayLike | None = None, block: int | None = None,
            data: LogitRows | None = None,
            ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Indices (q, k) and cosines (q, k) of the k nearest labels of each query label (itself
    excluded) under a row view, best first, ties by label index; -1 / NaN where fewer than k
    labels have a cosine. ``data``: the ``logit`` view's rows (:func:`unembed.views.logit_data`).
    """
    _check_view(view, k)
    if view == "logit":
        from unembed.views import logit_data

        data = logit_data(head, data, "neighbours")
    V = head.n_labels
    k = int(min(k, V - 1))
    Q = unit_rows(head, queries, view, weights, data)
    q = Q.shape[0]
    qbad = np.flatnonzero(np.isnan(Q[:, 0]))  # a row without direction is NaN throughout
    if q <= FEW:
        return nearest_few(head, queries, Q, qbad, k, view, weights, data)
    best_i = np.full((q, k), -1, dtype=np.intp)
    best_v = np.full((q, k), -np.inf)
    Q32 = Q.astype(np.float32)
    Q32[qbad] = 0.0
    width = Q.shape[1]
    delta = _delta(width)
    step = block or max(k + 1, min(8192, (1 << 23) // max(q, 1)))
    for s, e in row_blocks(V, 1, 8 * step):
        B = unit_rows(head, np.arange(s, e), view, weights, data)
        bad = np.flatnonzero(np.isnan(B[:, 0]))
        B32 = B.astype(np.float32)
        B32[bad] = 0.0
        S = excluded(Q32 @ B32.T, bad, qbad, queries, s, e)  # (q, b) float32
        low = best_v[:, -1].copy()  # the k-th best float64 cosine so far (-inf: not k yet)
        if not np.isfinite(low).all():
            low = np.maximum(low, strip_lower(S, min(k, e - s)) - delta)
        flat = np.flatnonzero(S >= np.maximum(low - delta, -2.0)[:, None])  # never a -inf
        if not flat.size:
            continue
        r, c = np.divmod(flat, S.shape[1])
        v = np.empty(r.size)
        for a in range(0, r.size, 1 << 13):  # float64 re-score of the candidates only
            ra, ca = r[a:a + (1 << 13)], c[a:a + (1 << 13)]
            v[a:a + ra.size] = dot_rows(Q[ra], B[ca])
        best_i, best_v = merge(best_i, best_v, r, c + s, v, k)
    best_i = np.where(np.isfinite(best_v), best_i, -1)
    best_v = np.where(np.isfinite(best_v), np.clip(best_v, -1.0, 1.0), np.nan)
    return best_i, best_v


def _check_view(view: str, k: object) -> None:
    if view not in _ROW:
        raise UnembedError(f"must be one of {', '.join(_ROW)} (a row "
                           f"view)", argument="view", function="neighbours", got=view)
    if not (isinstance(k, (int, np.integer)) and 1 <= k):
        raise UnembedError("must be a positive integer", argument="k", function="neighbours", got=k)


def nearest_all(head: Head, *, k: int = 10, view: str = "centered",
                weights: ArrayLike | None = None, block: int | None = None,
                data: LogitRows | None = None,
                ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """:func:`nearest` for every label at once: indices (V, k) and cosines (V, k), by
    :func:`unembed.top_cosines.top_cosines` on the view's unit rows (half the float32 product;
    memory: the unit rows in float64 and float32, one tile, about V k candidates)."""
    _check_view(view, k)
    if view == "logit":
        from unembed.views import logit_data

        data = logit_data(head, data, "neighbours")
    V = head.n_labels
    k = int(min(k, max(V - 1, 1)))
    U = np.empty((V, unit_rows(head, np.arange(1), view, weights, data).shape[1]))
    for s, e in row_blocks(V, U.shape[1]):
        U[s:e] = unit_rows(head, np.arange(s, e), view, weights, data)
    return top_cosines(U, k, block=block)


def _states(data: NeighbourData, d: int) -> Callable[[], Iterator[NDArray[np.float64]]]:
    """Re-iterable batches of hidden states (n_b, d) float64, in row blocks."""
    if isinstance(data, (HiddenMoments, LogitMoments, LogitRows)):
        raise UnembedError("must be the hidden states themselves for the "
                           "coprob view (an (n, d) array or batches of them), not their moments",
                           argument="data", function="neighbours")
    if callable(data):
        src: Callable[[], Iterable[NDArray[np.floating]]] = data
    else:
        arr = data
        if arr.ndim != 2 or arr.shape[1] != d:
            raise UnembedError(f"must have shape (n, {d})", argument="data", function="neighbours",
                               got=arr.shape)
        def src() -> Iterable[NDArray[np.floating]]:
            return (arr[s:s + 4096] for s in range(0, arr.shape[0], 4096))

    def gen() -> Iterator[NDArray[np.float64]]:
        for h in src():
            yield np.asarray(h, dtype=np.float64)

    return gen


def _prob_blocks(head: Head, states: Callable[[], Iterator[NDArray[np.float64]]]
                 ) -> Iterator[NDArray[np.float64]]:
    """The probabilities (m, V) of the data, m rows at a time (m V about 2^22 floats)."""
    m = max(1, (1 << 22) // head.n_labels)
    for H in states():
        for s in range(0, H.shape[0], m):
            yield head.probs(H[s:s + m])


def coprob_nearest(head: Head, queries: NDArray[np.intp], data: NeighbourData, *,
                   k: int = 10) -> tuple[NDArray[np.intp], NDArray[np.float64], int]:
    """The k labels most likely together with each query label over the data (module
    docstring): indices (q, k), co-probabilities (q, k) and the number of hidden states; -1 /
    NaN where fewer than k labels have one. One pass over the data per call (memory
    O(block V + V q): call it with query blocks)."""
    V = head.n_labels
    if not (isinstance(k, (int, np.integer)) and 1 <= k):
        raise UnembedError("must be a positive integer", argument="k", function="neighbours", got=k)
    k = int(min(k, V - 1))
    states = _states(data, head.d)
    q = queries.size
    acc = np.zeros((V, q))
    sq = np.zeros(V)
    n = 0
    for P in _prob_blocks(head, states):
        acc += P.T @ P[:, queries]
        sq += np.einsum("ij,ij->j", P, P)
        n += P.shape[0]
    if n == 0:
        raise UnembedError("must hold at least one hidden state", argument="data",
                           function="neighbours", got=0)
    nr = np.sqrt(sq)
    with np.errstate(divide="ignore", invalid="ignore"):
        C = (acc / nr[:, None] / nr[queries][None, :]).T  # (q, V)
    C[:, ~(nr > 0)] = -np.inf
    C[~(nr[queries] > 0), :] = -np.inf
    C[np.arange(q), queries] = -np.inf
    C[np.isnan(C)] = -np.inf
    order = np.argsort(-C, axis=1, kind="stable")[:, :k]  # ties by label index
    val = np.take_along_axis(C, order, axis=1)
    ok = np.isfinite(val)
    return (np.where(ok, order, -1), np.where(ok, np.clip(val, 0.0, 1.0), np.nan), n)


def neighbours(head: Head, labels: Sequence[LabelRef] | None = None, *, k: int = 10,
               view: str = "centered", weights: ArrayLike | None = None,
               data: NeighbourData | None = None,
               ) -> Neighbours:
    """The k nearest labels of each of ``labels`` (default: every label) over the whole
    vocabulary under one view; see the module docstring. The default view is ``centered``, as
    for :func:`unembed.views.cosine`: the rows less their mean, invariant under every
    translation of the rows (which changes no probability); ``raw`` is not. ``data``: for
    ``logit`` hidden-state moments (:class:`~unembed.moments.HiddenMoments`) or the hidden
    states (n, d); for
    ``coprob`` the hidden states (an array or a callable giving their batches anew).

    A view that ranks nothing for a label (:mod:`unembed.undefined_views`: the causal view of
    a head whose centered rows have rank V - 1, or cosines with every other label constant up
    to rounding) is an error naming why; :func:`neighbours_or_undefined` gives those reasons
    beside the other labels' neighbours instead.

    >>> import numpy as np
    >>> from unembed import Head
    >>> head = Head(np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.2]]),
    ...             labels=["cat", "kitten", "car", "dog"])
    >>> [(n.label, round(n.cosine, 3)) for n in neighbours(head, ["cat"], k=2, view="raw")["cat"]]
    [('kitten', 0.994), ('car', 0.0)]
    """
    from unembed._checks import UnembedError

    out, undefined = neighbours_or_undefined(head, labels, k=k, view=view, weights=weights,
                                             data=data)
    for lab, why in undefined.items():
        raise UnembedError(f"The {view} neighbours of {lab!r} rank nothing: {why}.")
    return Neighbours(out, view=view, k=k)


def neighbours_or_undefined(
    head: Head, labels: Sequence[LabelRef] | None = None, *, k: int = 10,
    view: str = "centered", weights: ArrayLike | None = None, data: NeighbourData | None = None,
) -> tuple[dict[str, list[Neighbour]], dict[str, str]]:
    """:func:`neighbours`, with the labels whose view ranks nothing (module
    :mod:`unembed.undefined_views`) in a second dict, label -> "undefined: why", and no
    neighbours (an empty list) in the first."""
    res = neighbour_arrays(head, labels, k=k, view=view, weights=weights, data=data)
    labs = head.labels
    out: dict[str, list[Neighbour]] = {}
    for i, row_i, row_v in zip(res.queries.tolist(), res.index.tolist(), res.cosine.tolist()):
        out[labs[i]] = ([] if labs[i] in res.undefined else
                        [Neighbour(labs[j], j, c) for j, c in zip(row_i, row_v) if j >= 0])
    return out, res.undefined


@dataclass(frozen=True)
class NeighbourArrays:
    """Neighbours as arrays: the query rows (q,), their neighbours' rows (q, k) and cosines
    (q, k) (-1 / NaN where fewer than k labels have a cosine), and the query labels whose view
    ranks nothing, label -> why (their rows of ``index`` / ``cosine`` are not rankings)."""

    queries: NDArray[np.intp]
    index: NDArray[np.intp]
    cosine: NDArray[np.float64]
    undefined: dict[str, str]


def neighbour_arrays(head: Head, labels: Sequence[LabelRef] | None = None, *, k: int = 10,
                     view: str = "centered", weights: ArrayLike | None = None,
                     data: NeighbourData | None = None) -> NeighbourArrays:
    """:func:`neighbours_or_undefined` as arrays (:class:`NeighbourArrays`): every label at
    once (``labels=None``, a row view) by :func:`nearest_all`, otherwise by query blocks."""
    from unembed.undefined_views import structural_reason

    why = structural_reason(head, view) if view != "coprob" else None
    if why is not None:
        idx0 = np.arange(head.n_labels) if labels is None else np.asarray(
            head.indices(labels), dtype=np.intp)
        kk = max(1, min(k, head.n_labels - 1))
        return NeighbourArrays(idx0, np.full((idx0.size, kk), -1, dtype=np.intp),
                               np.full((idx0.size, kk), np.nan),
                               {head.labels[i]: why for i in idx0.tolist()})
    if view not in NEIGHBOUR_VIEWS:
        from unembed.views import one_of

        raise UnembedError(one_of(NEIGHBOUR_VIEWS, view), argument="view",
                           function="neighbours", got=view)
    idx = np.arange(head.n_labels) if labels is None else np.asarray(
        head.indices(labels), dtype=np.intp)
    lr: LogitRows | None = None
    if view == "logit":
        from unembed.views import logit_data

        if data is not None and not isinstance(data, (HiddenMoments, LogitMoments, LogitRows)):
            from unembed.moments import stream_moments

            data = stream_moments(_states(data, head.d)(), d=head.d, source="hidden states",
                                  rows=head.W)
        lr = logit_data(head, data, "neighbours")
    elif view == "coprob" and data is None:
        raise UnembedError("must be given for the coprob view (hidden "
                           "states: co-probability is measured over data)", argument="data",
                           function="neighbours")
    if labels is None and view != "coprob":
        bi, bv = nearest_all(head, k=k, view=view, weights=weights, data=lr)
        return NeighbourArrays(idx, bi, bv, _constant_rows(head, idx, bv, view, weights, lr))
    parts_i, parts_v = [], []
    undefined: dict[str, str] = {}
    chunk = 4096 if view != "coprob" else max(k + 1, min(4096, (1 << 22) // head.n_labels))
    for s in range(0, idx.size, chunk):
        qi = idx[s:s + chunk]
        if view == "coprob":
            assert data is not None
            bi, bv, _ = coprob_nearest(head, qi, data, k=k)
        else:
            bi, bv = nearest(head, qi, k=k, view=view, weights=weights, data=lr)
            undefined.update(_constant_rows(head, qi, bv, view, weights, lr))
        parts_i.append(bi)
        parts_v.append(bv)
    kk = parts_i[0].shape[1] if parts_i else 0
    return NeighbourArrays(
        idx, np.concatenate(parts_i) if parts_i else np.empty((0, kk), dtype=np.intp),
        np.concatenate(parts_v) if parts_v else np.empty((0, kk)), undefined)


def _constant_rows(head: Head, qi: NDArray[np.intp], bv: NDArray[np.float64], view: str,
                   weights: ArrayLike | None, data: LogitRows | None) -> dict[str, str]:
    """Labels of ``qi`` whose cosines with every other label are constant up to rounding.
    Only queries whose k best are already within rounding of each other are checked, each
    by one float64 pass over every label (O(V d)): a view that varies shows it in its top k
    or its full row."""
    from unembed._stats import constant_reason
    from unembed.undefined_views import neighbour_reason, view_terms

    out: dict[str, str] = {}
    n_states = 0 if data is None else data.n
    for a, q in enumerate(qi.tolist()):
        top = bv[a][np.isfinite(bv[a])]
        if top.size == 0 or constant_reason(top, what="", terms=view_terms(
                view, head, n_states), scale=1.0) is None:
            continue
        Q = unit_rows(head, np.array([q], dtype=np.intp), view, weights, data)[0]
        row = np.full(head.n_labels, np.nan)
        for s, e in row_blocks(head.n_labels, head.d):
            row[s:e] = unit_rows(head, np.arange(s, e), view, weights, data) @ Q
        row = np.delete(row, q)
        why = neighbour_reason(head, head.labels[q], view, row, n_states)
        if why is not None:
            out[head.labels[q]] = why
    return out
