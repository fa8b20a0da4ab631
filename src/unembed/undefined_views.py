"""When a view's cosines carry no information about the labels asked: undefined, with why.

The rule is the audit's (:mod:`unembed.audit`), for every command that shows a view
(``cosine``, ``inspect``, ``neighbours``):

* structurally, whatever the labels asked (:func:`unembed.views.structural_reason`):

  - ``causal`` when the centered rows have rank V - 1 (every head with V - 1 <= d and rows in
    general position): the whitened rows' Gram matrix is V times the projection onto the range
    of the centered rows, V I - 1 1^T, so every pair has cosine -1/(V - 1) whatever the head;
  - ``centered``, ``normalized``, ``causal`` and ``logit`` on a head of two labels: the two
    centered rows (and centered logits) are opposite, c_0 = -c_1, so the cosine is -1 for
    every such head; ``differences`` there has no third label at all;

* over the labels asked (:func:`constant_reason_of`): the cosines are constant up to float64
  rounding (:func:`unembed._stats.constant_reason`, with :func:`view_terms` rounded
  operations per cosine), e.g. an equiangular (simplex) arrangement of the centered rows: any
  ranking of them ranks rounding noise.

Each gives the reason as one sentence starting "undefined:"; None when the view is defined.

>>> import numpy as np
>>> from unembed import Head
>>> head = Head(np.random.default_rng(0).normal(size=(5, 8)))   # V - 1 <= d
>>> structural_reason(head, "causal").split(":")[0]
'undefined'
>>> structural_reason(head, "centered") is None
True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from unembed._stats import constant_reason
from unembed.head import Head
from unembed.views import structural_reason

__all__ = ["constant_reason_of", "neighbour_reason", "structural_reason", "view_terms"]


def view_terms(view: str, head: Head, n_states: int = 0) -> int:
    """How many rounded operations one cosine of ``view`` accumulates: d for a dot product of
    rows, V + d for the causal view's whitening, n + d for the logit view (moments summed
    over n hidden states) — the audit's count."""
    if view == "causal":
        return head.n_labels + head.d
    if view == "logit":
        return n_states + head.d
    return head.d


def constant_reason_of(head: Head, view: str, S: NDArray[np.float64],
                       n_states: int = 0) -> str | None:
    """Why the cosine matrix ``S`` (k, k) of ``view`` over the labels asked carries no
    information (structural, or constant off the diagonal up to rounding), or None."""
    why = structural_reason(head, view)
    if why is not None:
        return why
    k = S.shape[0]
    if k < 3:
        return None  # one pair: a number, not a ranking
    iu = np.triu_indices(k, 1)
    return constant_reason(S[iu], what=f"the {view} cosine over the {k} labels asked",
                           terms=view_terms(view, head, n_states), scale=1.0)


def neighbour_reason(head: Head, label: str, view: str, cosines: ArrayLike,
                     n_states: int = 0) -> str | None:
    """Why the cosines of one label with every other label (``cosines``, (V - 1,), NaN for
    labels without a direction) rank nothing: they are constant up to rounding."""
    return constant_reason(cosines, what=f"the {view} cosine of {label!r} with every other "
                           f"label", terms=view_terms(view, head, n_states), scale=1.0)
