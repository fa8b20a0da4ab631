"""torch modules written back: a state dict (``.safetensors``, or ``.pt`` via
``torch.save``) with the output Linear's weight (and bias) replaced, read back safely
(``weights_only=True``) into a copy of the module and compared with the original."""

from __future__ import annotations

import copy
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from unembed.equivalence import compare_logits
from unembed.export._common import (
    ExportJob,
    ExportResult,
    bias_to_write,
    random_hidden_for,
    require_equivalent,
    to_tensor,
    write_state_dict,
)
from unembed.export._registry import register
from unembed.model import LoadedModel
from unembed.sources.torch_module import TorchModuleModel

__all__ = ["TorchExportable", "export_torch"]


class TorchExportable(LoadedModel, Protocol):
    """A torch module read through its output Linear (kind "torch")."""

    @property
    def dtype(self) -> str: ...

    @property
    def raw_b(self) -> NDArray[np.float64] | None: ...

    @property
    def module(self) -> Any: ...

    @property
    def layer(self) -> Any: ...

    @property
    def layer_name(self) -> str: ...

    def layer_logits(self, h: Any) -> NDArray[np.float64]: ...

    def with_module(self, module: Any) -> TorchExportable: ...


def export_torch(model: TorchExportable, job: ExportJob) -> ExportResult:
    """Write the module's state dict with the output layer replaced to ``job.tmp``, load it
    back into a copy of the module and compare both (on the inputs, or on random hidden
    states fed to the output layer)."""
    import torch

    head, out, inputs = job.head, job.out, job.inputs
    notes: list[str] = []
    layer = model.layer
    b_write = bias_to_write(model, head.bias, layer.bias is not None, notes)
    new_module = copy.deepcopy(model.module)
    new_layer = new_module.get_submodule(model.layer_name)
    dtype = layer.weight.dtype
    with torch.no_grad():
        new_layer.weight.copy_(to_tensor(head.W, dtype))
        if b_write is not None:
            new_layer.bias.copy_(to_tensor(b_write, dtype))
    reread_state = write_state_dict(new_module, job.tmp, out.suffix)
    check_module = copy.deepcopy(model.module)
    check_module.load_state_dict(reread_state)
    reread = model.with_module(check_module)
    if inputs is None:
        notes.append("no inputs given: verified on random hidden states fed to the "
                     "output layer")
        h = random_hidden_for(model.head, job.seed)
        z_old, z_new = model.layer_logits(h), reread.layer_logits(h)
    else:
        z_old, z_new = model.model_logits(inputs), reread.model_logits(inputs)
    eq = compare_logits(z_old, z_new, head.link, dtype=model.dtype)
    require_equivalent(eq, out, "state dict")
    return ExportResult(out=out, kind=model.kind, head=reread.head, equivalence=eq,
                        notes=tuple(notes))


register(TorchModuleModel, export_torch)
