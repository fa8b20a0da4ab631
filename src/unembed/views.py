"""Views of similarity between label representations, all in float64.

One name per view, used alike in the API, the CLI (``--view``) and JSON:

``raw``
    cos(u_i, u_j) of the rows as stored. Not invariant under translation: for a softmax head it
    can be set to any value in [-1, 1] without changing a probability
    (:func:`unembed.construct.translation_for_cosine`).
``centered``
    cos(u_i - m, u_j - m) with m = sum_k w_k u_k, weights summing to 1 (uniform by default).
    Translation-invariant, but the weighting is a choice: different weights give different
    values for the same model.
``normalized``
    Centered rows scaled to unit length, then centered again at the mean of the unit rows:
    r_i = (u_i - m) / |u_i - m|, cos(r_i - mean(r), r_j - mean(r)). (Scaling alone leaves a
    cosine unchanged, so without the second centering this view would equal ``centered``.)
    Translation-invariant.
``causal``
    The causal inner product of Park, Choe & Veitch (2023): centered rows (uniform mean)
    whitened by the inverse covariance of the rows, Cov = C^T C / V with C the centered (V, d)
    matrix; cos(Cov^{-1/2} c_i, Cov^{-1/2} c_j). Cov is inverted on its range only: eigenvalues
    below ``1e-10 * max eigenvalue`` are dropped (pseudo-inverse). When V <= d, or whenever the
    rank of C is V - 1, the whitened rows are exactly equiangular: every pair has cosine
    -1/(V - 1), so this view then carries no information about any pair; ``causal_rank``
    reports the rank used. It is computed over the whole head (all V rows), not the label subset.
``differences``
    What decides softmax rankings (v2 of the paper) is the arrangement of the differences
    u_i - u_k. For a pair (i, j) this view gives min over the other labels k of the reference
    set of cos(u_i - u_k, u_j - u_k): it is -1 when some k lies between i and j on a line, in
    which case i and j can never both beat k, so they can never be the top two together.
    Translation-invariant. The reference set of third labels: every other label of the head for
    :func:`cosine` (``reference="all"``); the label set of the matrix for
    :func:`similarity_matrix` by default (``reference="set"``: an upper bound on the head-wide
    value, equal to it for the whole head, at 1/V of its cost; pass ``reference="all"`` for the
    head-wide value).

Which symmetries each view is invariant under, with proofs: docs/views.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from unembed._checks import arg_error, fail
from unembed.gauges import weighted_mean
from unembed.head import Head, LabelRef

__all__ = [
    "VIEWS",
    "causal_rank",
    "cosine",
    "difference_cosine",
    "similarity_matrix",
    "view_rows",
]

View = Literal["raw", "centered", "normalized", "causal", "differences"]
VIEWS: tuple[str, ...] = ("raw", "centered", "normalized", "causal", "differences")
ROW_VIEWS: tuple[str, ...] = ("raw", "centered", "normalized", "causal")
TRANSLATION_INVARIANT: frozenset[str] = frozenset(
    {"centered", "normalized", "causal", "differences"}
)
_EIG_RTOL = 1e-10


def check_view(view: str, func: str = "similarity_matrix") -> str:
    if view not in VIEWS:
        raise arg_error(func, "view", f"must be one of {', '.join(VIEWS)}", got=view)
    return view


def _unit(x: NDArray[np.float64], what: str, labels: Sequence[str]) -> NDArray[np.float64]:
    n = np.linalg.norm(x, axis=1)
    tiny = n <= 1e-300
    if tiny.any():
        i = int(np.flatnonzero(tiny)[0])
        raise fail(f"Label {labels[i]!r} has a zero vector in the {what} view; its cosine is "
                   f"undefined.")
    return x / n[:, None]


def _causal_rows(head: Head) -> tuple[NDArray[np.float64], int]:
    cached = head.__dict__.get("_causal_rows")
    if cached is not None:
        return cached
    W = head.W
    C = W - W.mean(axis=0)
    if W.shape[0] <= W.shape[1]:
        # Few rows: the SVD of C is cheap and rank-revealing.
        _, s, vt = np.linalg.svd(C, full_matrices=False)
        ev, vecs = s**2 / W.shape[0], vt.T
    else:
        # Many rows (a vocabulary): eigen-decompose the (d, d) covariance C^T C / V.
        ev, vecs = np.linalg.eigh(C.T @ C / W.shape[0])
    keep = ev > _EIG_RTOL * (ev.max() if ev.size else 0.0)
    r = int(keep.sum())
    G = (C @ vecs[:, keep]) / np.sqrt(ev[keep])
    object.__setattr__(head, "_causal_rows", (G, r))
    return G, r


def causal_rank(head: Head) -> int:
    """Rank of the row covariance used by the ``causal`` view (at most min(V - 1, d))."""
    return _causal_rows(head)[1]


def view_rows(head: Head, view: str, *, weights: ArrayLike | None = None) -> NDArray[np.float64]:
    """The rows (V, d') a row-wise view compares by cosine, in float64.

    ``weights`` (V,), summing to 1, set the centering of the ``centered`` view.
    ``differences`` has no per-label rows; use :func:`similarity_matrix`.
    """
    check_view(view, "view_rows")
    W = head.W
    if view == "raw":
        return W
    if view == "centered":
        return W - weighted_mean(W, weights)
    if view == "normalized":
        R = _unit(W - weighted_mean(W, weights), "centered", head.labels)
        return R - R.mean(axis=0)
    if view == "causal":
        return _causal_rows(head)[0]
    raise arg_error("view_rows", "view", "must be a row-wise view (raw, centered, normalized, "
                    "causal): 'differences' compares differences of rows, not rows; use "
                    "similarity_matrix or difference_cosine", got=view)


def _differences_matrix(head: Head, idx: list[int], ref: list[int]) -> NDArray[np.float64]:
    """min over reference labels k (other than i, j) of cos(u_i - u_k, u_j - u_k), for every
    pair of ``idx``: one (k, k) Gram matrix per reference label."""
    W = head.W
    sub = W[idx]
    k = len(idx)
    out = np.full((k, k), np.inf)
    pos = {r: a for a, r in enumerate(idx)}
    for r in ref:
        D = sub - W[r]
        n = np.linalg.norm(D, axis=1)
        ok = n > 0
        D = D / np.where(ok, n, 1.0)[:, None]
        G = D @ D.T
        G[~ok, :] = np.inf
        G[:, ~ok] = np.inf
        if r in pos:  # the reference label itself is one of the pair: not a third label
            G[pos[r], :] = np.inf
            G[:, pos[r]] = np.inf
        np.minimum(out, G, out=out)
    out[~np.isfinite(out)] = np.nan
    out = np.clip(out, -1.0, 1.0)
    np.fill_diagonal(out, 1.0)
    return out


def similarity_matrix(
    head: Head,
    labels: Sequence[LabelRef] | None = None,
    view: str = "raw",
    *,
    weights: ArrayLike | None = None,
    reference: Literal["set", "all"] = "set",
) -> NDArray[np.float64]:
    """Cosine matrix of shape (k, k) over a label set (default: all labels), float64.

    For ``differences`` the diagonal is 1 and an entry is NaN when the reference set has no
    third label. ``weights`` apply to ``centered``/``normalized`` (over all V labels).
    """
    check_view(view)
    idx = list(range(head.n_labels)) if labels is None else head.indices(labels)
    if view == "differences":
        ref = idx if reference == "set" else list(range(head.n_labels))
        return _differences_matrix(head, idx, ref)
    rows = view_rows(head, view, weights=weights)[idx]
    U = _unit(rows, view, [head.labels[i] for i in idx])
    S = np.clip(U @ U.T, -1.0, 1.0)
    np.fill_diagonal(S, 1.0)
    return S


def cosine(
    head: Head, a: LabelRef, b: LabelRef, view: str = "raw", *,
    weights: ArrayLike | None = None, reference: Literal["set", "all"] = "all",
) -> float:
    """Cosine of labels a and b under one view (float64). For ``differences`` the reference
    set is the whole head by default.

    >>> import numpy as np
    >>> from unembed import Head
    >>> head = Head(np.array([[2.0, 1.0], [1.0, 2.0], [0.0, 0.5]]), strict=False)
    >>> round(cosine(head, 0, 1, "raw"), 6)
    0.8
    >>> moved = head.translate([-1.5, -1.5])            # same probabilities
    >>> round(cosine(moved, 0, 1, "raw"), 6)
    -1.0
    >>> round(cosine(head, 0, 1, "centered"), 6), round(cosine(moved, 0, 1, "centered"), 6)
    (-0.164399, -0.164399)
    """
    check_view(view, "cosine")
    i, j = head.index(a), head.index(b)
    if view == "differences":
        others = np.setdiff1d(np.arange(head.n_labels), [i, j])
        da, db = head.W[i] - head.W[others], head.W[j] - head.W[others]
        na, nb = np.linalg.norm(da, axis=1), np.linalg.norm(db, axis=1)
        ok = (na > 0) & (nb > 0)
        if not ok.any():
            return float("nan")
        c = np.einsum("kd,kd->k", da[ok], db[ok]) / (na[ok] * nb[ok])
        return float(np.clip(c.min(), -1.0, 1.0))
    rows = view_rows(head, view, weights=weights)
    u, v = rows[i], rows[j]
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        lab = head.labels[i] if nu == 0 else head.labels[j]
        raise fail(f"Label {lab!r} has a zero vector in the {view} view; its cosine is "
                   f"undefined.")
    return float(np.clip(u @ v / (nu * nv), -1.0, 1.0))


def difference_cosine(
    head: Head, pair1: tuple[LabelRef, LabelRef], pair2: tuple[LabelRef, LabelRef]
) -> float:
    """cos(u_a - u_b, u_c - u_d) for pairs (a, b) and (c, d): translation-invariant."""
    a, b = head.indices(pair1)
    c, d = head.indices(pair2)
    x = head.W[a] - head.W[b]
    y = head.W[c] - head.W[d]
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    if nx == 0 or ny == 0:
        same = pair1 if nx == 0 else pair2
        raise fail(f"The pair {tuple(same)!r} has identical rows, so its difference has no "
                   f"direction and its cosine is undefined.")
    return float(np.clip(x @ y / (nx * ny), -1.0, 1.0))
