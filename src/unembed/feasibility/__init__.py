"""What a head can predict, decided exactly: argmaxable labels, pairs that can be on top
together, feasible rankings and top-k sets, sigmoid on/off combinations (docs/feasibility.md).

Every answer is a :class:`Feasibility` (or a collection of them): "yes" with a witness hidden
state that the head's own float64 logits confirm, "no" with a dual certificate whose bound is
recomputed from the head, margins reported in both cases. The LP, its bounds and the tolerance
are written down in :mod:`unembed.feasibility._core`; single questions in
:mod:`unembed.feasibility.questions`; enumerations over small label sets and the co-top
matrix in :mod:`unembed.feasibility.enumerations`; the whole-vocabulary check in
:mod:`unembed.feasibility.vocabulary`, with wide heads (V - 1 <= d) settled without LPs by
:mod:`unembed.feasibility.span`. Every result says which logits its witness realises
(``realises``: ``"W h + b"`` or ``"W h"``).
"""

from unembed.feasibility._core import CLEAR, RTOL, Certificate, Feasibility, Realises
from unembed.feasibility.enumerations import (
    CoTopMatrix,
    Enumeration,
    co_top_matrix,
    enumerate_combinations,
    enumerate_rankings,
    enumerate_top_k_sets,
)
from unembed.feasibility.questions import (
    can_be_top_two,
    is_argmaxable,
    is_feasible_combination,
    is_feasible_ranking,
    is_top_k_set,
    logits_at,
)
from unembed.feasibility.vocabulary import VocabularyResult, argmaxable_all

__all__ = [
    "CLEAR",
    "RTOL",
    "Certificate",
    "CoTopMatrix",
    "Enumeration",
    "Feasibility",
    "Realises",
    "VocabularyResult",
    "argmaxable_all",
    "can_be_top_two",
    "co_top_matrix",
    "enumerate_combinations",
    "enumerate_rankings",
    "enumerate_top_k_sets",
    "is_argmaxable",
    "is_feasible_combination",
    "is_feasible_ranking",
    "is_top_k_set",
    "logits_at",
]
