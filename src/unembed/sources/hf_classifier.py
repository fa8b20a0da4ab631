"""HuggingFace text classifiers from a local directory: sequence classification
(``...ForSequenceClassification``, one prediction per text) and token classification
(``...ForTokenClassification``, one per token). The head is the classifier Linear (``score``
for decoder models, ``classifier`` or ``classifier.out_proj`` for encoders), labels from
``id2label``; the hidden state is what that Linear receives, at the position the model reads
its prediction from (sequence classifiers built on decoders read the last token: the position
is found by matching the Linear's output with the model's logits exactly, never assumed).

Such a directory is never read as a language model: its token embedding is not its head.
Only the stored rows exist (the layers between the trunk's final norm and the classifier are
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

from unembed._checks import UnembedError
from unembed.head import Head, Link
from unembed.sources._torch import capture_inputs, to_f64, to_native
from unembed.sources.hf_dir import (
    from_pretrained,
    load_tokenizer,
    run_model,
    transformers_module,
)
from unembed.sources.torch_base import HFClassifierSource, refuse_fold

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
        raise UnembedError(f"cannot find the classifier exactly (Linear layers named "
                               f"score/classifier with {n_labels} outputs: "
                               f"{', '.join(cands) or 'none'}); refused rather than guessed.",
                           path=path)
    return cands[0]


class HFTextClassifier(HFClassifierSource):
    """A HuggingFace sequence or token classifier (see :func:`load_hf_classifier`); the shared
    parts (the classifier Linear, labels, the forward wrappers and the logits check) are
    :class:`~unembed.sources.torch_base.HFClassifierSource`'s.

    Attributes
    ----------
    head : Head
        The classifier Linear (V, d) float64 with its bias; labels from ``id2label``;
        ``meta["task"]`` is "sequence" or "token".
    kind : str
        "hf_classifier".
    """

    kind = "hf_classifier"
    task: str
    link: Link

    def _setup(self) -> None:
        task = task_of(self.config)
        if task is None:
            raise UnembedError("config.json names no sequence or token "
                                        "classification architecture.", path=self.path)
        self.task = task
        self.noun = f"{task} classifier"
        if self.rows == "folded":
            raise refuse_fold(self.path, f"a {self.family} {task} classifier", "classifier")
        problem = getattr(self.config, "problem_type", None)
        self.n_outputs = int(getattr(self.config, "num_labels", 0))
        if problem == "regression" or self.n_outputs < 2:
            raise UnembedError(f"a regression model ({self.n_outputs} output) has no "
                                        f"labels to read a head from.", path=self.path)
        self.link = "sigmoid" if problem == "multi_label_classification" else "softmax"

    def _load(self) -> Any:
        tf = transformers_module()
        auto = (tf.AutoModelForSequenceClassification if self.task == "sequence"
                else tf.AutoModelForTokenClassification)
        return from_pretrained(auto, self.path, f"a {self.task} classifier",
                               trust_remote_code=self.trust_remote_code)

    def _find_layer(self) -> str:
        return _classifier_name(self.model, self.n_outputs, self.path)

    def _build_head(self, strict: bool) -> Head:
        return self._classifier_head(
            strict, link=self.link,
            reparam_reason="the classifier's input leaves a pooling, activation or norm "
                           "layer, which cannot absorb every invertible A",
            meta={"task": self.task})

    # ------------------------------------------------------------------ inputs
    @cached_property
    def tokenizer(self) -> Any:
        """The directory's tokenizer, or None."""
        return load_tokenizer(self.path, trust_remote_code=self.trust_remote_code)

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        if self.tokenizer is None:
            raise UnembedError("has no tokenizer, so text cannot be tokenized; pass "
                                        "token ids instead.", path=self.path)
        return [int(i) for i in self.tokenizer(text, add_special_tokens=False)["input_ids"]]

    def _vocab(self) -> int:
        v = getattr(self.config, "vocab_size", None)
        if not isinstance(v, int):
            raise UnembedError("config.json has no vocab_size; token ids cannot be "
                                        "checked.", path=self.path)
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
                raise UnembedError("must be text or integer token ids of shape "
                                   f"(T,) or (B, T). Got dtype {arr.dtype}, shape {arr.shape} "
                                   f"instead.", argument="inputs")
            seqs = list(np.atleast_2d(arr.astype(np.int64)))
        v = self._vocab()
        for s in seqs:
            if s.size and (s.min() < 0 or s.max() >= v):
                raise UnembedError(f"The 'inputs' token ids must be in [0, {v}). Got ids from "
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
    def _batches(self, inputs: Any) -> list[NDArray[np.int64]]:
        # texts are run one at a time (no padding, so no padding token is assumed)
        return self.as_ids(inputs)

    def _run_batch(self, ids: NDArray[np.int64]) -> tuple[NDArray[np.float64], Any]:
        """One row per text (sequence classifiers) or per token (token classifiers)."""
        import torch

        layer = self._head_module()
        outs: dict[str, Any] = {}
        handle = layer.register_forward_hook(
            lambda _m, _a, o: outs.__setitem__("y", o))
        try:
            with capture_inputs({"head": layer}) as cap, torch.no_grad():
                out = run_model(self.path, lambda: self.model(
                    input_ids=torch.as_tensor(ids[None, :], device=self._device)))
        finally:
            handle.remove()
        x, y, z = cap["head"], outs["y"].detach(), out.logits.detach()
        if self.task == "token" or x.dim() == 2:
            h, zz = x.reshape(-1, x.shape[-1]), z.reshape(-1, z.shape[-1])
        else:  # (1, T, d) through the Linear, then one position read: find which
            hits = [t for t in range(y.shape[1]) if torch.equal(y[0, t], z[0])]
            if not hits:
                raise UnembedError("the classifier's logits are not its Linear's "
                                            "output at any one position; cannot be handled "
                                            "exactly.", path=self.path)
            h, zz = x[0, hits[-1]][None, :], z
        if h.shape[0] != zz.shape[0]:
            raise UnembedError("the classifier's inputs and the model's logits do not "
                                        "line up; cannot be handled exactly.", path=self.path)
        return to_f64(h), to_native(zz)  # host copies: the batches are single texts


def load_hf_classifier(path: str | os.PathLike[str], *, fold: bool = False,
                       strict: bool = True, trust_remote_code: bool = False,
                       device: str | None = None,
                       model_dtype: str | None = None) -> HFTextClassifier:
    """Read the classifier head of a HuggingFace sequence or token classifier from a local
    directory (see the module docstring)."""
    return HFTextClassifier(Path(path), fold=fold, strict=strict,
                            trust_remote_code=trust_remote_code, device=device,
                            model_dtype=model_dtype)
