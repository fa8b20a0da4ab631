"""The interface every model source returns: an exact head plus the map from inputs to the
hidden states that head consumes (the core's side of the seam: analyses take a
:class:`LoadedModel`, sources implement it).

Invariant (tested per family): for any inputs,
``head.logits(model.hidden_states(inputs))`` equals ``model.model_logits(inputs)`` up to the
model's float precision. Analyses run the head themselves in float64 on those hidden states.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed.head import Head

__all__ = ["HeadModel", "LoadedModel", "require_loaded"]


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

    def forward(self, inputs: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(hidden states (n, d), logits (n, V)) of one pass, float64: the model's own
        logits where it computes them itself (torch, TransformerLens, spaCy); the head's
        where the head is the whole model (weight files, scikit-learn's linear models)."""
        ...

    def random_inputs(self, n: int, length: int, *, seed: int = 0) -> Any:
        """n inputs the model takes, drawn at random (token ids of ``length`` tokens for
        language models, images, features); refused (UnembedError) by a model whose inputs
        have no distribution to draw from (a bare head's hidden states, a pipeline's texts)."""
        ...


def require_loaded(model: object, where: str) -> LoadedModel:
    """``model`` as a :class:`LoadedModel`, checked once where it enters (``where``: the
    function); a one-line refusal naming what it lacks otherwise (a model of your own:
    subclass :class:`HeadModel`)."""
    if isinstance(model, LoadedModel):
        return model
    missing = [m for m in ("head", "kind", "hidden_states", "model_logits", "forward",
                           "random_inputs") if not hasattr(model, m)]
    raise UnembedError(f"{where}: a {type(model).__name__} is not a loaded model (it has no "
                       f"{', '.join(missing)}); read models with unembed.load, or subclass "
                       f"unembed.sources.base.HeadModel.")


class HeadModel:
    """Defaults for a :class:`LoadedModel` whose head is the whole model (a weight file, a
    linear scikit-learn model, a model of your own): :meth:`forward` is the hidden states with
    the head's float64 logits of them; :meth:`random_inputs` is refused. Subclass it and
    give ``head``, ``kind`` and ``hidden_states``.

    Examples
    --------
    >>> import numpy as np
    >>> from unembed import Head
    >>> class Tanh(HeadModel):
    ...     kind = "mine"
    ...     def __init__(self):
    ...         self.head = Head(np.eye(2), labels=["a", "b"])
    ...     def hidden_states(self, x):
    ...         return np.tanh(np.asarray(x, dtype=np.float64))
    >>> h, z = Tanh().forward([[0.0, 1.0]])
    >>> bool(np.allclose(z, np.tanh([[0.0, 1.0]])))
    True
    """

    head: Head
    kind: str

    def hidden_states(self, inputs: Any) -> NDArray[np.float64]:
        raise NotImplementedError

    def model_logits(self, inputs: Any) -> NDArray[np.float64]:
        """The head's logits (n, V), float64: the head is the whole model."""
        return self.head.logits(self.hidden_states(inputs))

    def forward(self, inputs: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(the hidden states, the head's logits of them), float64."""
        h = self.hidden_states(inputs)
        return h, self.head.logits(h)

    def random_inputs(self, n: int, length: int, *, seed: int = 0) -> Any:
        """Refused: nothing says how this model's inputs are distributed."""
        raise UnembedError(f"a {type(self).__name__} model cannot draw random inputs; pass the "
                           f"inputs.")
