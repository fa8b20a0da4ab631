"""Data that ships with every install, for the demo: scikit-learn's digits and the English
text of the Python documentation topics (:mod:`pydoc_data.topics`), with a word-level
tokenizer built from that text.

Everything here is deterministic: the same seed gives the same splits and the same vocabulary.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["DigitsSplit", "WordTokenizer", "digits_split", "doc_topics_text"]

_WORD = re.compile(r"[a-z]+|[0-9]+|[^\sa-z0-9]")
UNK = "<unk>"


@dataclass(frozen=True)
class DigitsSplit:
    """The 8x8 digits, scaled to [0, 1], split into train and held-out parts (stratified).

    ``x_*`` have shape (n, 64) float32; ``y_*`` shape (n,) int64; ``labels`` are "0".."9".
    """

    x_train: NDArray[np.float32]
    y_train: NDArray[np.int64]
    x_test: NDArray[np.float32]
    y_test: NDArray[np.int64]
    labels: tuple[str, ...]


def digits_split(*, seed: int = 0, test_fraction: float = 0.25) -> DigitsSplit:
    """scikit-learn's bundled digits (1797 images, 10 classes), split with a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (np.asarray(d.data, dtype=np.float32) / 16.0).astype(np.float32)
    y = np.asarray(d.target, dtype=np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_fraction, random_state=seed,
                                          stratify=y)
    return DigitsSplit(xtr, ytr, xte, yte, tuple(str(i) for i in range(10)))


def doc_topics_text(*, held_out_every: int = 5) -> tuple[str, str]:
    """The Python documentation topics as (training text, held-out text).

    Topics are sorted by name; every ``held_out_every``-th topic is held out.
    """
    from pydoc_data.topics import topics

    keys = sorted(topics)
    train = [topics[k] for i, k in enumerate(keys) if i % held_out_every != held_out_every - 1]
    held = [topics[k] for i, k in enumerate(keys) if i % held_out_every == held_out_every - 1]
    return "\n\n".join(train), "\n\n".join(held)


class WordTokenizer:
    """Lower-cased words, numbers and single punctuation marks; the ``size - 1`` most frequent
    in the training text, then ``<unk>`` (last id) for the rest.

    Parameters
    ----------
    words : sequence of str
        The vocabulary in id order (unique; ``<unk>`` among them).
    """

    def __init__(self, words: Sequence[str]) -> None:
        self.words: tuple[str, ...] = tuple(words)
        self._ids = {w: i for i, w in enumerate(self.words)}
        self.unk = self._ids[UNK]

    @classmethod
    def fit(cls, text: str, size: int) -> WordTokenizer:
        """The vocabulary of ``text``: its ``size - 1`` most frequent tokens (ties broken
        alphabetically, so the result does not depend on hash seeds) and ``<unk>``."""
        counts = Counter(_WORD.findall(text.lower()))
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return cls([w for w, _ in ranked[: size - 1]] + [UNK])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        """Token ids of a text (unknown words become ``<unk>``)."""
        ids = self._ids
        unk = self.unk
        return [ids.get(w, unk) for w in _WORD.findall(text.lower())]

    def decode(self, ids: Sequence[int]) -> str:
        """The tokens of ``ids`` joined by spaces."""
        return " ".join(self.words[int(i)] for i in ids)
