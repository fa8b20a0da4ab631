"""The demo's three models and their exact heads.

* :class:`DigitsCNN`: a small convolutional net on 8x8 digits; its head is the last ``Linear``
  (10 x 64), fed by a ReLU layer.
* :class:`TinyLM`: a causal transformer over a word vocabulary, pre-norm blocks, a final
  ``LayerNorm`` and an untied ``Linear`` head with bias. Its hidden state is the output of the
  final norm (the raw view: the norm's gain is not folded into the head).
* multinomial ``LogisticRegression``: the head is ``coef_`` / ``intercept_``, the hidden state
  the input features.

Each is wrapped by the sources' own adapters (:mod:`unembed.sources.torch_module`,
:mod:`unembed.sources.sklearn`), so the audit sees them as it sees any user model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from unembed.demo.data import WordTokenizer
from unembed.sources.sklearn import SklearnModel
from unembed.sources.torch_module import TorchModuleModel

__all__ = ["DemoLM", "DigitsCNN", "TinyLM", "digits_model", "logreg_model"]


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


class DemoLM(TorchModuleModel):
    """The demo language model as a LoadedModel: the sources' torch adapter (head = the
    module's ``head`` Linear, hidden state = its input) plus the word tokenizer, so that text
    files can be audited."""

    def __init__(self, module: TinyLM, tokenizer: WordTokenizer, *, source: str) -> None:
        super().__init__(module, head_name="head", labels=tokenizer.words, source=source)
        self.tokenizer = tokenizer
        self.context = module.context

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text``."""
        return self.tokenizer.encode(text)


def digits_model(module: DigitsCNN, labels: Sequence[str], *, source: str) -> TorchModuleModel:
    """The digits CNN as a LoadedModel (head = its ``head`` Linear)."""
    return TorchModuleModel(module, head_name="head", labels=labels, source=source)


def logreg_model(estimator: Any, labels: Sequence[str], *, source: str) -> SklearnModel:
    """A fitted multinomial LogisticRegression as a LoadedModel (head = coef_, intercept_;
    hidden state = the features)."""
    return SklearnModel(estimator, labels=labels, source=source)
