"""fastText models: recognised, and refused with the reason.

A fastText classifier trained with ``loss='hs'`` (hierarchical softmax) has no row per label:
p(label | x) is the product, along the label's path in a Huffman tree over the labels, of
binary decisions sigmoid(+-v_n . h), one vector v_n per *inner node* of the tree. The output
matrix holds those V - 1 node vectors (and one row no path uses), not label representations;
there is no u_i with p(i | x) = softmax(U h)_i, so no cosine of two labels' rows exists to
analyse, and reading the node vectors as label rows would be reading the model as something it
is not.

Other losses (``softmax``, ``ova``, ``ns``) do have one output row per label, but fastText's
binary format (dictionary, optional quantisation) is not read by unembed yet: they are refused
too, with that reason.

A ``.bin`` file is recognised by its header: int32 magic 793712314, int32 version, then the
training arguments as int32 (dim, ws, epoch, minCount, neg, wordNgrams, loss, model, ...), with
loss 1 = hs, 2 = ns, 3 = softmax, 4 = ova.
"""

from __future__ import annotations

import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

from unembed._checks import UnembedError

__all__ = ["FastTextHeader", "is_fasttext_model", "read_header", "refusal"]

MAGIC = 793712314
LOSSES = {1: "hs", 2: "ns", 3: "softmax", 4: "ova"}
MODELS = {1: "cbow", 2: "skipgram", 3: "supervised"}


@dataclass(frozen=True)
class FastTextHeader:
    """The start of a fastText ``.bin``: format version, vector width, loss and model."""

    version: int
    dim: int
    loss: str
    model: str


def read_header(path: str | os.PathLike[str]) -> FastTextHeader | None:
    """The header of a fastText ``.bin`` file, or None when ``path`` is not one."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8 + 4 * 8)
    except OSError:
        return None
    if len(head) < 40 or struct.unpack("<i", head[:4])[0] != MAGIC:
        return None
    version, dim, _ws, _epoch, _min_count, _neg, _ngrams, loss, model = struct.unpack(
        "<9i", head[4:40])
    return FastTextHeader(version=version, dim=dim, loss=LOSSES.get(loss, f"#{loss}"),
                          model=MODELS.get(model, f"#{model}"))


def is_fasttext_model(obj: object) -> bool:
    """Whether ``obj`` is a model of the ``fasttext`` Python package (not imported here)."""
    mod = sys.modules.get("fasttext.FastText")
    cls = None if mod is None else mod.__dict__.get("_FastText")
    return cls is not None and isinstance(obj, cls)


def _reason(loss: str, where: str) -> UnembedError:
    if loss == "hs":
        return UnembedError(f"{where}: a fastText model trained with a hierarchical softmax "
                            f"(loss 'hs'): p(label) is a product of binary decisions along the "
                            f"label's "
                            f"path in a Huffman tree, and the output matrix holds one vector per "
                            f"inner "
                            f"node of that tree, not one row per label; there are no label "
                            f"representations whose cosines could be analysed, so unembed refuses "
                            f"it.")
    return UnembedError(f"{where}: a fastText model (loss {loss!r}); fastText's binary format is "
                        f"not "
                        f"read by unembed yet. Export its output matrix (get_output_matrix(), one "
                        f"row "
                        f"per label in get_labels() order) to a .npy file and pass that.")


def refusal(source: object) -> UnembedError:
    """The error for a fastText ``.bin`` path or a ``fasttext`` model object."""
    if isinstance(source, (str, os.PathLike)):
        header = read_header(source)
        loss = header.loss if header is not None else "unknown"
        return _reason(loss, str(Path(source)))
    args = source.f.getArgs()  # type: ignore[attr-defined]
    loss = str(args.loss).rsplit(".", 1)[-1]
    return _reason(loss, "fastText model")
