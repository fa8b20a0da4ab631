"""HuggingFace text classifiers from a local directory: sequence classification
(``...ForSequenceClassification``, one prediction per text) and token classification
(``...ForTokenClassification``, one per token). The head is the classifier Linear (``score``
for decoder models, ``classifier`` or ``classifier.out_proj`` for encoders), labels from
``id2label``; the hidden state is what that Linear receives, at the position the model reads
its prediction from (sequence classifiers built on decoders read the last token: the position
is found by matching the Linear's output with the model's logits exactly, never assumed).

Such a directory is never read as a language model: its token embedding is not its head.
Only the raw view exists (the layers between the trunk's final norm and the classifier are
not a norm's gain). A regression model (one output, ``problem_type: regression``) has no
labels and is refused.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import fail, file_error
from unembed.head import Head, Link
from unembed.sources._torch import capture_inputs, check_logits_equal, place, to_f64, to_native
from unembed.sources.hf_dir import (
    from_pretrained,
    load_tokenizer,
    read_config,
    run_model,
    transformers_module,
)

__all__ = ["CLASSIFIER_SUFFIXES", "HFTextClassifier", "load_hf_classifier"]

#: architecture name endings read by this module, and what each predicts per input
CLASSIFIER_SUFFIXES = {"ForSequenceClassification": "sequence",
                       "ForTokenClassification": "token"}


def task_of(config: Any) -> str | None:
    """"sequence", "token" or None, from ``config.architectures``."""
    for a in getattr(config, "architectures", None) or []:
        for suffix, task in CLASSIFIER_SUFFIXES.items():
            if str(a).endswith(suffix):
                return task
    return None


def _classifier_name(model: Any, n_labels: int, path: Path) -> str:
    import torch

    cands = [n for n, m in model.named_modules()
             if n.split(".")[0] in ("score", "classifier") and isinstance(m, torch.nn.Linear)
             and m.out_features == n_labels]
    if len(cands) != 1:
        raise file_error(path, f"cannot find the classifier exactly (Linear layers named "
                               f"score/classifier with {n_labels} outputs: "
                               f"{', '.join(cands) or 'none'}); refused rather than guessed.")
    return cands[0]


class HFTextClassifier:
    """A HuggingFace sequence or token classifier (see :func:`load_hf_classifier`).

    Attributes
    ----------
    head : Head
        The classifier Linear (V, d) float64 with its bias; labels from ``id2label``;
        ``meta["task"]`` is "sequence" or "token".
    kind : str
        "hf_classifier".
    """

    kind = "hf_classifier"
    tied = False
    norm = None
    view = "raw"

    def __init__(self, path: Path, *, fold: bool = False, strict: bool = True,
                 trust_remote_code: bool = False, device: str | None = None,
                 model_dtype: str | None = None) -> None:
        from unembed.device import resolve_device, resolve_dtype_name, torch_dtype

        self.path = path
        self.trust_remote_code = trust_remote_code
        self.device_name = device
        self.model_dtype = resolve_dtype_name(model_dtype)
        self.config = read_config(path, trust_remote_code=trust_remote_code)
        task = task_of(self.config)
        if task is None:
            raise file_error(path, "config.json names no sequence or token classification "
                                   "architecture.")
        self.task = task
        self.family = str(getattr(self.config, "model_type", "?"))
        if fold:
            raise file_error(path, f"a {self.family} {task} classifier has no final norm right "
                                   f"before its classifier, so there is no gain to fold; use "
                                   f"the raw view.")
        problem = getattr(self.config, "problem_type", None)
        n_labels = int(getattr(self.config, "num_labels", 0))
        if problem == "regression" or n_labels < 2:
            raise file_error(path, f"a regression model ({n_labels} output) has no labels to "
                                   f"read a head from.")
        self.link: Link = "sigmoid" if problem == "multi_label_classification" else "softmax"
        self.model = self._load()
        self.layer_name = _classifier_name(self.model, n_labels, path)
        layer = self.model.get_submodule(self.layer_name)
        self.dtype = str(layer.weight.dtype).removeprefix("torch.")
        self.raw_W = to_f64(layer.weight)
        self.raw_b = None if layer.bias is None else to_f64(layer.bias)
        self.head = self._build_head(strict)
        # the head is the checkpoint's (read above); the forward passes run where asked
        self._device = resolve_device(device)
        self.model = place(self.model, self._device, torch_dtype(self.model_dtype))
        self._check()

    def _load(self) -> Any:
        tf = transformers_module()
        auto = (tf.AutoModelForSequenceClassification if self.task == "sequence"
                else tf.AutoModelForTokenClassification)
        return from_pretrained(auto, self.path, f"a {self.task} classifier",
                               trust_remote_code=self.trust_remote_code)

    def _build_head(self, strict: bool) -> Head:
        id2label = getattr(self.config, "id2label", None) or {}
        n = self.raw_W.shape[0]
        labels = tuple(str(id2label.get(i, id2label.get(str(i), i))) for i in range(n))
        if len(set(labels)) != len(labels):
            labels = tuple(f"{s} [#{i}]" if labels.index(s) != i else s
                           for i, s in enumerate(labels))
        meta: dict[str, Any] = {
            "source": str(self.path), "family": self.family, "task": self.task,
            "norm": None, "norm_kind": None, "tied": False, "folded": False,
            "layer": self.layer_name, "labels_from": "id2label"}
        return Head(W=self.raw_W, b=self.raw_b, labels=labels, link=self.link, reparam=False,
                    dtype=self.dtype, meta=meta, strict=strict,
                    reparam_reason="the classifier's input leaves a pooling, activation or "
                                   "norm layer, which cannot absorb every invertible A")

    def _check(self) -> None:
        h, z = self.forward(self.random_inputs(2, 6, seed=0))
        check_logits_equal(self.path, f"the {self.family} classifier's logits",
                           self.head.logits(h), z, self.model_dtype or self.dtype)

    # ------------------------------------------------------------------ inputs
    @cached_property
    def tokenizer(self) -> Any:
        """The directory's tokenizer, or None."""
        return load_tokenizer(self.path, trust_remote_code=self.trust_remote_code)

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        if self.tokenizer is None:
            raise file_error(self.path, "has no tokenizer, so text cannot be tokenized; pass "
                                        "token ids instead.")
        return [int(i) for i in self.tokenizer(text, add_special_tokens=False)["input_ids"]]

    def _vocab(self) -> int:
        v = getattr(self.config, "vocab_size", None)
        if not isinstance(v, int):
            raise file_error(self.path, "config.json has no vocab_size; token ids cannot be "
                                        "checked.")
        return v

    def as_ids(self, inputs: Any) -> list[NDArray[np.int64]]:
        """Inputs as 1-D token id arrays: text, a list of texts, or ids (T,) or (B, T)."""
        if isinstance(inputs, str):
            seqs = [np.asarray(self.tokenize(inputs), dtype=np.int64)]
        elif isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], str):
            seqs = [np.asarray(self.tokenize(t), dtype=np.int64) for t in inputs]
        else:
            arr = np.asarray(inputs)
            if arr.dtype.kind not in "iu" or arr.ndim not in (1, 2):
                raise fail(f"The 'inputs' argument must be text or integer token ids of shape "
                           f"(T,) or (B, T). Got dtype {arr.dtype}, shape {arr.shape} instead.")
            seqs = list(np.atleast_2d(arr.astype(np.int64)))
        v = self._vocab()
        for s in seqs:
            if s.size and (s.min() < 0 or s.max() >= v):
                raise fail(f"The 'inputs' token ids must be in [0, {v}). Got ids from "
                           f"{s.min()} to {s.max()}.")
        return [s for s in seqs if s.size]

    def random_inputs(self, n: int, length: int, *, seed: int = 0) -> NDArray[np.int64]:
        """Token ids (n, length) drawn uniformly from the vocabulary."""
        rng = np.random.default_rng(seed)
        v = self._vocab()
        if self.tokenizer is not None:
            v = min(v, len(self.tokenizer))
        return rng.integers(0, v, size=(n, max(1, length)), dtype=np.int64)

    # ------------------------------------------------------------------ running
    def forward_native(self, inputs: Any) -> tuple[NDArray[np.float64], NDArray[Any]]:
        """(hidden states (n, d) float64, logits (n, V) in the model's precision): one row
        per text (sequence classifiers) or per token (token classifiers). Texts are run one
        at a time (no padding, so no padding token is assumed)."""
        import torch

        layer = self.model.get_submodule(self.layer_name)
        hs, zs = [], []
        for ids in self.as_ids(inputs):
            outs: dict[str, Any] = {}
            handle = layer.register_forward_hook(
                lambda _m, _a, o, outs=outs: outs.__setitem__("y", o))
            try:
                with capture_inputs({"head": layer}) as cap, torch.no_grad():
                    out = run_model(self.path, lambda ids=ids: self.model(
                        input_ids=torch.as_tensor(ids[None, :], device=self._device)))
            finally:
                handle.remove()
            x, y, z = cap["head"], outs["y"].detach(), out.logits.detach()
            if self.task == "token" or x.dim() == 2:
                h, zz = x.reshape(-1, x.shape[-1]), z.reshape(-1, z.shape[-1])
            else:  # (1, T, d) through the Linear, then one position read: find which
                hits = [t for t in range(y.shape[1]) if torch.equal(y[0, t], z[0])]
                if not hits:
                    raise file_error(self.path, "the classifier's logits are not its Linear's "
                                                "output at any one position; cannot be "
                                                "handled exactly.")
                h, zz = x[0, hits[-1]][None, :], z
            if h.shape[0] != zz.shape[0]:
                raise file_error(self.path, "the classifier's inputs and the model's logits "
                                            "do not line up; cannot be handled exactly.")
            hs.append(to_f64(h))
            zs.append(to_native(zz))
        if not hs:
            return np.zeros((0, self.head.d)), np.zeros((0, self.head.n_labels))
        return np.concatenate(hs), np.concatenate(zs)  # host copies: the batches are texts

    def forward(self, inputs: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(hidden states (n, d), logits (n, V)), float64."""
        h, z = self.forward_native(inputs)
        return h, np.asarray(z, dtype=np.float64)

    def hidden_states(self, inputs: Any) -> NDArray[np.float64]:
        """What the classifier Linear receives, (n, d) float64."""
        return self.forward(inputs)[0]

    def model_logits(self, inputs: Any) -> NDArray[np.float64]:
        """The model's own logits (n, V), float64."""
        return self.forward(inputs)[1]

    # ------------------------------------------------------------------ for exports
    def load_fresh(self) -> Any:
        return self._load()

    def output_layer(self, model: Any) -> Any:
        return model.get_submodule(self.layer_name)

    def reopen(self, path: str | os.PathLike[str]) -> HFTextClassifier:
        return HFTextClassifier(Path(path), strict=self.head.strict,
                                trust_remote_code=self.trust_remote_code,
                                device=self.device_name, model_dtype=self.model_dtype)


def load_hf_classifier(path: str | os.PathLike[str], *, fold: bool = False,
                       strict: bool = True, trust_remote_code: bool = False,
                       device: str | None = None,
                       model_dtype: str | None = None) -> HFTextClassifier:
    """Read the classifier head of a HuggingFace sequence or token classifier from a local
    directory (see the module docstring)."""
    return HFTextClassifier(Path(path), fold=fold, strict=strict,
                            trust_remote_code=trust_remote_code, device=device,
                            model_dtype=model_dtype)
