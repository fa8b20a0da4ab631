"""The interface every model source returns: an exact head plus the map from inputs to the
hidden states that head consumes.

Invariant (tested per family): for any inputs,
``head.logits(model.hidden_states(inputs))`` equals ``model.model_logits(inputs)`` up to the
model's float precision. Analyses run the head themselves in float64 on those hidden states.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from unembed.head import Head


@runtime_checkable
class LoadedModel(Protocol):
    """A model read from a source.

    Attributes
    ----------
    head : Head
        The exact head; ``head.rows`` says "stored" or "folded" (final norm's gain in W).
    kind : str
        "hf_lm", "hf_vision", "torch", "sklearn" or "file".
    """

    head: Head
    kind: str

    def hidden_states(self, inputs: Any) -> NDArray[np.float64]:
        """Hidden states of shape (n, d) for a batch of inputs, flattened over positions for
        language models (inputs of token ids (B, T) give n = B * T), in float64."""
        ...

    def model_logits(self, inputs: Any) -> NDArray[np.float64]:
        """The model's own logits (n, V) for the same inputs, flattened the same way."""
        ...
