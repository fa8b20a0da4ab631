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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
from numpy.typing import NDArray

from unembed.head import Head
from unembed.sources._torch import FinalNorm, guess_norm_kinds, logits_out, norm_from_module
from unembed.sources.hf_dir import from_pretrained, run_model
from unembed.sources.hf_lm import _transformers
from unembed.sources.torch_base import HFClassifierSource
from unembed.sources.torch_module import find_output_linear

__all__ = ["HFImageClassifier", "ImageInputs", "load_hf_vision"]

#: model_type -> final norm module right before the classifier (None: there is none)
VISION_NORMS: dict[str, str | None] = {
    "vit": "vit.layernorm",
    "deit": "deit.layernorm",
    "convnext": "convnext.layernorm",
    "resnet": None,
}


#: The side of the random images for a config without ``image_size`` (convolutional families
#: such as ResNet, RegNet, BiT take images of any size).
ANY_SIZE = 64


def _positive_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


@dataclass(frozen=True)
class ImageInputs:
    """The images an image classifier takes, (channels, height, width), read once from its
    config when the model is read (:meth:`from_config`).

    Examples
    --------
    >>> ImageInputs.from_config({"num_channels": 3, "image_size": 16}, Path("vit"))
    ImageInputs(channels=3, height=16, width=16, size_from='image_size')
    >>> ImageInputs.from_config({"num_channels": 1, "image_size": [32, 24]}, Path("d")).width
    24
    >>> ImageInputs.from_config({"num_channels": 3}, Path("resnet")).size_from
    'none in the config (a model of any input size): 64 x 64'
    >>> ImageInputs.from_config({"vision_config": {"num_channels": 3, "image_size": 8}},
    ...                         Path("clip")).height
    8
    >>> ImageInputs.from_config({"image_size": 16}, Path("d"))
    Traceback (most recent call last):
    unembed.errors.UnembedError: d/config.json: ... has no num_channels ...
    """

    channels: int
    height: int
    width: int
    #: where the size came from: "image_size", "vision_config.image_size", or none
    size_from: str

    @classmethod
    def from_config(cls, fields: Mapping[str, object], where: Path) -> ImageInputs:
        """From a config's fields (``config.to_dict()`` of the directory ``where``):

        * ``num_channels``, a positive integer: required (refused, naming the field, when it
          is missing or not one: the images' channels are not guessed);
        * ``image_size``, an integer (square images) or a pair (height, width); a config
          without it takes images of any size (:data:`ANY_SIZE` square); one that is neither
          is refused.

        A field missing at the top level is read from ``vision_config`` (CLIP, SigLIP).
        """
        from unembed._checks import UnembedError

        cfg = where / "config.json"

        def field(name: str) -> tuple[str, object] | None:
            if name in fields:
                return name, fields[name]
            sub = fields.get("vision_config")
            if isinstance(sub, Mapping) and name in sub:
                return f"vision_config.{name}", sub[name]
            return None

        chan = field("num_channels")
        if chan is None:
            raise UnembedError("the image classifier's config has no num_channels (nor its "
                                  "vision_config): the channels of the images it takes are "
                                  "not known; refused rather than guessed.", path=cfg)
        chan_name, channels = chan
        if not _positive_int(channels):
            raise UnembedError(f"the image classifier's {chan_name} is {channels!r}, not a "
                                  f"positive integer.", path=cfg)
        size = field("image_size")
        if size is None:
            return cls(channels, ANY_SIZE, ANY_SIZE,
                       f"none in the config (a model of any input size): {ANY_SIZE} x "
                       f"{ANY_SIZE}")
        name, v = size
        if _positive_int(v):
            return cls(channels, v, v, name)
        if isinstance(v, (list, tuple)) and len(v) == 2:
            h, w = v
            if _positive_int(h) and _positive_int(w):
                return cls(channels, h, w, name)
        raise UnembedError(f"the image classifier's {name} is {v!r}, neither a positive "
                              f"integer nor a pair (height, width) of them.", path=cfg)


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
    #: the images it takes, read from the config before the model loads
    images: ImageInputs

    def _setup(self) -> None:
        self.images = ImageInputs.from_config(self.config.to_dict(), self.path)

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
        """n random images (n, C, H, W) of the shape the config gives (:attr:`images`),
        standard normal (``length`` is ignored)."""
        im = self.images
        rng = np.random.default_rng(seed)
        return rng.standard_normal((n, im.channels, im.height, im.width)).astype(np.float32)

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
