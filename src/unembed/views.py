"""Views of similarity between label representations, all in float64.

One name per view, used alike in the API, the CLI (``--view``) and JSON.

Rows are identified first: every view but ``raw`` works on the rows projected off the head's
known null space N (directions orthogonal to every reachable hidden state, e.g. 1/g after a
LayerNorm with gain g; ``Head.null_space``), u -> u - N N^T u, since a row may move freely
along N without changing any logit (TransformerLens projects its rows the same way). ``raw``
is the rows as stored.

Which symmetries of a head (:func:`unembed.gauges.symmetries`) a view is invariant under is
:data:`INVARIANT_UNDER`; :func:`invariance` says it for one head (a symmetry that does not hold
for the head is not claimed). On a soft-capped or sigmoid head translation is no symmetry: the
``centered``, ``normalized``, ``causal`` and ``differences`` views still remove a translation,
but no symmetry of that head stands behind them (the translation they remove changes
probabilities), and :func:`invariance` says so.

Every row view is also available on differences of rows, cos(u_a - u_b, u_c - u_d), with
:func:`difference_cosine` (``view=...``): the concept directions of Park, Choe & Veitch
(2023) are such differences under the causal inner product. Their code whitens uncentered
rows (Cov^{-1/2} u); for a difference of rows the mean cancels, so that agrees with the
centered definition used here only on differences, not on single rows.

``raw``
    cos(u_i, u_j) of the rows as stored. Not invariant under translation: for a softmax head it
    can be set to any value in [-1, 1] without changing a probability
    (:func:`unembed.construct.translation_for_cosine`). Invariant under bias shift only.
``centered``
    cos(u_i - m, u_j - m) with m = sum_k w_k u_k, weights summing to 1 (uniform by default).
    Invariant under translation, bias shift and null-space shifts; not under reparametrisation.
    The weighting is a choice: different weights give different values for the same model.
``normalized``
    Centered rows scaled to unit length, then centered again at the mean of the unit rows:
    r_i = (u_i - m) / |u_i - m|, cos(r_i - mean(r), r_j - mean(r)). (Scaling alone leaves a
    cosine unchanged, so without the second centering this view would equal ``centered``.)
    Invariant under translation, bias shift and null-space shifts; not under reparametrisation.
``causal``
    The causal inner product of Park, Choe & Veitch (2023): centered rows (uniform mean)
    whitened by the inverse covariance of the rows, Cov = C^T C / V with C the centered (V, d)
    matrix; cos(Cov^{-1/2} c_i, Cov^{-1/2} c_j). Cov is inverted on its range only: eigenvalues
    below ``1e-10 * max eigenvalue`` are dropped (pseudo-inverse). The whitened rows' Gram
    matrix is V times the projection onto the range of C in R^V, so they are equiangular
    (every pair at cosine -1/(V - 1), no information about any pair) exactly when C has rank
    V - 1, its largest possible rank. That needs V - 1 <= d and is typical of heads with
    V <= d, but V <= d does not imply it: rows confined to a lower-dimensional affine subspace
    give rank < V - 1 and cosines that differ between pairs. ``causal_rank`` reports the rank
    used. It is computed over the whole head (all V rows), not the label subset.
    Invariant under translation, bias shift, null-space shifts and reparametrisation (Cov
    transforms with A, so c_i^T Cov^+ c_j does not change; exactly so when Cov has full rank).
``differences``
    What decides softmax rankings (v2 of the paper) is the arrangement of the differences
    u_i - u_k. For a pair (i, j) this view gives min over the other labels k of the reference
    set of cos(u_i - u_k, u_j - u_k): it is -1 when some k lies between i and j on a line, in
    which case i and j can never both beat k, so they can never be the top two together.
    Invariant under translation, bias shift and null-space shifts; not under reparametrisation.
    The reference set of third labels: every other label of the head for :func:`cosine`
    (``reference="all"``); the label set of the matrix for :func:`similarity_matrix` by default
    (``reference="set"``: an upper bound on the head-wide value, equal to it for the whole head,
    at 1/V of its cost; pass ``reference="all"`` for the head-wide value).

``logit`` (needs data: ``data=`` a :class:`~unembed.moments.HiddenMoments` of hidden states,
or for a head with V < d the smaller :class:`~unembed.moments.LogitMoments` of its centered
logits, V x V: :func:`~unembed.moments.moments_for`)
    The inner product the model's behaviour defines: with S the covariance of the hidden states
    h over the data and l_i(h) = z_i(h) - mean_k z_k(h) the centered logits,
    cos_logit(i, j) = (u_i - m)^T S (u_j - m) / sqrt(...), m the mean row: the correlation
    across the data of the two labels' centered logits (:class:`~unembed.moments.LogitRows`;
    never an (n, V) matrix: from the streamed first two moments of h). Invariant under
    translation, bias shift, null-space shifts and reparametrisation (S -> A S A^T): every
    transformation that keeps the probabilities. A property of model *and* data: results of
    the command line name the data. A label whose centered logit does not vary on the data has
    no correlation (NaN in a matrix; an error for one pair). Without data: an error. The hidden
    states must be the head's inputs as loaded (z = W h + b for these rows).

Which symmetries each view is invariant under, with proofs: docs/views.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from unembed._blocks import block_gram, row_blocks
from unembed._checks import UnembedError
from unembed.difference_view import differences_matrix, gram_is_cheapest, pair_differences
from unembed.gauges import weighted_mean
from unembed.head import Head, LabelRef
from unembed.moments import HiddenMoments, LogitMoments, LogitRows, logit_rows
from unembed.row_stats import Whitening, _ZeroRow

__all__ = [
    "ALL_VIEWS",
    "DATA_VIEWS",
    "INVARIANT_UNDER",
    "VIEWS",
    "ViewData",
    "ViewInvariance",
    "causal_rank",
    "cosine",
    "difference_cosine",
    "identification",
    "invariance",
    "similarity_matrix",
    "view_rows",
]

View = Literal["raw", "centered", "normalized", "causal", "differences", "logit"]
#: The views computed from the head alone.
VIEWS: tuple[str, ...] = ("raw", "centered", "normalized", "causal", "differences")
#: The views that need data (hidden states) besides the head.
DATA_VIEWS: tuple[str, ...] = ("logit",)
ALL_VIEWS: tuple[str, ...] = (*VIEWS, *DATA_VIEWS)
ROW_VIEWS: tuple[str, ...] = ("raw", "centered", "normalized", "causal", "logit")
TRANSLATION_INVARIANT: frozenset[str] = frozenset(
    {"centered", "normalized", "causal", "differences", "logit"}
)
#: The data of the ``logit`` view: hidden-state moments, a head's centered-logit moments (the
#: smaller for V < d: :func:`unembed.moments.moments_for`), or the rows prepared from either.
ViewData = HiddenMoments | LogitMoments | LogitRows
_EIG_RTOL = 1e-10

#: The symmetries (names of :func:`unembed.gauges.symmetries`) each view is invariant under.
INVARIANT_UNDER: dict[str, frozenset[str]] = {
    "raw": frozenset({"bias_shift"}),
    "centered": frozenset({"translation", "bias_shift", "null_space"}),
    "normalized": frozenset({"translation", "bias_shift", "null_space"}),
    "causal": frozenset({"translation", "bias_shift", "null_space", "reparametrization"}),
    "differences": frozenset({"translation", "bias_shift", "null_space"}),
    "logit": frozenset({"translation", "bias_shift", "null_space", "reparametrization"}),
}


@dataclass(frozen=True)
class ViewInvariance:
    """Which symmetries of one head a view is invariant under.

    ``invariant_under`` lists the symmetries that hold for the head and leave the view's
    cosines unchanged; ``not_invariant_under`` those that hold and can move them (so the view
    can differ between two equivalent models); ``note`` says when no symmetry stands behind a
    centering the view does (translation is not a symmetry of the head).
    """

    view: str
    invariant_under: tuple[str, ...]
    not_invariant_under: tuple[str, ...]
    note: str | None

    def to_dict(self) -> dict[str, object]:
        return {"invariant_under": list(self.invariant_under),
                "not_invariant_under": list(self.not_invariant_under), "note": self.note}


def identification(head: Head) -> str:
    """One sentence on how the rows were identified before the views (for reports)."""
    if head.null_space is None:
        return ("no direction orthogonal to every hidden state is known: rows used as given "
                "(centered for every view but raw)")
    return (f"projected off the {head.null_space.shape[1]}-dimensional null space "
            f"({head.null_space_reason or 'given'}) before every view but raw")


def invariance(head: Head, view: str) -> ViewInvariance:
    """What :data:`INVARIANT_UNDER` means for this head: only symmetries that hold for it
    (``symmetries(head)[name].holds``) are listed, and a view that centers rows on a head
    without translation symmetry (soft-capped, sigmoid) says that no symmetry stands behind
    it.

    >>> import numpy as np
    >>> from unembed import Head
    >>> capped = Head(np.eye(3), softcap=30.0)
    >>> invariance(capped, "centered").note.split(":")[0]
    'no symmetry of this head stands behind this view'
    """
    from unembed.gauges import symmetries

    check_view(view, "invariance")
    syms = symmetries(head)
    held = [n for n, s in syms.items() if s.holds]
    inv = tuple(n for n in held if n in INVARIANT_UNDER[view])
    notinv = tuple(n for n in held if n not in INVARIANT_UNDER[view])
    note = None
    if view != "raw" and not syms["translation"].holds:
        note = ("no symmetry of this head stands behind this view: it removes a translation of "
                f"the rows, which is not a symmetry here ({syms['translation'].reason})")
    return ViewInvariance(view, inv, notinv, note)


def one_of(choices: Sequence[str], given: object) -> str:
    """The requirement "must be one of ..." for a choice, with the closest choices to what was
    given ("did you mean 'centered'?" for 'centred')."""
    import difflib

    near = difflib.get_close_matches(str(given), list(choices), n=2, cutoff=0.6)
    hint = f" (did you mean {' or '.join(repr(c) for c in near)}?)" if near else ""
    return f"must be one of {', '.join(choices)}{hint}"


def check_view(view: str, func: str = "similarity_matrix") -> str:
    if view not in ALL_VIEWS:
        raise UnembedError(one_of(ALL_VIEWS, view), argument="view", function=func, got=view)
    return view


def logit_data(head: Head, data: ViewData | None, func: str) -> LogitRows:
    """The ``logit`` view's rows for this head from ``data`` (an error naming the argument
    when there is none: the view is a property of model and data)."""
    if data is None:
        raise UnembedError("must be given for the logit view (it needs hidden "
                           "states: the correlation of centered logits over data)",
                           argument="data", function=func)
    if isinstance(data, LogitRows):
        if not data.fits(head.n_labels, head.d):
            raise UnembedError(f"must be prepared for this head ({head.n_labels} "
                               f"x {head.d})", argument="data", function=func)
        return data
    return logit_rows(head.W, data, mean=head.stats.mean())


def _zero(label: str, what: str) -> UnembedError:
    return UnembedError(f"Label {label!r} has a zero vector in the {what} view; its cosine is "
                        f"undefined.")


def _unit(x: NDArray[np.float64], what: str, labels: Sequence[str]) -> NDArray[np.float64]:
    n = np.linalg.norm(x, axis=1)
    tiny = n <= 1e-300
    if tiny.any():
        raise _zero(labels[int(np.flatnonzero(tiny)[0])], what)
    return x / n[:, None]


def _causal(head: Head) -> Whitening:
    return head.stats.whitening(_EIG_RTOL)


def causal_rank(head: Head) -> int:
    """Rank of the row covariance used by the ``causal`` view (at most min(V - 1, d))."""
    return _causal(head).rank


def structural_reason(head: Head, view: str) -> str | None:
    """Why ``view`` carries no information on this head whatever the labels (module
    docstring), or None."""
    V = head.n_labels
    if V == 2 and view == "differences":
        return ("undefined: the head has two labels, so no third label to compare their "
                "differences against")
    if V == 2 and view in ("centered", "normalized", "causal", "logit"):
        return (f"undefined: the head has two labels, whose centered rows (and centered "
                f"logits) are opposite, so the {view} cosine is -1 for every such head")
    if view == "causal" and causal_rank(head) == V - 1:
        return (f"undefined: the centered rows have rank V - 1 = {V - 1}, so the whitened "
                f"rows are equiangular: every causal cosine is -1/(V - 1) = "
                f"{-1 / (V - 1):+.6f}, whatever the head")
    return None


def _center_of(head: Head, weights: ArrayLike | None) -> NDArray[np.float64]:
    return head.stats.mean() if weights is None else weighted_mean(head.W, weights)


def _unit_mean(head: Head, m: NDArray[np.float64], weights: ArrayLike | None
               ) -> NDArray[np.float64]:
    """(1/V) sum_k (u_k - m) / |u_k - m| (uniform mean of the unit centered rows), in blocks."""
    try:
        if weights is None:
            return head.stats.unit_mean()
        V, d = head.n_labels, head.d
        n = np.empty(V)
        for s, e in row_blocks(V, d):
            C = head.stats.identify(head.row_block(s, e) - m)
            n[s:e] = np.sqrt(np.einsum("ij,ij->i", C, C))
        zero = np.flatnonzero(n <= 1e-300)
        if zero.size:
            raise _ZeroRow(int(zero[0]))
        total = np.zeros(d)
        for s, e in row_blocks(V, d):
            total += (1.0 / n[s:e]) @ head.row_block(s, e)
        return head.stats.identify(np.asarray((total - m * (1.0 / n).sum()) / n.size))
    except _ZeroRow as z:
        raise _zero(head.labels[z.index], "centered") from None


def _rows_of(head: Head, idx: NDArray[np.intp], view: str, weights: ArrayLike | None,
             data: ViewData | None = None) -> NDArray[np.float64]:
    """The rows of labels ``idx`` (k, d') under a row view, from the head's cached statistics:
    O(k d) beyond them, never a (V, d) temporary. ``logit`` rows of labels without variance on
    the data are NaN."""
    if view == "raw":
        return head.take_rows(idx)
    if view == "logit":
        return logit_data(head, data, "similarity_matrix").rows(head.W, idx)
    m = _center_of(head, weights)
    if view == "centered":
        return head.stats.identify(np.asarray(head.take_rows(idx) - m))
    if view == "normalized":
        C = head.stats.identify(head.take_rows(idx) - m)
        n = np.sqrt(np.einsum("ij,ij->i", C, C))
        if (n <= 1e-300).any():
            raise _zero(head.labels[int(idx[np.flatnonzero(n <= 1e-300)[0]])], "centered")
        return np.asarray(C / n[:, None] - _unit_mean(head, m, weights))
    if view == "causal":
        cz = _causal(head)
        if cz.rows is not None:
            return np.asarray(cz.rows[idx])
        assert cz.P is not None
        return np.asarray(head.stats.identify(head.take_rows(idx) - head.stats.mean()) @ cz.P)
    raise UnembedError("must be a row-wise view (raw, centered, normalized, "
                       "causal, logit): 'differences' compares differences of rows, not rows; use "
                       "similarity_matrix or difference_cosine", argument="view",
                       function="view_rows", got=view)


def view_rows(head: Head, view: str, *, weights: ArrayLike | None = None,
              data: ViewData | None = None) -> NDArray[np.float64]:
    """The rows (V, d') a row-wise view compares by cosine, in float64.

    ``weights`` (V,), summing to 1, set the centering of the ``centered`` view.
    ``differences`` has no per-label rows; use :func:`similarity_matrix`. This returns a new
    (V, d') array (except for ``raw``); the other functions of this module never form it.
    """
    check_view(view, "view_rows")
    if view == "raw":
        return head.W
    if view == "differences":
        raise UnembedError("the 'differences' view compares differences of rows, not rows; "
                           "use similarity_matrix or difference_cosine.", function="view_rows")
    V, d = head.n_labels, head.d
    if view == "logit":
        data = logit_data(head, data, "view_rows")
    blocks = [_rows_of(head, np.arange(s, e), view, weights, data)
              for s, e in row_blocks(V, d)]
    return np.concatenate(blocks, axis=0)


def _gram_cosines(head: Head, ix: NDArray[np.intp], view: str) -> NDArray[np.float64]:
    """``centered`` and ``normalized`` cosines of labels ``ix`` from the head's centered Gram
    matrix Gc = C C^T (identified rows): centered Gc_ij / sqrt(Gc_ii Gc_jj); normalized the
    same on J (D Gc D) J, D = diag(1 / |c_i|), J = I - 1 1^T / V (the unit rows, centered at
    their mean over all V labels)."""
    Gc = head.stats.centered_gram()
    n = np.sqrt(np.maximum(np.diag(Gc), 0.0))
    zero = np.flatnonzero(n <= 1e-300)
    if view == "normalized":
        if zero.size:
            raise _zero(head.labels[int(zero[0])], "centered")
        Gr = Gc / np.outer(n, n)
        mu = Gr.mean(axis=1)
        G = Gr[np.ix_(ix, ix)] - mu[ix][:, None] - mu[ix][None, :] + mu.mean()
    else:
        G = Gc[np.ix_(ix, ix)]
    g = np.sqrt(np.maximum(np.diag(G), 0.0))
    bad = np.flatnonzero(g <= 1e-300 * max(float(g.max(initial=0.0)), 1.0))
    if bad.size:
        raise _zero(head.labels[int(ix[bad[0]])], view)
    S = np.clip(G / np.outer(g, g), -1.0, 1.0)
    np.fill_diagonal(S, 1.0)
    return S


def similarity_matrix(
    head: Head,
    labels: Sequence[LabelRef] | None = None,
    view: str = "raw",
    *,
    weights: ArrayLike | None = None,
    reference: Literal["set", "all"] = "set",
    data: ViewData | None = None,
) -> NDArray[np.float64]:
    """Cosine matrix of shape (k, k) over a label set (default: all labels), float64.

    For ``differences`` the diagonal is 1 and an entry is NaN when the reference set has no
    third label. ``weights`` apply to ``centered``/``normalized`` (over all V labels).
    ``data`` (hidden-state moments) is what the ``logit`` view needs; there a label whose
    centered logit does not vary on the data has a NaN row and column.

    >>> import numpy as np
    >>> from unembed import Head
    >>> from unembed.moments import HiddenMoments
    >>> rng = np.random.default_rng(0)
    >>> head, H = Head(rng.normal(size=(4, 3))), rng.normal(size=(500, 3))
    >>> z = H @ head.W.T
    >>> l = z - z.mean(axis=1, keepdims=True)               # centered logits over the data
    >>> S = similarity_matrix(head, view="logit", data=HiddenMoments.from_states(H))
    >>> bool(np.allclose(S, np.corrcoef(l.T), atol=1e-12))
    True
    """
    check_view(view)
    idx = list(range(head.n_labels)) if labels is None else head.indices(labels)
    if view == "differences":
        ref = idx if reference == "set" else list(range(head.n_labels))
        return differences_matrix(head, idx, ref)
    if view == "logit":
        rows = logit_data(head, data, "similarity_matrix").rows(head.W, np.asarray(idx,
                                                                                 np.intp))
        n = np.sqrt(np.einsum("ij,ij->i", rows, rows))
        with np.errstate(invalid="ignore"):
            S = np.clip((rows / n[:, None]) @ (rows / n[:, None]).T, -1.0, 1.0)
        np.fill_diagonal(S, 1.0)
        return S
    if view in ("centered", "normalized") and weights is None and gram_is_cheapest(head, len(idx)):
        return _gram_cosines(head, np.asarray(idx, dtype=np.intp), view)
    if view == "raw" and gram_is_cheapest(head, len(idx)):  # one Gram matrix of the rows, no copies
        ix = np.asarray(idx, dtype=np.intp)
        G = block_gram(head.W)[np.ix_(ix, ix)]
        n = np.sqrt(np.diag(G))
        if (n <= 1e-300).any():
            raise _zero(head.labels[int(ix[np.flatnonzero(n <= 1e-300)[0]])], view)
        S = np.clip(G / np.outer(n, n), -1.0, 1.0)
        np.fill_diagonal(S, 1.0)
        return S
    rows = _rows_of(head, np.asarray(idx, dtype=np.intp), view, weights)
    U = _unit(rows, view, [head.labels[i] for i in idx])
    S = np.clip(U @ U.T, -1.0, 1.0)
    np.fill_diagonal(S, 1.0)
    return S


def cosine(
    head: Head, a: LabelRef, b: LabelRef, view: str = "centered", *,
    weights: ArrayLike | None = None, reference: Literal["set", "all"] = "all",
    data: ViewData | None = None,
) -> float:
    """Cosine of labels a and b under one view (float64). The default view is ``centered``,
    as for :func:`unembed.neighbours.neighbours`: the rows less their mean, invariant under
    every translation u_i -> u_i + c (which changes no probability of a softmax head);
    ``raw``, the rows as stored, is not, so a raw cosine says nothing about the classifier
    (pass ``view="raw"`` to see it anyway). For ``differences`` the reference
    set is the whole head by default; ``logit`` needs ``data`` (hidden-state moments). A view
    that carries no information on this head whatever the pair (the causal view of a head
    whose centered rows have rank V - 1, which makes every causal cosine -1/(V - 1); the
    centered views of a two-label head: :func:`structural_reason`) is
    an error saying why, not a number.

    >>> import numpy as np
    >>> from unembed import Head, translate
    >>> head = Head(np.array([[2.0, 1.0], [1.0, 2.0], [0.0, 0.5]]), strict=False)
    >>> round(cosine(head, 0, 1, "raw"), 6)
    0.8
    >>> moved = translate(head, [-1.5, -1.5])            # same probabilities
    >>> round(cosine(moved, 0, 1, "raw"), 6)
    -1.0
    >>> round(cosine(head, 0, 1, "centered"), 6), round(cosine(moved, 0, 1, "centered"), 6)
    (-0.164399, -0.164399)
    """
    check_view(view, "cosine")
    i, j = head.index(a), head.index(b)
    why = structural_reason(head, view)
    if why is not None:
        raise UnembedError(f"The {view} cosine of {head.labels[i]!r} and {head.labels[j]!r} "
                           f"carries no "
                           f"information on this head: {why}.")
    if view == "differences":
        return pair_differences(head, i, j)
    if view == "logit":
        data = logit_data(head, data, "cosine")
        for k in (i, j):
            if data.tiny[k]:
                raise UnembedError(f"Label {head.labels[k]!r}: its centered logit does not vary on "
                                   f"the data ({data.source or 'hidden states'}, n = {data.n}); "
                                   f"its "
                                   f"logit cosine is undefined.")
    u, v = _rows_of(head, np.array([i, j], dtype=np.intp), view, weights, data)
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        lab = head.labels[i] if nu == 0 else head.labels[j]
        raise UnembedError(f"Label {lab!r} has a zero vector in the {view} view; its cosine is "
                           f"undefined.")
    return float(np.clip(u @ v / (nu * nv), -1.0, 1.0))


def difference_cosine(
    head: Head, pair1: tuple[LabelRef, LabelRef], pair2: tuple[LabelRef, LabelRef],
    view: str = "raw", *, weights: ArrayLike | None = None, data: ViewData | None = None,
) -> float:
    """cos(r_a - r_b, r_c - r_d) for pairs (a, b) and (c, d), with r the rows of a row view
    (``raw``: u as stored; ``centered``: identified rows, where the centering cancels;
    ``normalized``; ``causal``: Park et al.'s concept directions, whitened differences;
    ``logit`` with ``data``: the correlation over the data of z_a - z_b and z_c - z_d).
    Every view of a difference is translation-invariant.

    >>> import numpy as np
    >>> from unembed import Head
    >>> head = Head(np.array([[2.0, 1.0], [1.0, 2.0], [0.0, 0.5], [1.0, 0.0]]))
    >>> round(difference_cosine(head, (0, 1), (2, 3)), 6)
    -0.948683
    """
    if view == "differences":
        raise UnembedError("must be a row-wise view (raw, centered, "
                           "normalized, causal, logit)", argument="view",
                           function="difference_cosine", got=view)
    check_view(view, "difference_cosine")
    a, b = head.indices(pair1)
    c, d = head.indices(pair2)
    if view == "logit":
        lr = logit_data(head, data, "difference_cosine")
        data = replace(lr, tiny=np.zeros_like(lr.tiny))
    R = _rows_of(head, np.array([a, b, c, d], dtype=np.intp), view, weights, data)
    x = R[0] - R[1]
    y = R[2] - R[3]
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    if nx == 0 or ny == 0:
        same = pair1 if nx == 0 else pair2
        raise UnembedError(f"The pair {tuple(same)!r} has identical rows, so its difference has no "
                           f"direction and its cosine is undefined.")
    return float(np.clip(x @ y / (nx * ny), -1.0, 1.0))
