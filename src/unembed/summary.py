"""A summary of one head: shape, norms, how much of the rows is a shared mean vector, which
symmetries hold, and the most and least similar pairs under each view.

Memory: the whole-head figures come from the head's cached statistics (:class:`RowStats`,
computed in row blocks); pairs are searched among at most ``max_labels`` labels, so nothing of
size (V, d) or (V, V) is formed beyond the head itself."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed.gauges import symmetries
from unembed.head import Head
from unembed.views import VIEWS, causal_rank, identification, invariance, similarity_matrix

__all__ = ["extreme_pairs", "summarize"]


def extreme_pairs(
    S: NDArray[np.float64], labels: list[str], k: int = 5
) -> dict[str, list[dict[str, Any]]]:
    """The k most and k least similar off-diagonal pairs of a similarity matrix (k, k)."""
    n = S.shape[0]
    iu, ju = np.triu_indices(n, 1)
    vals = S[iu, ju]
    ok = np.isfinite(vals)
    iu, ju, vals = iu[ok], ju[ok], vals[ok]
    order = np.argsort(vals, kind="stable")

    def rows(sel: NDArray[np.intp]) -> list[dict[str, Any]]:
        return [{"pair": [labels[iu[t]], labels[ju[t]]], "cosine": float(vals[t])} for t in sel]

    return {"most": rows(order[::-1][:k]), "least": rows(order[:k])}


def summarize(
    head: Head, *, max_labels: int = 500, max_labels_differences: int = 150, top: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Figures of a head (JSON-ready). Pairs are searched over all labels when V <=
    ``max_labels``, else over a seeded random sample of that size (said in the result);
    the ``differences`` view over at most ``max_labels_differences`` labels."""
    norms = head.stats.norms()  # whole-head statistics: computed once, in blocks, cached
    m = head.stats.mean()
    mean_share = float(m @ m / np.mean(norms**2))
    rng = np.random.default_rng(seed)
    V = head.n_labels
    idx = np.arange(V) if V <= max_labels else np.sort(rng.choice(V, max_labels, replace=False))
    idx_d = idx if idx.size <= max_labels_differences else np.sort(
        rng.choice(idx, max_labels_differences, replace=False))
    pairs: dict[str, Any] = {}
    for view in VIEWS:
        sel = idx_d if view == "differences" else idx
        S = similarity_matrix(head, sel.tolist(), view)
        pairs[view] = {"labels_searched": int(sel.size),
                       **extreme_pairs(S, [head.labels[i] for i in sel], top)}
    return {
        "head": repr(head),
        "source": head.meta.get("source"),
        "rows": head.rows,
        "n_labels": V,
        "d": head.d,
        "link": head.link,
        "dtype": head.dtype,
        "bias": head.b is not None,
        "softcap": head.softcap,
        "row_norms": {"min": float(norms.min()), "median": float(np.median(norms)),
                      "max": float(norms.max())},
        "mean_vector_norm": float(np.linalg.norm(m)),
        "mean_vector_share": mean_share,
        "causal_rank": causal_rank(head),
        "symmetries": {k: v.to_dict() for k, v in symmetries(head).items()},
        "degenerate": head.degenerate,
        "rows_identified": identification(head),
        "invariance": {view: invariance(head, view).to_dict() for view in VIEWS},
        "pairs_sampled": bool(idx.size < V),
        "pairs": pairs,
    }
