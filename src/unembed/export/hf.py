"""HuggingFace models written back: a directory that ``from_pretrained`` loads unchanged (no
custom code).

A tied head is untied first (input embeddings kept, ``tie_word_embeddings`` set to false).
A folded head is unfolded: folded rows W_f = U diag(g) become U = W_f diag(1/g), so a
translation by c of folded rows is a translation by c / g of the stored rows; the bias the
model would need, b = b_f - U beta, is dropped when it is the same for every label (softmax
ignores it) and otherwise must fit the output layer's own bias.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed.equivalence import compare_logits
from unembed.export._common import (
    ExportJob,
    ExportResult,
    bias_to_write,
    require_equivalent,
    to_tensor,
)
from unembed.export._registry import register
from unembed.head import Head
from unembed.model import LoadedModel
from unembed.sources._paths import contained
from unembed.sources._torch import FinalNorm
from unembed.sources.hf_lm import HFCausalLM
from unembed.sources.torch_base import HFClassifierSource

__all__ = ["HFExportable", "export_hf"]

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt")


class HFExportable(LoadedModel, Protocol):
    """A HuggingFace model that :func:`unembed.export.export_model` can write back: the
    directory it came from, a fresh torch copy to modify, its output layer in that copy, and
    how to read a written directory the same way (kinds "hf_lm", "hf_vision",
    "hf_classifier")."""

    @property
    def path(self) -> Path: ...

    @property
    def dtype(self) -> str: ...

    @property
    def tied(self) -> bool: ...

    @property
    def norm(self) -> FinalNorm | None: ...

    @property
    def raw_b(self) -> NDArray[np.float64] | None: ...

    def load_fresh(self) -> Any:
        """A second, independent torch model (``torch.nn.Module``) to modify and save."""
        ...

    def output_layer(self, model: Any) -> Any:
        """The output ``torch.nn.Linear`` of a torch model of this kind."""
        ...

    def reopen(self, path: str | os.PathLike[str]) -> HFExportable:
        """The model saved at ``path``, read the same way (same view)."""
        ...


def _unfold(model: HFExportable, head: Head) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The stored (raw) weight and bias that realise ``head`` given in the model's view."""
    if head.rows != "folded":
        return np.array(head.W), np.array(head.bias)
    norm = model.norm
    if norm is None:
        raise UnembedError("The head is in the folded view, but the model has no final norm to "
                           "unfold it with.")
    g = norm.gain
    if np.any(g == 0):
        raise UnembedError("The final norm has zero gains, so folded rows cannot be unfolded; "
                           "export "
                           "from the stored rows (without fold=True).")
    U = head.W / g[None, :]
    b = head.bias - (U @ norm.shift if norm.shift is not None else 0.0)
    return U, np.asarray(b, dtype=np.float64)


def _copy_side_files(src: Path, dst: Path) -> None:
    """Tokenizer and other non-weight files of ``src`` not already written into ``dst``."""
    for f in src.iterdir():
        if not f.is_file() or (dst / f.name).exists():
            continue
        if f.is_symlink():
            try:
                contained(src, f.name)  # hub snapshots link into their blobs/; nothing else
            except UnembedError:
                continue
        if f.suffix in _WEIGHT_SUFFIXES or f.name.endswith(".index.json"):
            continue
        shutil.copy2(f, dst / f.name)


def export_hf(model: HFExportable, job: ExportJob) -> ExportResult:
    """Write the model with its output layer replaced into the directory ``job.tmp``
    (``save_pretrained``, side files copied), re-read it and compare both on the inputs."""
    import torch

    head = job.head
    step = job.bars.step("export")
    notes: list[str] = []
    U, b_new = _unfold(model, head)
    step("loading a copy of the model")
    loaded = model.load_fresh()
    layer = model.output_layer(loaded)
    b_write = bias_to_write(model, b_new, layer.bias is not None, notes)
    untied = False
    dtype = layer.weight.dtype
    if model.tied:
        untied = True
        loaded.config.tie_word_embeddings = False
        notes.append("the tied head was untied: the input embeddings are unchanged and "
                     "tie_word_embeddings is now false")
    layer.weight = torch.nn.Parameter(to_tensor(U, dtype), requires_grad=False)
    if b_write is not None:
        layer.bias = torch.nn.Parameter(to_tensor(b_write, dtype), requires_grad=False)
    step(f"writing {job.tmp.name}")
    loaded.save_pretrained(str(job.tmp))
    del loaded
    _copy_side_files(model.path, job.tmp)
    step("re-reading the written model")
    reread = model.reopen(job.tmp)
    step("running both models on the same inputs")
    x = (model.random_inputs(job.n_sequences, job.length, seed=job.seed) if job.inputs is None
         else job.inputs)
    z_old = model.model_logits(x)
    z_new = reread.model_logits(x)
    eq = compare_logits(z_old, z_new, head.link, dtype=model.dtype)
    new_head = reread.head
    require_equivalent(eq, job.out, "model")
    return ExportResult(out=job.out, kind=model.kind, head=new_head, equivalence=eq,
                        untied=untied, notes=tuple(notes))


register(HFCausalLM, export_hf)
register(HFClassifierSource, export_hf)
