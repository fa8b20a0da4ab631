"""Any torch ``nn.Module`` whose output layer is a ``Linear``: its weight and bias as a head.

The output layer is named by the caller (``load(module, component="classifier.2")``) or found
when that is unambiguous: the module has a single Linear, or, given an example input, exactly
one Linear produces the module's output. Labels come from the caller. The hidden state is what
the Linear receives; nothing is assumed about the layers before it (``reparam`` is unknown).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed.head import Head, Link
from unembed.sources._torch import logits_out, to_f64
from unembed.sources.torch_base import TorchSource

__all__ = ["TorchModuleModel", "find_output_linear"]


def _linears(module: Any) -> dict[str, Any]:
    import torch

    return {n: m for n, m in module.named_modules() if isinstance(m, torch.nn.Linear)}


def _as_tensor(x: Any, like: Any) -> Any:
    import torch

    if isinstance(x, torch.Tensor):
        return x
    arr = np.asarray(x)
    t = torch.from_numpy(np.array(arr)).to(like.device)
    return t.to(like.dtype) if arr.dtype.kind == "f" else t


def _call(module: Any, inputs: Any, like: Any) -> Any:
    if isinstance(inputs, (tuple, list)) and inputs and not np.isscalar(inputs[0]) and all(
            hasattr(x, "shape") for x in inputs):
        return module(*[_as_tensor(x, like) for x in inputs])
    if isinstance(inputs, dict):
        return module(**{k: _as_tensor(v, like) for k, v in inputs.items()})
    return module(_as_tensor(inputs, like))


def find_output_linear(module: Any, head_name: str | None = None,
                       example_input: Any = None) -> str:
    """The dotted name of the module's output Linear (see module docstring)."""
    import torch

    lin = _linears(module)
    if head_name is not None:
        try:
            sub = module.get_submodule(head_name)
        except AttributeError:
            raise UnembedError(f"The component {head_name!r} names no submodule of this "
                               f"{type(module).__name__}; its Linear layers are "
                               f"{', '.join(repr(n) for n in lin) or 'none'}.") from None
        if not isinstance(sub, torch.nn.Linear):
            raise UnembedError(f"The component {head_name!r} is a {type(sub).__name__}, not a "
                               f"Linear.")
        return head_name
    if len(lin) == 1:
        return next(iter(lin))
    if not lin:
        raise UnembedError(f"this {type(module).__name__} has no Linear layer to read a head from.")
    if example_input is not None:
        outs: dict[str, Any] = {}
        handles = [m.register_forward_hook(
            lambda _m, _a, o, n=n: outs.__setitem__(n, o)) for n, m in lin.items()]
        try:
            with torch.no_grad():
                y = _call(module, example_input, next(iter(lin.values())).weight)
        finally:
            for h in handles:
                h.remove()
        hits = [n for n, o in outs.items() if o is y or (
            isinstance(y, torch.Tensor) and o.shape == y.shape and torch.equal(o, y))]
        if len(hits) == 1:
            return hits[0]
    raise UnembedError(f"this {type(module).__name__} has {len(lin)} Linear layers "
                       f"({', '.join(repr(n) for n in list(lin)[:8])}); name the output layer with "
                       f"load(..., component=NAME).")


class TorchModuleModel(TorchSource):
    """A torch module read through its output Linear; the forward wrappers and the logits
    check are :class:`~unembed.sources.torch_base.TorchSource`'s: the first batch run is
    refused unless the module's output is the head's logits of what the Linear received
    (a module that ends in a softmax, or adds anything after its Linear, is not read as if it
    did not).

    Attributes
    ----------
    head : Head
        W = the Linear's weight (V, d), b = its bias; float64, ``dtype`` as stored.
    kind : str
        "torch".
    layer_name : str
        Dotted name of the output Linear inside ``module``.
    """

    kind = "torch"

    def __init__(self, module: Any, *, head_name: str | None = None, labels: Any = None,
                 link: Link = "softmax", example_input: Any = None, strict: bool = True,
                 source: str | None = None, device: str | None = None,
                 model_dtype: str | None = None) -> None:
        self.module = module.eval()
        self.layer_name = find_output_linear(module, head_name, example_input)
        self.layer = module.get_submodule(self.layer_name)
        self.dtype = str(self.layer.weight.dtype).removeprefix("torch.")
        self.family = type(module).__name__
        self._source = source or f"{type(module).__name__}.{self.layer_name}"
        self._labels, self._link, self._strict = labels, link, strict
        W = to_f64(self.layer.weight)
        self.raw_b = None if self.layer.bias is None else to_f64(self.layer.bias)
        meta = {"family": self.family,
                "layer": self.layer_name, "norm": None, "tied": False,
                "folded": False}
        self.head = Head(W=W, b=self.raw_b, labels=tuple(labels) if labels is not None else (),
                         link=link, reparam=None, dtype=self.dtype, meta=meta,
                         source=self._source, strict=strict)
        # the head is the module's as given (read above); its forward passes run on
        # ``device`` in ``model_dtype`` when named (the module is moved: torch's .to() is
        # in place for modules), else where and as the module is
        if model_dtype is not None:
            from unembed.device import resolve_dtype_name

            self.model_dtype = resolve_dtype_name(model_dtype)
        if device is not None or model_dtype is not None:
            self._place(self.module, device if device is not None
                        else str(self.layer.weight.device))

    def _where(self) -> object:
        return self._source

    def _torch_model(self) -> Any:
        return self.module

    def _head_module(self) -> Any:
        return self.layer

    def _batches(self, inputs: Any) -> list[Any]:
        return [inputs]

    def _run_batch(self, inputs: Any) -> tuple[NDArray[np.float64], Any]:
        """What the Linear receives and the module's output, flattened over leading
        dimensions; the output in the module's own precision (float32 or float64;
        float16/bfloat16 widened exactly to float32)."""
        import torch

        h, y = self._captured(lambda: _call(self.module, inputs, self.layer.weight))
        if not isinstance(y, torch.Tensor) or y.shape[-1] != self.head.n_labels:
            raise UnembedError(f"the module's output must be a tensor of logits (..., "
                               f"{self.head.n_labels}). Got {type(y).__name__} "
                               f"{tuple(getattr(y, 'shape', ()))}.")
        return h, logits_out(y.reshape(-1, self.head.n_labels))

    def random_inputs(self, n: int, length: int, *, seed: int = 0) -> Any:
        """Refused: what a module takes is its own (shapes, dtypes, meaning)."""
        raise UnembedError(f"a {self.family} module cannot draw random inputs (what it takes is "
                           f"its "
                           f"own); pass the inputs.")

    def layer_logits(self, h: Any) -> NDArray[np.float64]:
        """The output Linear itself applied to hidden states h (n, d), float64 result."""
        import torch

        with torch.no_grad():
            return to_f64(self.layer(_as_tensor(np.asarray(h), self.layer.weight)))

    def with_module(self, module: Any) -> TorchModuleModel:
        """The same reading (output Linear, labels, link) of another module."""
        return TorchModuleModel(module, head_name=self.layer_name, labels=self._labels,
                                link=self._link, strict=self._strict, source=self._source)
