"""Is a weight file's matrix stored (V, d), one row per label, as a head is read? A (d, V)
matrix (TransformerLens's ``W_U``: ``logits = h @ W_U``) read as it is would be a head of d
"labels" with V-dimensional rows, a different classifier with no error anywhere. Two signs
say a matrix is stored that way, and then it is refused with how to read it:

* labels given (or found beside the file) that count its columns, not its rows:
  ``len(labels) == d != V``;
* its tensor's name is TransformerLens's: ``W_U`` or ``...W_U`` (``unembed.W_U``), unless
  labels were given that count its rows (they say it is stored (V, d) under that name).

Examples
--------
>>> from pathlib import Path
>>> from unembed.sources.matrix_file import MatrixFile
>>> import numpy as np
>>> mf = MatrixFile("float64", Path("W_U.safetensors"), "safetensors", "unembed.W_U", (4, 10),
...                 loaded=np.zeros((4, 10)))
>>> try:
...     check_orientation(mf, None, given=False)
... except Exception as e:
...     print("looks transposed" in str(e), "transpose=True" in str(e))
True True
>>> check_orientation(mf, 4, given=True) is None    # 4 labels: rows are labels after all
True
"""

from __future__ import annotations

from unembed.errors import Setting, UnembedError
from unembed.sources.matrix_file import MatrixFile

__all__ = ["check_orientation", "looks_like_w_u"]

#: the setting that reads a (d, V) matrix
TRANSPOSE = Setting("transpose=True", "--transpose")
#: how to read a (d, V) matrix, said once in every refusal
HOW = ("pass ", TRANSPOSE, " to read its columns as the labels' rows (or read the whole "
       "TransformerLens model with --as transformer-lens)")


def looks_like_w_u(mf: MatrixFile) -> bool:
    """Whether the tensor's name (or an .npy file's name) is TransformerLens's ``W_U``."""
    name = mf.tensor if mf.tensor is not None else mf.path.stem
    return name == "W_U" or name.endswith(".W_U")


def check_orientation(mf: MatrixFile, n_labels: int | None, *, given: bool) -> None:
    """Refuse, in one line naming the file, a matrix that looks stored (d, V): ``n_labels``
    (labels given by the caller when ``given``, else found beside the file; None: none)
    equal to its columns but not its rows, or a ``W_U`` name not contradicted by labels that
    count its rows. Nothing for any other matrix."""
    if len(mf.shape) != 2:
        return
    rows, cols = mf.shape
    spec = f"{mf.path}" + (f":{mf.tensor}" if mf.tensor else "")
    if n_labels is not None and n_labels == cols != rows:
        raise UnembedError((f"the head looks transposed: {n_labels} labels match its {cols} "
                            f"columns, not its {rows} rows (a (d, V) matrix such as "
                            f"TransformerLens's W_U); ", *HOW, "."), path=spec)
    if looks_like_w_u(mf) and not (given and n_labels == rows):
        raise UnembedError((f"the tensor {mf.tensor or mf.path.name!r} is named as "
                            f"TransformerLens's W_U, which is stored (d, V) = {mf.shape}: the "
                            f"head looks transposed; ", *HOW, "; a (V, d) matrix stored under "
                            "this name is read as it is when given labels, one per row."),
                           path=spec)
