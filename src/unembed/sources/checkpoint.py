"""Lazy reading of named tensors from a checkpoint directory.

A HuggingFace checkpoint directory holds ``model.safetensors``, or shards listed by
``model.safetensors.index.json`` (``weight_map``: tensor name -> shard file), or the same with
``pytorch_model.bin``. :class:`Checkpoint` opens only the shard that holds a requested tensor
(memory-mapped, via ``safe_open``) and copies out only that tensor, so the head of a
checkpoint much larger than RAM can be read: the other tensors are never materialised.

``.bin`` shards are read with ``torch.load(weights_only=True, mmap=True)``: also lazy, and
nothing is unpickled beyond tensors and plain containers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError, read_json, regular_file
from unembed._tensors import tensor_to_numpy
from unembed.sources._paths import contained
from unembed.sources.matrix_file import MatrixFile

__all__ = ["WEIGHT_FILES", "Checkpoint"]

WEIGHT_FILES = (
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
)


class Checkpoint:
    """The tensors of a checkpoint directory, read one at a time on request.

    Parameters
    ----------
    path : directory
        Holds one of :data:`WEIGHT_FILES`.
    index : str, optional
        The weights or index file to use inside ``path`` (default: the first of
        :data:`WEIGHT_FILES` present).
    """

    def __init__(self, path: str | os.PathLike[str], index: str | None = None) -> None:
        self.path = Path(path)
        self._handles: dict[str, Any] = {}
        self.shards_opened: set[str] = set()
        found = [index] if index else [f for f in WEIGHT_FILES if (self.path / f).exists()]
        if not found:
            raise UnembedError("no weights found (expected one of "
                               f"{', '.join(WEIGHT_FILES)}).", path=self.path)
        self.index_file = found[0]
        self.format = "pt" if found[0].startswith("pytorch_model") or found[0].endswith(
            ".bin") else "safetensors"
        if found[0].endswith(".index.json"):
            self.weight_map: dict[str, str] = self._read_index(found[0])
        else:
            self.weight_map = {k: found[0] for k in self._keys_of(found[0])}

    def _read_index(self, name: str) -> dict[str, str]:
        """``weight_map`` of an index file, checked: a JSON object whose ``weight_map`` maps
        tensor names to shard files inside this directory, each of the index's format."""
        file = contained(self.path, name, "index file")
        obj = read_json(regular_file(file, "checkpoint index"), "checkpoint index")
        wm = obj.get("weight_map") if isinstance(obj, dict) else None
        if not isinstance(wm, dict) or not wm:
            raise UnembedError("not a checkpoint index: expected a JSON object with a "
                                   "non-empty 'weight_map' object (tensor name -> shard file).",
                               path=file)
        suffix = ".bin" if self.format == "pt" else ".safetensors"
        for k, v in wm.items():
            if not isinstance(v, str) or not v.endswith(suffix):
                raise UnembedError(f"the weight_map entry {k!r} must name a {suffix} "
                                       f"shard file. Got {v!r} instead.", path=file)
            contained(self.path, v, "shard")
        return {str(k): v for k, v in wm.items()}

    def _open(self, shard: str) -> Any:
        if shard in self._handles:
            return self._handles[shard]
        file = contained(self.path, shard, "shard")
        if not file.exists():
            raise UnembedError(f"shard named in {self.index_file} is missing.", path=file)
        regular_file(file, "shard")
        self.shards_opened.add(shard)
        if self.format == "safetensors":
            from safetensors import SafetensorError, safe_open

            from unembed.sources.safetensors_file import check_safetensors

            check_safetensors(file)
            try:
                handle: Any = safe_open(str(file), framework="pt")
            except (SafetensorError, OSError, RuntimeError, ValueError) as e:
                raise UnembedError(f"not a readable safetensors file ({e}).", path=file) from None
        else:
            import torch

            from unembed.sources.torch_file import torch_load

            handle = torch_load(file, mmap=True)
            if not isinstance(handle, dict) or not all(
                    isinstance(v, torch.Tensor) for v in handle.values()):
                raise UnembedError("not a state dict (a dict of tensors).", path=file)
        self._handles[shard] = handle
        return handle

    def _keys_of(self, shard: str) -> list[str]:
        h = self._open(shard)
        return [str(k) for k in h.keys()]

    def keys(self) -> list[str]:
        """Every tensor name of the checkpoint."""
        return list(self.weight_map)

    def resolve(self, *names: str) -> str | None:
        """The first of ``names`` that the checkpoint holds, also trying each without its
        first dotted component (checkpoints saved from a base model drop the prefix)."""
        for name in names:
            if name in self.weight_map:
                return name
            if "." in name:
                tail = name.split(".", 1)[1]
                if tail in self.weight_map:
                    return tail
        return None

    def shape(self, name: str) -> tuple[int, ...]:
        h = self._open(self._shard(name))
        if self.format == "safetensors":
            return tuple(h.get_slice(name).get_shape())
        return tuple(h[name].shape)

    def _shard(self, name: str) -> str:
        if name not in self.weight_map:
            raise UnembedError(f"the checkpoint holds no tensor named {name!r}.", path=self.path)
        shard = self.weight_map[name]
        if name not in self._keys_of(shard):
            raise UnembedError(f"{self.index_file} says this shard holds "
                                                 f"{name!r}, but it does not.",
                               path=self.path / shard)
        return shard

    def get(self, name: str) -> tuple[NDArray[Any], str]:
        """One tensor as (array in stored precision, stored dtype name). Only its shard is
        opened, and only this tensor's bytes are copied out of the memory map."""
        h = self._open(self._shard(name))
        if self.format == "safetensors":  # get_tensor copies the bytes out of the map
            return tensor_to_numpy(h.get_tensor(name))
        arr, dtype = tensor_to_numpy(h[name])  # a view of the memory map: copy it out
        return np.array(arr, copy=True), dtype


def read_indexed_tensor(index: str | os.PathLike[str], tensor: str | None,
                        ndim: int = 2) -> MatrixFile:
    """One tensor of a sharded checkpoint named by its index file
    (``model.safetensors.index.json:lm_head.weight``), as a :class:`MatrixFile` whose values
    are read on demand (safetensors shards: from the shard's header, block by block, no torch;
    ``.bin`` shards: loaded by torch). Without a name, the only tensor of ``ndim`` dimensions
    whose name ends in ``lm_head.weight`` or ``embed_out.weight`` is taken. Only that tensor's
    shard is opened."""
    from unembed.sources.safetensors_file import safetensors_tensor

    p = Path(index)
    ck = Checkpoint(p.parent, index=p.name)
    if tensor is None:
        cands = [k for k in ck.keys() if k.endswith(("lm_head.weight", "embed_out.weight"))
                 and len(ck.shape(k)) == ndim]
        if len(cands) != 1:
            raise UnembedError(f"name the tensor as {p}:NAME (found "
                               f"{', '.join(repr(c) for c in cands) or 'no output layer'}).",
                               path=p)
        tensor = cands[0]
    shape = ck.shape(tensor)
    if len(shape) != ndim:
        raise UnembedError(f"the tensor {tensor!r} has shape {shape}; expected {ndim} "
                           f"dimensions.", path=p)
    if ck.format == "safetensors":
        return safetensors_tensor(ck.path / ck._shard(tensor), tensor, shape_path=p,
                                  fmt="sharded")
    arr, dtype = ck.get(tensor)
    return MatrixFile(dtype, p, "sharded", tensor, tuple(arr.shape), loaded=arr)
