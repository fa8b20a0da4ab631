"""The demo's three models and their exact heads.

* :class:`DigitsCNN`: a small convolutional net on 8x8 digits; its head is the last ``Linear``
  (10 x 64), fed by a ReLU layer.
* :class:`TinyLM`: a causal transformer over a word vocabulary, pre-norm blocks, a final
  ``LayerNorm`` and an untied ``Linear`` head with bias. Its hidden state is the output of the
  final norm (the raw view: the norm's gain is not folded into the head).
* multinomial ``LogisticRegression``: the head is ``coef_`` / ``intercept_``, the hidden state
  the input features.

Each is wrapped as a :class:`~unembed.sources.base.LoadedModel`, so the audit sees them as it
sees any user model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from unembed.head import Head

__all__ = ["DigitsCNN", "SklearnLinearModel", "TinyLM", "TorchHeadModel"]


class DigitsCNN(nn.Module):
    """A convolutional net for (n, 64) inputs read as 1x8x8 images; logits (n, 10).

    Two 3x3 convolutions, a 2x2 max-pool, a hidden ``Linear`` + ReLU of ``hidden`` units, and
    the head ``Linear(hidden, 10)`` (attribute ``head``).
    """

    def __init__(self, *, width: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(2 * width * 16, hidden), nn.ReLU(),
        )
        self.head = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.features(x.reshape(-1, 1, 8, 8)))
        return out


class TinyLM(nn.Module):
    """A causal transformer LM: token ids (B, T) with T <= ``context`` -> logits (B, T, vocab).

    Learned positions, ``layers`` pre-norm encoder blocks with a causal mask, a final
    ``LayerNorm`` (attribute ``norm``) and an untied ``Linear(d, vocab)`` head (``head``).
    """

    def __init__(self, vocab: int, *, d: int = 64, layers: int = 2, heads: int = 4,
                 context: int = 32) -> None:
        super().__init__()
        self.context = context
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(context, d)
        block = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(t)
        x = self.tok(ids) + self.pos(torch.arange(t))
        x = self.blocks(x, mask=mask, is_causal=True)
        out: torch.Tensor = self.head(self.norm(x))
        return out


class TorchHeadModel:
    """A torch module whose logits are ``module.head(h)`` (a ``Linear``), as a LoadedModel.

    ``hidden_states(inputs)`` runs the module and captures the input of the head (flattened to
    (n, d), float64); for token ids (B, T) n = B * T. ``tokenize`` (language models) maps a text
    to token ids.

    Parameters
    ----------
    module : torch.nn.Module
        The model, with its output layer as attribute ``head``.
    labels : sequence of str
        One label per output row.
    tokenize : callable, optional
        text -> list of token ids (language models only).
    """

    kind = "torch"

    def __init__(self, module: Any, labels: Sequence[str], *, source: str,
                 tokenize: Any = None, context: int | None = None) -> None:
        module.eval()
        self.module = module
        lin = module.head
        w = lin.weight.detach().cpu().numpy()
        b = None if lin.bias is None else lin.bias.detach().cpu().numpy()
        self.head = Head(W=w, b=b, labels=tuple(labels), link="softmax", reparam=True,
                         meta={"source": source, "family": "torch", "view": "raw",
                               "tied": False, "folded": False})
        self._tokenize = tokenize
        self.context = context

    @property
    def is_language_model(self) -> bool:
        return self._tokenize is not None

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` (language models)."""
        if self._tokenize is None:
            from unembed._checks import fail

            raise fail("This model has no tokenizer; pass arrays, not text.")
        return list(self._tokenize(text))

    def forward(self, inputs: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Hidden states (n, d) and the module's own logits (n, V) of one pass, float64."""
        captured: list[torch.Tensor] = []
        hook = self.module.head.register_forward_pre_hook(
            lambda _m, args: captured.append(args[0].detach()))
        try:
            with torch.inference_mode():
                arr = np.asarray(inputs)
                x = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
                if x.dtype.is_floating_point:
                    x = x.to(torch.float32)
                z = self.module(x)
        finally:
            hook.remove()
        h = captured[0]
        return (h.reshape(-1, h.shape[-1]).to(torch.float64).numpy(),
                z.reshape(-1, z.shape[-1]).to(torch.float64).numpy())

    def hidden_states(self, inputs: Any) -> NDArray[np.float64]:
        """Inputs of the head, (n, d) float64."""
        return self.forward(inputs)[0]

    def model_logits(self, inputs: Any) -> NDArray[np.float64]:
        """The module's own logits, (n, V) float64."""
        return self.forward(inputs)[1]


class SklearnLinearModel:
    """A fitted multinomial ``LogisticRegression`` as a LoadedModel: head ``coef_`` (V, d),
    bias ``intercept_``; the hidden state is the feature matrix itself (float64)."""

    kind = "sklearn"
    is_language_model = False

    def __init__(self, estimator: Any, labels: Sequence[str], *, source: str) -> None:
        self.estimator = estimator
        self.head = Head(W=np.asarray(estimator.coef_, dtype=np.float64),
                         b=np.asarray(estimator.intercept_, dtype=np.float64),
                         labels=tuple(labels), link="softmax", reparam=False,
                         meta={"source": source, "family": "sklearn", "view": "raw"})

    def hidden_states(self, inputs: Any) -> NDArray[np.float64]:
        return np.asarray(inputs, dtype=np.float64).reshape(len(inputs), -1)

    def model_logits(self, inputs: Any) -> NDArray[np.float64]:
        return np.asarray(self.estimator.decision_function(self.hidden_states(inputs)),
                          dtype=np.float64)
