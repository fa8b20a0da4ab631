"""HuggingFace image classifiers from a local directory (ViT, ResNet, ConvNeXt, ...): the
classifier Linear and ``id2label``.

Views as for language models (:mod:`unembed.sources.hf_lm`): ``raw`` reads the classifier as
stored, with the hidden state it receives; ``folded`` folds the final LayerNorm (ViT's
``vit.layernorm``, taken at the [CLS] position; ConvNeXt's ``convnext.layernorm`` on the pooled
features) into the rows. ResNet has no norm right before its classifier (the pooled features
pass through ReLU and average pooling), so it has only the raw view.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed import _reprs
from unembed._checks import fail
from unembed.bounds import Rows
from unembed.head import Head
from unembed.sources._torch import (
    FinalNorm,
    as_f64,
    capture_inputs,
    check_logits_equal,
    guess_norm_kinds,
    logits_out,
    norm_from_module,
    place,
    to_f64,
)
from unembed.sources.hf_dir import from_pretrained, run_model
from unembed.sources.hf_lm import _transformers, norm_hidden_bound, read_config
from unembed.sources.torch_module import find_output_linear

__all__ = ["HFImageClassifier", "load_hf_vision"]

#: model_type -> final norm module right before the classifier (None: there is none)
VISION_NORMS: dict[str, str | None] = {
    "vit": "vit.layernorm",
    "deit": "deit.layernorm",
    "convnext": "convnext.layernorm",
    "resnet": None,
}


def _load_torch(path: Path, trust_remote_code: bool = False) -> Any:
    tf = _transformers()
    return from_pretrained(tf.AutoModelForImageClassification, path, "an image classifier",
                           trust_remote_code=trust_remote_code)


def _classifier_name(model: Any) -> str:
    import torch

    cands = [n for n, m in model.named_modules()
             if n.split(".")[0] == "classifier" and isinstance(m, torch.nn.Linear)]
    return cands[0] if len(cands) == 1 else find_output_linear(model)


class HFImageClassifier:
    """A HuggingFace image classifier (see :func:`load_hf_vision`).

    ``head.meta`` has "source", "family", "norm", "tied" (always False), "folded";
    ``head.rows`` is "stored" or "folded", and ``head.hidden_bound`` the box every hidden state
    lies in when a final norm feeds the classifier (see :func:`unembed.bounds.norm_box`).
    """

    kind = "hf_vision"
    __repr__ = _reprs.model_repr
    _repr_html_ = _reprs.model_html
    tied = False

    def __init__(self, path: Path, *, fold: bool = False, strict: bool = True,
                 trust_remote_code: bool = False, device: str | None = None,
                 model_dtype: str | None = None) -> None:
        from unembed.device import resolve_device, resolve_dtype_name, torch_dtype

        self.path = path
        self.trust_remote_code = trust_remote_code
        self.device_name = device
        self.model_dtype = resolve_dtype_name(model_dtype)
        self.config = read_config(path, trust_remote_code=trust_remote_code)
        self.family = str(getattr(self.config, "model_type", "?"))
        self.view = "folded" if fold else "raw"
        self.model = _load_torch(path, trust_remote_code)
        self.layer_name = _classifier_name(self.model)
        layer = self.model.get_submodule(self.layer_name)
        self.dtype = str(layer.weight.dtype).removeprefix("torch.")
        self.raw_W = to_f64(layer.weight)
        self.raw_b = None if layer.bias is None else to_f64(layer.bias)
        self.norm = self._find_norm()
        if fold and self.norm is None:
            raise fail(f"{path}: the {self.family} classifier has no final norm right before "
                       f"its classifier, so there is no gain to fold; use the raw view.")
        self.head = self._build_head(strict)
        # the head is the checkpoint's (read above); the forward passes run where asked
        self._device = resolve_device(device)
        self.model = place(self.model, self._device, torch_dtype(self.model_dtype))
        self._check()

    def _find_norm(self) -> FinalNorm | None:
        name = VISION_NORMS.get(self.family, "")
        if name is None:
            return None
        names = [name] if name else [
            n for n, _ in self.model.named_modules()
            if n.split(".")[-1] in ("layernorm", "norm", "final_layernorm")
            and not any(p.isdigit() for p in n.split("."))]
        for n in names:
            try:
                mod = self.model.get_submodule(n)
            except AttributeError:
                continue
            kinds = guess_norm_kinds(mod)
            if kinds:
                return norm_from_module(n, mod, kinds[0])
        return None

    def _build_head(self, strict: bool) -> Head:
        W, b = self.raw_W, self.raw_b
        ns = None
        if self.view == "folded":
            assert self.norm is not None
            W = self.raw_W * self.norm.gain[None, :]
            if self.norm.shift is not None:
                b = self.raw_W @ self.norm.shift + (0.0 if b is None else b)
            if self.norm.kind == "layernorm":
                ns = np.ones((W.shape[1], 1))
        id2label = getattr(self.config, "id2label", None) or {}
        labels = tuple(str(id2label.get(i, id2label.get(str(i), i))) for i in range(W.shape[0]))
        if len(set(labels)) != len(labels):
            labels = tuple(f"{s} [#{i}]" if labels.index(s) != i else s
                           for i, s in enumerate(labels))
        meta: dict[str, Any] = {
                "source": str(self.path), "family": self.family,
                "norm": None if self.norm is None else self.norm.describe(),
                "norm_kind": None if self.norm is None else self.norm.kind, "tied": False,
                "folded": self.view == "folded", "layer": self.layer_name}
        rows: Rows = "folded" if self.view == "folded" else "stored"
        bound = None
        # the box holds when the norm's output is what the classifier reads: known families
        # (raw view) or the folded view (h = n, checked against the logits by _check)
        if self.norm is not None and (self.view == "folded" or VISION_NORMS.get(self.family)):
            bound = norm_hidden_bound(self.norm, rows, self.dtype)
        return Head(W=W, b=b, labels=labels, link="softmax", reparam=False, null_space=ns,
                    dtype=self.dtype, meta=meta, strict=strict, rows=rows, hidden_bound=bound,
                    reparam_reason="the hidden state leaves a norm or a pooling layer, which "
                                   "cannot absorb every invertible A",
                    null_space_reason=("LayerNorm's normalised state sums to zero"
                                       if ns is not None else None))

    def _check(self) -> None:
        h, z = self.forward(self.random_inputs(2, seed=0))
        check_logits_equal(self.path, f"the {self.family} classifier's logits",
                           self.head.logits(h), z, self.model_dtype or self.dtype)

    # ------------------------------------------------------------------ LoadedModel
    def random_inputs(self, n: int, length: int = 0, *, seed: int = 0) -> NDArray[np.float32]:
        """n random images (n, C, H, W), standard normal (``length`` is ignored)."""
        size = getattr(self.config, "image_size", 64)
        size = size if isinstance(size, int) else 64
        ch = int(getattr(self.config, "num_channels", 3))
        rng = np.random.default_rng(seed)
        return rng.standard_normal((n, ch, size, size)).astype(np.float32)

    def forward(self, inputs: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(hidden states (n, d), logits (n, V)) for images (n, C, H, W), float64."""
        h, z = self.forward_native(inputs)
        return h, as_f64(z)

    def forward_native(self, inputs: Any) -> tuple[NDArray[np.float64], Any]:
        """As :meth:`forward`, the logits in the model's own precision (a numpy array on the
        CPU, the tensor on an accelerator; see :func:`unembed.sources._torch.logits_out`)."""
        import torch

        x = torch.as_tensor(np.asarray(inputs, dtype=np.float32), device=self._device)
        mods = {"head": self.model.get_submodule(self.layer_name)}
        if self.view == "folded":
            assert self.norm is not None
            mods["norm"] = self.model.get_submodule(self.norm.name)
        with capture_inputs(mods) as cap, torch.no_grad():
            out = run_model(self.path, lambda: self.model(
                pixel_values=x.to(mods["head"].weight.dtype)))
        z = logits_out(out.logits)
        if self.view == "folded":
            assert self.norm is not None
            xn = to_f64(cap["norm"])
            if xn.ndim == 3:  # token sequence: the classifier reads position 0 ([CLS])
                xn = xn[:, 0, :]
            h = self.norm.normalise(xn.reshape(-1, self.head.d))
        else:
            h = to_f64(cap["head"]).reshape(-1, self.head.d)
        return h, z

    def hidden_states(self, inputs: Any) -> NDArray[np.float64]:
        """What the head consumes: the classifier's input (raw) or the normalised state
        without gain and shift (folded), (n, d) float64."""
        return self.forward(inputs)[0]

    def model_logits(self, inputs: Any) -> NDArray[np.float64]:
        """The model's own logits (n, V), float64."""
        return self.forward(inputs)[1]

    # ------------------------------------------------------------------ for exports
    def load_fresh(self) -> Any:
        return _load_torch(self.path, self.trust_remote_code)

    def output_layer(self, model: Any) -> Any:
        return model.get_submodule(self.layer_name)

    def reopen(self, path: str | os.PathLike[str]) -> HFImageClassifier:
        return HFImageClassifier(Path(path), fold=self.view == "folded",
                                 strict=self.head.strict,
                                 trust_remote_code=self.trust_remote_code,
                                 device=self.device_name, model_dtype=self.model_dtype)


def load_hf_vision(path: str | os.PathLike[str], *, fold: bool = False,
                   strict: bool = True, trust_remote_code: bool = False,
                   device: str | None = None, model_dtype: str | None = None
                   ) -> HFImageClassifier:
    """Read the classifier head of a HuggingFace image classifier from a local directory.

    The returned model's ``head`` is (n_labels, d) float64 with ``id2label`` as labels; its
    hidden states are computed from images (n, C, H, W).
    """
    return HFImageClassifier(Path(path), fold=fold, strict=strict,
                             trust_remote_code=trust_remote_code, device=device,
                             model_dtype=model_dtype)
