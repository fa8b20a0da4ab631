"""A summary of one head: shape, norms, how much of the rows is a shared mean vector, which
symmetries hold, and the most and least similar pairs under each view.

Memory: the whole-head figures come from the head's cached statistics (:class:`RowStats`,
computed in row blocks); pairs are searched among at most ``max_labels`` labels, so nothing of
size (V, d) or (V, V) is formed beyond the head itself."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed.gauges import Symmetry, symmetries
from unembed.head import Head
from unembed.moments import Moments
from unembed.undefined_views import constant_reason_of
from unembed.views import (
    VIEWS,
    ViewInvariance,
    causal_rank,
    identification,
    invariance,
    similarity_matrix,
)

__all__ = ["ExtremePairs", "HeadSummary", "PairSimilarity", "RowNorms", "extreme_pairs",
           "summarize"]


@dataclass(frozen=True)
class PairSimilarity:
    """One pair of labels and its similarity under a view."""

    labels: tuple[str, str]
    cosine: float

    def to_dict(self) -> dict[str, Any]:
        return {"pair": list(self.labels), "cosine": self.cosine}


@dataclass(frozen=True)
class ExtremePairs:
    """The most and least similar pairs under one view, among ``labels_searched`` of the
    head's labels (``sampled``: a seeded sample of them). ``undefined`` says why the view
    ranks nothing over them (:func:`unembed.undefined_views.constant_reason_of`: e.g. the
    equiangular causal view of a head whose centered rows have rank V - 1); then no pairs."""

    labels_searched: int
    most: tuple[PairSimilarity, ...]
    least: tuple[PairSimilarity, ...]
    sampled: bool = False
    undefined: str | None = None

    def to_dict(self) -> dict[str, Any]:
        listed = self.undefined is None
        return {"labels_searched": self.labels_searched, "sampled": self.sampled,
                "most": [p.to_dict() for p in self.most] if listed else None,
                "least": [p.to_dict() for p in self.least] if listed else None,
                "undefined": self.undefined}


@dataclass(frozen=True)
class RowNorms:
    """Smallest, median and largest Euclidean norm of the rows."""

    min: float
    median: float
    max: float


@dataclass(frozen=True)
class HeadSummary:
    """The figures of one head (:func:`summarize`); :meth:`to_dict` is its JSON form.

    ``mean_vector_share`` is |m|^2 / mean_i |u_i|^2 with m the mean row: the share of the rows'
    squared length that is one vector shared by all labels (which translation can set freely).
    ``pairs`` maps each view to its extreme pairs; ``pairs_sampled`` says whether they were
    searched among a seeded sample of the labels. ``rows`` says whether the rows are stored or
    folded; ``rows_identified`` how they were identified (projected off the known null space)
    before the views; ``invariance`` which symmetries of this head each view is invariant
    under.
    """

    head: str
    source: str | None
    rows: str
    n_labels: int
    d: int
    link: str
    dtype: str
    bias: bool
    softcap: float | None
    row_norms: RowNorms
    mean_vector_norm: float
    mean_vector_share: float
    causal_rank: int
    symmetries: dict[str, Symmetry]
    degenerate: dict[str, list[Any]]
    rows_identified: str
    invariance: dict[str, ViewInvariance]
    pairs_sampled: bool
    pairs: dict[str, ExtremePairs]
    data: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["row_norms"] = asdict(self.row_norms)
        d["symmetries"] = {k: v.to_dict() for k, v in self.symmetries.items()}
        d["pairs"] = {k: v.to_dict() for k, v in self.pairs.items()}
        d["invariance"] = {k: v.to_dict() for k, v in self.invariance.items()}
        return d


def extreme_pairs(S: NDArray[np.float64], labels: list[str], k: int = 5
                  ) -> tuple[tuple[PairSimilarity, ...], tuple[PairSimilarity, ...]]:
    """The k most and the k least similar off-diagonal pairs of a similarity matrix (n, n)
    (undefined entries, NaN, skipped)."""
    n = S.shape[0]
    iu, ju = np.triu_indices(n, 1)
    vals = S[iu, ju]
    ok = np.isfinite(vals)
    iu, ju, vals = iu[ok], ju[ok], vals[ok]
    order = np.argsort(vals, kind="stable")

    def rows(sel: NDArray[np.intp]) -> tuple[PairSimilarity, ...]:
        return tuple(PairSimilarity((labels[iu[t]], labels[ju[t]]), float(vals[t]))
                     for t in sel)

    return rows(order[::-1][:k]), rows(order[:k])


def summarize(
    head: Head, *, max_labels: int = 500, max_labels_differences: int = 150, top: int = 5,
    seed: int = 0, data: Moments | None = None,
) -> HeadSummary:
    """Figures of a head. Pairs are searched over all labels when V <= ``max_labels``, else
    over a seeded random sample of that size (said in the result); the ``differences`` view
    over at most ``max_labels_differences`` labels. With ``data`` (hidden-state moments) the
    ``logit`` view's pairs too, and ``data`` names them in the result.

    Examples
    --------
    >>> import numpy as np
    >>> from unembed import Head
    >>> s = summarize(Head(np.array([[2.0, 1.0], [2.0, -1.0], [2.0, 0.5]]), labels="abc"))
    >>> s.n_labels, s.d, round(s.mean_vector_share, 3)
    (3, 2, 0.848)
    >>> p = s.pairs["raw"].most[0]
    >>> p.labels, round(p.cosine, 4)
    (('a', 'c'), 0.9762)
    >>> s.to_dict()["pairs"]["raw"]["most"][0]["pair"]
    ['a', 'c']
    """
    norms = head.stats.norms()  # whole-head statistics: computed once, in blocks, cached
    m = head.stats.mean()
    mean_share = float(m @ m / np.mean(norms**2))
    rng = np.random.default_rng(seed)
    V = head.n_labels
    idx = np.arange(V) if V <= max_labels else np.sort(rng.choice(V, max_labels, replace=False))
    idx_d = idx if idx.size <= max_labels_differences else np.sort(
        rng.choice(idx, max_labels_differences, replace=False))
    pairs: dict[str, ExtremePairs] = {}
    views = [*VIEWS, *(["logit"] if data is not None else [])]
    for view in views:
        sel = idx_d if view == "differences" else idx
        S = similarity_matrix(head, sel.tolist(), view, data=data)
        why = constant_reason_of(head, view, S, 0 if data is None else data.n)
        most, least = ((), ()) if why is not None else extreme_pairs(
            S, [head.labels[i] for i in sel], top)
        pairs[view] = ExtremePairs(int(sel.size), most, least, bool(sel.size < V), why)
    return HeadSummary(
        head=repr(head),
        source=head.source,
        rows=head.rows,
        n_labels=V,
        d=head.d,
        link=head.link,
        dtype=head.dtype,
        bias=head.b is not None,
        softcap=head.softcap,
        row_norms=RowNorms(float(norms.min()), float(np.median(norms)), float(norms.max())),
        mean_vector_norm=float(np.linalg.norm(m)),
        mean_vector_share=mean_share,
        causal_rank=causal_rank(head),
        symmetries=symmetries(head),
        degenerate=head.degenerate,
        rows_identified=identification(head),
        invariance={view: invariance(head, view) for view in views},
        pairs_sampled=bool(idx.size < V),
        pairs=pairs,
        data=None if data is None else {"source": data.source, "n_hidden_states": data.n},
    )
