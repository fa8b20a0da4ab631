"""What a model does on data: streaming, mergeable statistics of its probabilities.

This module gathers, for compatibility, what lives in three modules:

* :mod:`unembed.data`: input sources (:class:`TextWindows`, :class:`ArrayInputs`,
  :func:`open_data`);
* :mod:`unembed.accumulators`: :class:`LabelTally`, :class:`PairStats`, :data:`MEASURES`;
* :mod:`unembed.streaming`: the streaming loop :func:`collect` and its :class:`Behaviour`
  (the per-batch arithmetic in :mod:`unembed.kernels`).
"""

from __future__ import annotations

from unembed.accumulators import (
    MEASURE_TITLES,
    MEASURES,
    LabelTally,
    PairStats,
    top_k_indices,
)
from unembed.data import ArrayInputs, DataSource, OpensOwnText, TextWindows, open_data
from unembed.streaming import Behaviour, LabelSelection, collect

__all__ = [
    "MEASURES",
    "MEASURE_TITLES",
    "ArrayInputs",
    "Behaviour",
    "DataSource",
    "LabelSelection",
    "LabelTally",
    "OpensOwnText",
    "PairStats",
    "TextWindows",
    "collect",
    "open_data",
    "top_k_indices",
]
