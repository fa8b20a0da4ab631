"""Raw weight files: ``.npy``, ``.pt``/``.pth``/``.bin`` (read with ``weights_only=True``) and
``.safetensors``, each naming one matrix; plus label files.

A file spec is ``PATH`` or ``PATH:TENSOR`` (the tensor's name inside a safetensors file or a
saved state dict). Files are read as stored (float16 and bfloat16 included) and handed on as
float arrays; the Head computes in float64. Nothing is unpickled beyond what
``torch.load(weights_only=True)`` allows. Each format's reading and writing is its own module
(:mod:`~unembed.sources.npy_file`, :mod:`~unembed.sources.safetensors_file`,
:mod:`~unembed.sources.torch_file`); this one picks by suffix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed._io import atomic_write
from unembed._tensors import tensor_to_numpy
from unembed.rows import RowBlocks, Values
from unembed.sources.dtypes import code_of_name
from unembed.sources.matrix_file import SUFFIXES, MatrixFile, format_of, split_spec
from unembed.sources.npy_file import npy_matrix, read_npy, write_npy_blocks
from unembed.sources.safetensors_file import (
    check_safetensors,
    pick_tensor,
    safetensors_header,
    safetensors_tensor,
    write_safetensors_blocks,
)
from unembed.sources.torch_file import torch_load

__all__ = ["SUFFIXES", "MatrixFile", "read_labels", "read_npy", "read_tensor", "split_spec",
           "torch_load", "write_head_like", "write_like"]


def read_tensor(spec: str | os.PathLike[str], *, ndim: int = 2) -> MatrixFile:
    """Read one tensor from a weight file spec (``PATH`` or ``PATH:NAME``).

    Raises UnembedError naming the file when it is missing, truncated, not of the format its
    suffix says, or ambiguous (several candidate tensors and no name).
    """
    from unembed._checks import regular_file

    path, tensor = split_spec(spec)
    regular_file(path, "file")
    if path.name.endswith(".index.json"):
        from unembed.sources.checkpoint import read_indexed_tensor

        return read_indexed_tensor(path, tensor, ndim)
    fmt = format_of(path)
    if fmt == "npy":
        if tensor is not None:
            raise UnembedError(f"an .npy file holds one array; drop the ':{tensor}' suffix.",
                               path=path)
        return npy_matrix(path)
    if fmt == "safetensors":
        check_safetensors(path)  # the file's own checks first (sizes vs header, ...)
        header = safetensors_header(path)
        names = list(header)
        name = pick_tensor(names, tensor, path, {n: header[n]["shape"] for n in names}, ndim)
        return safetensors_tensor(path, name, header=header)
    import torch

    obj = torch_load(path)
    if isinstance(obj, torch.Tensor):
        if tensor is not None:
            raise UnembedError(f"holds a single tensor; drop the ':{tensor}' suffix.", path=path)
        arr, dtype = tensor_to_numpy(obj)
        return MatrixFile(dtype, path, fmt, None, tuple(arr.shape), loaded=arr)
    if isinstance(obj, dict):
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        shapes = {k: tuple(v.shape) for k, v in tensors.items()}
        name = pick_tensor(list(tensors), tensor, path, shapes, ndim)
        arr, dtype = tensor_to_numpy(tensors[name])
        return MatrixFile(dtype, path, fmt, name, tuple(arr.shape), loaded=arr)
    raise UnembedError(f"holds a {type(obj).__name__}, not a tensor or a dict of tensors.",
                       path=path)


def read_labels(path: str | os.PathLike[str]) -> list[str]:
    """Labels from a file: JSON (a list, or a dict id -> label as HF's ``id2label``), or plain
    text with one label per line."""
    from unembed._checks import read_json, read_text

    p = Path(path)
    if p.suffix.lower() == ".json":
        obj = read_json(p, "labels file")
        if isinstance(obj, dict) and "id2label" in obj:
            obj = obj["id2label"]
        if isinstance(obj, dict):
            try:
                items = sorted((int(k), str(v)) for k, v in obj.items())
            except ValueError:
                raise UnembedError("a labels dict must map integer ids to labels.",
                                   path=p) from None
            if [k for k, _ in items] != list(range(len(items))):
                raise UnembedError(f"label ids must be 0..{len(items) - 1} without gaps.", path=p)
            return [v for _, v in items]
        if isinstance(obj, list):
            return [str(x) for x in obj]
        raise UnembedError("expected a JSON list of labels or a dict id -> label.", path=p)
    lines = read_text(p, "labels file").splitlines()
    while lines and lines[-1] == "":
        lines.pop()
    return lines


def write_like(source: MatrixFile, values: Values, out: str | os.PathLike[str], *,
               force: bool = False, shift: NDArray[np.float64] | None = None) -> Path:
    """Write ``values`` in the format and dtype of ``source`` (the same tensor name; every
    other tensor of a safetensors or state-dict file is copied unchanged; a tensor of a
    sharded safetensors checkpoint is written as a copy of its shard, to a ``.safetensors``
    path). Atomic; an existing
    ``out`` needs ``force``. With ``shift`` (d,), ``values + shift`` (every row moved by it)
    is written, block by block, without forming it: .npy and .safetensors files are written in
    row blocks (peak memory: one block), torch files whole. ``values`` may be given block by
    block (:class:`unembed.rows.RowBlocks`, e.g. a head's ``row_block``)."""
    outp = Path(out)
    if source.format == "sharded" and source.raw is not None and \
            outp.suffix.lower() == ".safetensors":
        # The shard that holds the tensor, written with the tensor replaced (a .safetensors
        # file that names the same tensor; the other shards are untouched and not copied).
        if tuple(values.shape) != source.shape:
            raise UnembedError(f"values of shape {values.shape} do not match the source "
                               f"tensor's shape {source.shape}.", path=outp)
        atomic_write(outp, lambda tmp: write_safetensors_blocks(source, tmp, values, shift),
                     force=force)
        return outp
    if source.format == "sharded":
        raise UnembedError("a tensor of a sharded checkpoint is written as a .safetensors "
                           "file (its shard, with the tensor replaced); or export the whole model "
                           "with --model DIR (export_model).", path=outp)
    if outp.suffix.lower() != source.path.suffix.lower():
        raise UnembedError("the output must have the input's suffix "
                           f"{source.path.suffix!r} (it is written in the input's format).",
                           path=outp)
    if tuple(values.shape) != source.shape:
        raise UnembedError(f"values of shape {values.shape} do not match the source "
                           f"tensor's "
                           f"shape {source.shape}.", path=outp)
    if source.format == "npy":
        atomic_write(outp, lambda tmp: write_npy_blocks(tmp, values, np.dtype(source.dtype),
                                                        shift), force=force)
        return outp
    if source.format == "safetensors" and source.raw is not None and \
            code_of_name(source.dtype) is not None:
        atomic_write(outp, lambda tmp: write_safetensors_blocks(source, tmp, values, shift),
                     force=force)
        return outp
    import torch

    tdtype = getattr(torch, source.dtype)
    whole = values.whole() if isinstance(values, RowBlocks) else values
    full = np.array(whole, dtype=np.float64) if shift is None else whole + shift
    new_t = torch.from_numpy(full).to(tdtype)
    if source.format == "safetensors":  # another dtype than stored: the file is rewritten
        from safetensors import safe_open
        from safetensors.torch import save_file

        with safe_open(str(source.path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            metadata = f.metadata()
        assert source.tensor is not None
        tensors[source.tensor] = new_t
        atomic_write(outp, lambda tmp: save_file(tensors, str(tmp), metadata=metadata),
                     force=force)
        return outp
    obj = torch_load(source.path)
    if isinstance(obj, dict):
        assert source.tensor is not None
        obj = dict(obj)
        obj[source.tensor] = new_t
    else:
        obj = new_t
    atomic_write(outp, lambda tmp: torch.save(obj, tmp), force=force)
    return outp


def write_head_like(head: Any, out: str | os.PathLike[str], *, force: bool = False,
                    shift: NDArray[np.float64] | None = None) -> Path:
    """Write ``head.W`` to ``out`` in the format and dtype of the file the head's original was
    read from (``head.file``, set by :func:`unembed.sources.load_head_file`)."""
    source = head.file
    if not isinstance(source, MatrixFile):
        raise UnembedError("this head was not read from a weight file; nothing to write "
                           "it like.", function="write_head_like")
    return write_like(source, head.W, out, force=force, shift=shift)
