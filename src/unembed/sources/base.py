"""The interface every model source returns: an exact head plus the map from inputs to the
hidden states that head consumes.

Invariant (tested per family): for any inputs,
``head.logits(model.hidden_states(inputs))`` equals ``model.model_logits(inputs)`` up to the
model's float precision. Analyses run the head themselves in float64 on those hidden states.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed.head import Head
from unembed.sources._torch import FinalNorm

if TYPE_CHECKING:
    from unembed.sources.spacy_pipeline import SpacyComponent
    from unembed.sources.tlens import TLModel


@runtime_checkable
class LoadedModel(Protocol):
    """A model read from a source.

    Attributes
    ----------
    head : Head
        The exact head; ``head.rows`` says "stored" or "folded" (final norm's gain in W).
    kind : str
        "hf_lm", "hf_vision", "torch", "sklearn" or "file".
    """

    head: Head
    kind: str

    def hidden_states(self, inputs: Any) -> NDArray[np.float64]:
        """Hidden states of shape (n, d) for a batch of inputs, flattened over positions for
        language models (inputs of token ids (B, T) give n = B * T), in float64."""
        ...

    def model_logits(self, inputs: Any) -> NDArray[np.float64]:
        """The model's own logits (n, V) for the same inputs, flattened the same way."""
        ...

    def forward(self, inputs: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(hidden states (n, d), logits (n, V)) of one pass, float64: the model's own
        logits where it computes them itself (torch, TransformerLens, spaCy); the head's
        where the head is the whole model (weight files, scikit-learn's linear models)."""
        ...

    def random_inputs(self, n: int, length: int, *, seed: int = 0) -> Any:
        """n inputs the model takes, drawn at random (token ids of ``length`` tokens for
        language models, images, features); refused (UnembedError) by a model whose inputs
        have no distribution to draw from (a bare head's hidden states, a pipeline's texts)."""
        ...


def require_loaded(model: object, where: str) -> LoadedModel:
    """``model`` as a :class:`LoadedModel`, checked once where it enters (``where``: the
    function); a one-line refusal naming what it lacks otherwise (a model of your own:
    subclass :class:`HeadModel`)."""
    if isinstance(model, LoadedModel):
        return model
    missing = [m for m in ("head", "kind", "hidden_states", "model_logits", "forward",
                           "random_inputs") if not hasattr(model, m)]
    raise UnembedError(f"{where}: a {type(model).__name__} is not a loaded model (it has no "
                       f"{', '.join(missing)}); read models with unembed.load, or subclass "
                       f"unembed.sources.base.HeadModel.")


class HeadModel:
    """Defaults for a :class:`LoadedModel` whose head is the whole model (a weight file, a
    linear scikit-learn model, a model of your own): :meth:`forward` is the hidden states with
    the head's float64 logits of them; :meth:`random_inputs` is refused. Subclass it and
    give ``head``, ``kind`` and ``hidden_states``.

    Examples
    --------
    >>> import numpy as np
    >>> from unembed import Head
    >>> class Tanh(HeadModel):
    ...     kind = "mine"
    ...     def __init__(self):
    ...         self.head = Head(np.eye(2), labels=["a", "b"])
    ...     def hidden_states(self, x):
    ...         return np.tanh(np.asarray(x, dtype=np.float64))
    >>> h, z = Tanh().forward([[0.0, 1.0]])
    >>> bool(np.allclose(z, np.tanh([[0.0, 1.0]])))
    True
    """

    head: Head
    kind: str

    def hidden_states(self, inputs: Any) -> NDArray[np.float64]:
        raise NotImplementedError

    def model_logits(self, inputs: Any) -> NDArray[np.float64]:
        """The head's logits (n, V), float64: the head is the whole model."""
        return self.head.logits(self.hidden_states(inputs))

    def forward(self, inputs: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(the hidden states, the head's logits of them), float64."""
        h = self.hidden_states(inputs)
        return h, self.head.logits(h)

    def random_inputs(self, n: int, length: int, *, seed: int = 0) -> Any:
        """Refused: nothing says how this model's inputs are distributed."""
        raise UnembedError(f"a {type(self).__name__} model cannot draw random inputs; pass the "
                           f"inputs.")


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


class SklearnExportable(LoadedModel, Protocol):
    """A scikit-learn linear classifier (kind "sklearn")."""

    @property
    def dtype(self) -> str: ...

    @property
    def raw_b(self) -> NDArray[np.float64] | None: ...

    @property
    def structure(self) -> str: ...

    def with_head(self, head: Head) -> Any: ...

    def with_estimator(self, estimator: Any) -> SklearnExportable: ...


_M = TypeVar("_M")

#: the kinds :func:`unembed.export.export_model` writes back, each checked by its class
EXPORT_KINDS = ("hf_lm", "hf_vision", "hf_classifier", "torch", "sklearn", "spacy",
                "transformer_lens")


def not_exportable(model: LoadedModel, where: object) -> UnembedError:
    """The one refusal of a model that cannot be written back, naming ``where`` (the file or
    the function the user called) and what the model is."""
    what = ("a weight file (a bare head; its rows are written in the file's own format, "
            "e.g. by unembed counterexample HEAD)" if model.kind == "file"
            else f"a {type(model).__name__} of kind {model.kind!r}")
    return UnembedError(f"{where}: {what} cannot be written back as a model; models are written "
                        f"back "
                        f"from HuggingFace directories, torch modules, scikit-learn estimators, "
                        f"spaCy "
                        f"pipelines and TransformerLens models.")


def _narrow(model: LoadedModel, where: object, cls: type[_M]) -> _M:
    if isinstance(model, cls):
        return model
    raise not_exportable(model, where)


def as_hf(model: LoadedModel, where: object) -> HFExportable:
    """``model`` as a HuggingFace model export can write (checked by its class)."""
    from unembed.sources.hf_lm import HFCausalLM
    from unembed.sources.torch_base import HFClassifierSource

    if isinstance(model, HFCausalLM):
        return model
    return _narrow(model, where, HFClassifierSource)


def as_torch(model: LoadedModel, where: object) -> TorchExportable:
    """``model`` as a torch module export can write (checked by its class)."""
    from unembed.sources.torch_module import TorchModuleModel

    return _narrow(model, where, TorchModuleModel)


def as_sklearn(model: LoadedModel, where: object) -> SklearnExportable:
    """``model`` as a scikit-learn estimator export can write (checked by its class)."""
    from unembed.sources.sklearn import SklearnModel

    return _narrow(model, where, SklearnModel)


def as_spacy(model: LoadedModel, where: object) -> SpacyComponent:
    """``model`` as a spaCy pipeline component export can write (a tagger, or a parser's or
    NER's action layer; checked by its class)."""
    from unembed.sources.spacy_pipeline import SpacyTagger, SpacyTransition

    if isinstance(model, SpacyTagger):
        return model
    return _narrow(model, where, SpacyTransition)


def as_tl(model: LoadedModel, where: object) -> TLModel:
    """``model`` as a TransformerLens model export can write (checked by its class)."""
    from unembed.sources.tlens import TLModel

    return _narrow(model, where, TLModel)


def check_exportable(model: LoadedModel, where: object) -> None:
    """Refuse, before any work, a model :func:`unembed.export.export_model` cannot write."""
    narrow = {"hf_lm": as_hf, "hf_vision": as_hf, "hf_classifier": as_hf, "torch": as_torch,
              "sklearn": as_sklearn, "spacy": as_spacy, "transformer_lens": as_tl}.get(
                  model.kind)
    if narrow is None:
        raise not_exportable(model, where)
    narrow(model, where)


if TYPE_CHECKING:  # mypy checks that each source has the interface export relies on
    from unembed.sources.hf_classifier import HFTextClassifier
    from unembed.sources.hf_lm import HFCausalLM
    from unembed.sources.hf_vision import HFImageClassifier
    from unembed.sources.sklearn import SklearnModel
    from unembed.sources.torch_module import TorchModuleModel

    def _lm(m: HFCausalLM) -> HFExportable:
        return m

    def _vision(m: HFImageClassifier) -> HFExportable:
        return m

    def _classifier(m: HFTextClassifier) -> HFExportable:
        return m

    def _torch(m: TorchModuleModel) -> TorchExportable:
        return m

    def _sklearn(m: SklearnModel) -> SklearnExportable:
        return m
