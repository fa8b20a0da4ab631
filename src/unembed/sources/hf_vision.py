"""HuggingFace image classifiers from a local directory (ViT, ResNet, ConvNeXt, ...): the
classifier Linear and ``id2label``.

Rows as for language models (:mod:`unembed.sources.hf_lm`): "stored" reads the classifier as
stored, with the hidden state it receives; "folded" folds the final LayerNorm (ViT's
``vit.layernorm``, taken at the [CLS] position; ConvNeXt's ``convnext.layernorm`` on the pooled
features) into the rows. ResNet has no norm right before its classifier (the pooled features
pass through ReLU and average pooling), so it has only its stored rows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed.head import Head
from unembed.sources._torch import FinalNorm, guess_norm_kinds, logits_out, norm_from_module
from unembed.sources.hf_dir import from_pretrained, run_model
from unembed.sources.hf_lm import _transformers
from unembed.sources.torch_base import HFClassifierSource
from unembed.sources.torch_module import find_output_linear

__all__ = ["HFImageClassifier", "load_hf_vision"]

#: model_type -> final norm module right before the classifier (None: there is none)
VISION_NORMS: dict[str, str | None] = {
    "vit": "vit.layernorm",
    "deit": "deit.layernorm",
    "convnext": "convnext.layernorm",
    "resnet": None,
}


def _classifier_name(model: Any) -> str:
    import torch

    cands = [n for n, m in model.named_modules()
             if n.split(".")[0] == "classifier" and isinstance(m, torch.nn.Linear)]
    return cands[0] if len(cands) == 1 else find_output_linear(model)


class HFImageClassifier(HFClassifierSource):
    """A HuggingFace image classifier (see :func:`load_hf_vision`); the shared parts (the
    classifier Linear, labels, final-norm folding, the forward wrappers and the logits check)
    are :class:`~unembed.sources.torch_base.HFClassifierSource`'s.

    ``head.meta`` has "source", "family", "norm", "tied" (always False), "folded";
    ``head.rows`` is "stored" or "folded", and ``head.hidden_bound`` the box every hidden state
    lies in when a final norm feeds the classifier (see :func:`unembed.bounds.norm_box`).
    """

    kind = "hf_vision"

    def _load(self) -> Any:
        tf = _transformers()
        return from_pretrained(tf.AutoModelForImageClassification, self.path,
                               "an image classifier", trust_remote_code=self.trust_remote_code)

    def _find_layer(self) -> str:
        return _classifier_name(self.model)

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
        # the norm's output is what the classifier reads in the known families (the box and
        # the null space hold there); elsewhere only the folded rows, whose hidden state is
        # the captured n itself (checked against the logits on the first batch)
        return self._classifier_head(
            strict, link="softmax", norm_feeds_head=bool(VISION_NORMS.get(self.family)),
            reparam_reason="the hidden state leaves a norm or a pooling layer, which cannot "
                           "absorb every invertible A", meta={})

    # ------------------------------------------------------------------ running
    def random_inputs(self, n: int, length: int = 0, *, seed: int = 0) -> NDArray[np.float32]:
        """n random images (n, C, H, W), standard normal (``length`` is ignored)."""
        size = getattr(self.config, "image_size", 64)
        size = size if isinstance(size, int) else 64
        ch = int(getattr(self.config, "num_channels", 3))
        rng = np.random.default_rng(seed)
        return rng.standard_normal((n, ch, size, size)).astype(np.float32)

    def _batches(self, inputs: Any) -> list[NDArray[np.float32]]:
        return [np.asarray(inputs, dtype=np.float32)]

    def _norm_position(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        # a token sequence (n, T, d): the classifier reads position 0 ([CLS])
        return x[:, 0, :] if x.ndim == 3 else x

    def _run_batch(self, batch: NDArray[np.float32]) -> tuple[NDArray[np.float64], Any]:
        import torch

        x = torch.as_tensor(batch, device=self._device)
        dtype = self._head_module().weight.dtype
        h, out = self._captured(lambda: run_model(self.path, lambda: self.model(
            pixel_values=x.to(dtype))))
        return h, logits_out(out.logits)


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
