"""Sources: one adapter per model family, each producing an exact :class:`~unembed.head.Head`.

Only weight files are handled here so far (:mod:`unembed.sources.files`).
"""

from __future__ import annotations

import os
from typing import Any

from unembed.head import Head, Link
from unembed.sources.files import MatrixFile, read_labels, read_tensor

__all__ = ["load_head_file"]


def load_head_file(
    weights: str | os.PathLike[str],
    *,
    bias: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | list[str] | None = None,
    link: Link = "softmax",
    softcap: float | None = None,
    strict: bool = True,
) -> Head:
    """A head from a weight file spec (``PATH`` or ``PATH:TENSOR``) of shape (V, d), an
    optional bias file spec of shape (V,) and optional labels (a file or a list).

    The returned head's ``meta["file"]`` holds the :class:`MatrixFile` it came from, so that an
    equivalent head can be written back in the same format and dtype.
    """
    mf: MatrixFile = read_tensor(weights, ndim=2)
    b = None
    if bias is not None:
        bf = read_tensor(bias, ndim=1)
        if bf.array.ndim != 1 or bf.array.shape[0] != mf.array.shape[0]:
            raise_shape(bf, mf)
        b = bf.array
    labs: Any = None
    if labels is not None:
        labs = labels if isinstance(labels, list) else read_labels(labels)
    return Head(
        W=mf.array,
        b=b,
        labels=tuple(labs) if labs is not None else (),
        link=link,
        softcap=softcap,
        dtype=mf.dtype,
        strict=strict,
        meta={"source": str(mf.path) + (f":{mf.tensor}" if mf.tensor else ""), "file": mf,
              "view": "raw"},
    )


def raise_shape(bf: MatrixFile, mf: MatrixFile) -> None:
    from unembed._checks import fail

    raise fail(f"{bf.path}: the bias has shape {bf.array.shape}, but the weights "
               f"{mf.path} have {mf.array.shape[0]} rows; expected ({mf.array.shape[0]},).")
