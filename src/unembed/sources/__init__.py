"""Sources: one adapter per model family, each producing an exact :class:`~unembed.head.Head`.

:func:`load` dispatches on what it is given:

==========================================  ===================================  ==================
given                                       read by                              kind
==========================================  ===================================  ==================
directory with ``config.json`` (causal LM)   :mod:`unembed.sources.hf_lm`        "hf_lm"
directory with ``config.json`` (image cls.)  :mod:`unembed.sources.hf_vision`    "hf_vision"
TransformerLens ``HookedTransformer``        :mod:`unembed.sources.tlens`        "transformer_lens"
spaCy ``Language``, or a saved pipeline dir  :mod:`unembed.sources.spacy_pipeline` "spacy"
``torch.nn.Module``                          :mod:`unembed.sources.torch_module`  "torch"
scikit-learn estimator, or ``.pkl`` file     :mod:`unembed.sources.sklearn`      "sklearn"
weight file ``PATH[:TENSOR]``, or a Head     :mod:`unembed.sources.files`        "file"
==========================================  ===================================  ==================
"""

from __future__ import annotations

import os
from typing import Any

from unembed._dependency_errors import reads_named_file
from unembed._io import is_pickle
from unembed.head import Deferred, Head, Link, owned
from unembed.sources._repr import model_html, model_repr
from unembed.sources.base import HeadModel, LoadedModel
from unembed.sources.files import MatrixFile, read_labels, read_tensor

__all__ = ["FileModel", "load", "load_head_file"]


def load_head_file(
    weights: str | os.PathLike[str],
    *,
    bias: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | list[str] | None = None,
    link: Link = "softmax",
    softcap: float | None = None,
    strict: bool = True,
    temperature: float | None = None,
    transpose: bool = False,
) -> Head:
    """A head from a weight file spec (``PATH`` or ``PATH:TENSOR``) of shape (V, d), an
    optional bias file spec of shape (V,) and optional labels (a file, a tokenizer directory
    or a list; default: ``NAME.labels.json`` beside the weight file when there is one, see
    :mod:`unembed.sources.sidecar`). ``temperature`` T > 0: the model divides its scores by T
    before the softmax (the head's ``logit_scale`` is 1 / T).

    ``transpose``: the file stores the head as (d, V), one column per label (TransformerLens's
    ``W_U``); W is its transpose. Without it a matrix that looks transposed is refused: labels
    that count its columns (d) rather than its rows (V), or a tensor named ``W_U``
    (:func:`unembed.sources.orientation.check_orientation`).

    The returned head's ``file`` holds the :class:`MatrixFile` it came from, so that an
    equivalent head can be written back in the same format and dtype (None when transposed:
    the file's layout is not the head's).
    """
    from unembed.sources import fasttext_model
    from unembed.sources.orientation import check_orientation
    from unembed.sources.sidecar import find_labels, read_labels_spec

    if os.path.isfile(weights) and fasttext_model.read_header(weights) is not None:
        raise fasttext_model.refusal(weights)
    mf: MatrixFile = read_tensor(weights, ndim=2)
    if len(mf.shape) != 2 or mf.dtype not in ("float64", "float32", "float16", "bfloat16"):
        W: Any = mf.array  # the Head names what is wrong with it
    elif transpose:
        import numpy as np

        W = owned(np.ascontiguousarray(mf.read_float64().T))
    else:
        W = Deferred(mf)  # validated in one pass; rows read from the file when needed
    n_rows = mf.shape[-1] if transpose else mf.shape[0]
    b = None
    if bias is not None:
        bf = read_tensor(bias, ndim=1)
        if len(bf.shape) != 1 or bf.shape[0] != n_rows:
            raise_shape(bf, mf, n_rows)
        b = bf.array
    labs: Any = None
    labels_from = "row numbers"
    if labels is not None:
        labs = labels if isinstance(labels, list) else read_labels_spec(labels, n_rows)
        labels_from = "the caller" if isinstance(labels, list) else str(labels)
    else:
        labs = find_labels(weights)
        if labs is not None:
            from unembed.sources.sidecar import labels_path

            labels_from = str(labels_path(weights))
    if not transpose:
        check_orientation(mf, None if labs is None else len(labs),
                          given=labels is not None)
    if temperature is not None and not (temperature > 0 and temperature < float("inf")):
        from unembed._checks import UnembedError

        raise UnembedError("must be a positive number", argument="temperature",
                           function="load_head_file", got=temperature)
    return Head(
        W=W,
        b=b,
        labels=tuple(labs) if labs is not None else (),
        link=link,
        softcap=softcap,
        dtype=mf.dtype,
        strict=strict,
        logit_scale=1.0 if temperature is None else 1.0 / temperature,
        source=str(mf.path) + (f":{mf.tensor}" if mf.tensor else ""),
        meta={} if temperature is None else {"temperature": temperature},
        file=None if transpose else mf,
        labels_from=labels_from,
    )


def raise_shape(bf: MatrixFile, mf: MatrixFile, n_rows: int | None = None) -> None:
    from unembed._checks import UnembedError

    V = mf.shape[0] if n_rows is None else n_rows
    raise UnembedError(f"{bf.path}: the bias has shape {bf.shape}, but the weights "
                       f"{mf.path} have {V} rows; expected ({V},).")


class FileModel(HeadModel):
    """A bare head (a weight file or a :class:`Head`): its inputs are hidden states (n, d)."""

    kind = "file"
    __repr__ = model_repr
    _repr_html_ = model_html

    def __init__(self, head: Head) -> None:
        self.head = head

    def hidden_states(self, inputs: Any) -> Any:
        """The inputs themselves, checked to be (n, d) float64."""
        from unembed._checks import check_hidden

        return check_hidden(inputs, self.head.d, "inputs")

    def random_inputs(self, n: int, length: int, *, seed: int = 0) -> Any:
        """Refused: a bare head takes hidden states, and nothing says how they are
        distributed."""
        from unembed._checks import UnembedError

        raise UnembedError("a bare head takes hidden states (n, d) and cannot draw random inputs; "
                           "pass the inputs.")


def _hf_kind(path: os.PathLike[str] | str, trust_remote_code: bool = False) -> str:
    """What a HuggingFace directory is, from what its config.json says: "hf_vision",
    "hf_classifier" (sequence or token classification) or "hf_lm"; anything else, or a
    config naming architectures of different kinds, is refused with the reason."""
    from pathlib import Path

    from unembed._checks import UnembedError
    from unembed.sources.hf_classifier import CLASSIFIER_SUFFIXES
    from unembed.sources.hf_lm import FAMILIES, read_config

    config = read_config(Path(path), trust_remote_code=trust_remote_code)
    archs = [str(a) for a in (getattr(config, "architectures", None) or [])]
    kinds = set()
    for a in archs:
        if a.endswith("ForImageClassification"):
            kinds.add("hf_vision")
        elif a.endswith(tuple(CLASSIFIER_SUFFIXES)):
            kinds.add("hf_classifier")
        elif a.endswith(("ForCausalLM", "LMHeadModel")):
            kinds.add("hf_lm")
        else:
            kinds.add(f"other ({a})")
    if len(kinds) > 1:
        raise UnembedError(f"names architectures of different kinds "
                           f"({', '.join(archs)}); which one the weights are is not known.",
                           path=Path(path) / "config.json")
    if kinds and next(iter(kinds)).startswith("hf_"):
        return next(iter(kinds))
    if not archs and getattr(config, "model_type", None) in FAMILIES:
        return "hf_lm"
    raise UnembedError(f"names architectures {archs or 'none'} "
                       f"(model_type {getattr(config, 'model_type', None)!r}); unembed reads "
                       f"causal LMs (...ForCausalLM, ...LMHeadModel), sequence and token "
                       f"classifiers (...ForSequenceClassification, ...ForTokenClassification) "
                       f"and image classifiers (...ForImageClassification).",
                       path=Path(path) / "config.json")


@reads_named_file
def load(
    source: Any,
    *,
    fold: bool = False,
    trust_pickle: bool = False,
    labels: Any = None,
    component: str | None = None,
    link: Link = "softmax",
    example_input: Any = None,
    bias: str | os.PathLike[str] | None = None,
    softcap: float | None = None,
    strict: bool = True,
    trust_remote_code: bool = False,
    unique_labels: bool = False,
    revision: str | None = None,
    temperature: float | None = None,
    device: str | None = None,
    model_dtype: str | None = None,
    head_name: str | None = None,
    transpose: bool = False,
) -> LoadedModel:
    """Read the exact head of a model, whatever it is (see the table above).

    Parameters
    ----------
    source : path, ``torch.nn.Module``, scikit-learn estimator or Head
    fold : bool
        HuggingFace models: fold the final norm's gain (and shift) into the head.
    trust_pickle : bool
        Allow unpickling a scikit-learn estimator file (it can run code).
    labels : list or labels file, optional
        Labels for torch modules, weight files and (to override classes_) estimators.
    component : str, optional
        The named part of the model that holds the head: spaCy pipelines: the component
        (tagger, morphologizer, senter, parser, ner; the CLI's ``--component``; found when
        there is one); torch modules: the dotted name of the output Linear (found when
        unambiguous).
    link : {"softmax", "sigmoid"}
        Torch modules and weight files: how logits become probabilities.
    example_input : optional
        Torch modules: an input that identifies the output Linear when there are several.
    bias, softcap : optional
        Weight files only (see :func:`load_head_file`).
    strict : bool
        Refuse heads with all-zero or identical rows.
    temperature : float, optional
        Weight files only: the model divides its scores by this T before the softmax.
    trust_remote_code : bool
        HuggingFace directories whose config names their own code (``auto_map``): run it.
        Default False: such a directory is refused.
    unique_labels : bool
        Rename repeated labels ('sr', 'sr' -> 'sr', 'sr#2') instead of refusing them.
    revision : str, optional
        Hub names (``ORG/NAME``, read from the local hub cache, see
        :mod:`unembed.sources.hub_cache`): a branch, tag or commit hash (default "main").
    device, model_dtype : str, optional
        Torch-based sources: where the forward passes run ("cpu", "cuda", "cuda:1"; default
        CUDA when present, else the CPU; a torch module given stays where it is unless a
        device is named) and in what dtype ("float32", "bfloat16", ...; default the
        checkpoint's). See :mod:`unembed.device`. Other sources run on the CPU in float64.
    head_name : str, optional
        The deprecated spelling of ``component`` (a DeprecationWarning).
    transpose : bool
        Weight files only: the file stores the head as (d, V), one column per label
        (TransformerLens's ``W_U``); see :func:`load_head_file`.

    Returns
    -------
    LoadedModel
        ``.head`` (V, d) float64 and ``.kind``; ``hidden_states(inputs)`` and
        ``model_logits(inputs)`` run the model.
    """
    from pathlib import Path

    from unembed._checks import UnembedError

    if head_name is not None:
        import warnings

        warnings.warn("The 'head_name' argument of load is deprecated; use 'component' (the "
                      "CLI's --component: a spaCy component, or a torch module's output "
                      "Linear).", DeprecationWarning, stacklevel=2)
        if component is not None:
            raise UnembedError("name the component once, as 'component' (not also as the "
                               "deprecated 'head_name').", function="load")
        component = head_name
    if temperature is not None and not isinstance(source, (str, os.PathLike)):
        raise UnembedError("a temperature applies to weight files; a "
                           f"{type(source).__name__} has its own logits.", function="load")
    if transpose and not isinstance(source, (str, os.PathLike)):
        raise UnembedError(f"applies to weight files; a {type(source).__name__} has its own "
                           f"orientation.", argument="transpose", function="load")
    if isinstance(source, Head):
        return FileModel(source)
    if labels is not None and unique_labels and not isinstance(labels, (str, os.PathLike)):
        from unembed._checks import unique_labels as make_unique

        labels = list(make_unique(labels))
    spec = labels if isinstance(labels, (str, os.PathLike)) else None
    if labels is not None:
        # a weight file reads --labels itself (a file, a tokenizer directory or a list); so do
        # torch modules and estimators given a list. Every other model is read first and its
        # rows renamed (a labels file or tokenizer directory is read for its row count).
        from unembed.sources.sidecar import read_labels_spec, relabel

        is_path = isinstance(source, (str, os.PathLike))
        if is_path and _is_weight_file(source, revision):
            if spec is not None and unique_labels:
                n = read_tensor(source, ndim=2).shape[-1 if transpose else 0]
                return load(source, labels=list(read_labels_spec(spec, n)), bias=bias,
                            link=link, softcap=softcap, strict=strict, unique_labels=True,
                            temperature=temperature, fold=fold, transpose=transpose)
        elif spec is not None or not (is_pickle(source) if is_path else _takes_labels(source)):
            model = load(source, fold=fold, trust_pickle=trust_pickle, component=component,
                         link=link, example_input=example_input, bias=bias, softcap=softcap,
                         strict=strict, trust_remote_code=trust_remote_code, revision=revision,
                         temperature=temperature, device=device, model_dtype=model_dtype)
            return relabel(model, spec if spec is not None else list(labels),
                           unique=unique_labels)
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        from unembed.sources import hub_cache

        snap = hub_cache.find(source, revision)
        if snap is not None:
            p = snap.path
        elif revision is not None:
            raise UnembedError("--revision applies to hub names (ORG/NAME) read from the hub "
                               "cache, not to a local path.", path=p)
        if transpose and (p.is_dir() or is_pickle(p)):
            raise UnembedError("applies to weight files; this model has its own orientation.",
                               argument="transpose", function="load", path=p)
        if temperature is not None and (p.is_dir() or is_pickle(p)):
            raise UnembedError("--temperature applies to weight files; this model has its "
                               "own "
                               "logits.", path=p)
        if p.is_dir():
            from unembed.sources.spacy_pipeline import is_spacy_dir

            if is_spacy_dir(p):
                from unembed.sources.spacy_pipeline import load_spacy

                _cpu_only(device, f"{p} (a spaCy pipeline)")
                _own_dtype(model_dtype, f"{p} (a spaCy pipeline)")
                return load_spacy(p, component=component, strict=strict)
            from unembed.sources.hf_dir import check_model_dir

            check_model_dir(p)
            kind = _hf_kind(p, trust_remote_code)
            if kind == "hf_vision":
                from unembed.sources.hf_vision import load_hf_vision

                return hub_cache.mark(load_hf_vision(p, fold=fold, strict=strict,
                                                     trust_remote_code=trust_remote_code,
                                                     device=device, model_dtype=model_dtype),
                                      snap)
            if kind == "hf_classifier":
                from unembed.sources.hf_classifier import load_hf_classifier

                return hub_cache.mark(load_hf_classifier(p, fold=fold, strict=strict,
                                                         trust_remote_code=trust_remote_code,
                                                         device=device,
                                                         model_dtype=model_dtype), snap)
            from unembed.sources.hf_lm import load_hf_lm

            return hub_cache.mark(load_hf_lm(p, fold=fold, strict=strict,
                                             trust_remote_code=trust_remote_code,
                                             device=device, model_dtype=model_dtype), snap)
        if fold:
            raise UnembedError("--fold needs a HuggingFace model directory (a weight file "
                               "has "
                               "no final norm).", path=p)
        _own_dtype(model_dtype, f"{p} (its head is read in float64)")
        if is_pickle(p):
            from unembed.sources.sklearn import load_sklearn

            return load_sklearn(p, labels=labels, trust_pickle=trust_pickle, strict=strict)
        return FileModel(load_head_file(p, bias=bias, labels=labels, link=link,
                                        softcap=softcap, strict=strict,
                                        temperature=temperature, transpose=transpose))
    if isinstance(labels, (str, os.PathLike)):
        labels = read_labels(labels)
    from unembed.sources.fasttext_model import is_fasttext_model, refusal
    from unembed.sources.spacy_pipeline import is_spacy_language
    from unembed.sources.tlens import is_hooked_transformer

    if is_fasttext_model(source):
        raise refusal(source)

    if is_spacy_language(source):
        from unembed.sources.spacy_pipeline import load_spacy

        _cpu_only(device, "a spaCy pipeline")
        _own_dtype(model_dtype, "a spaCy pipeline")
        return load_spacy(source, component=component, strict=strict)
    if is_hooked_transformer(source):
        from unembed.sources.tlens import load_hooked_transformer

        _cpu_only(device, "a TransformerLens model (move it with model.to(device) first)")
        return load_hooked_transformer(source, strict=strict)
    if _is_module(source):
        from unembed.sources.torch_module import TorchModuleModel

        return TorchModuleModel(source, head_name=component, labels=labels, link=link,
                                example_input=example_input, strict=strict, device=device,
                                model_dtype=model_dtype)
    from unembed.sources.sklearn import is_sklearn_estimator, load_sklearn

    if is_sklearn_estimator(source):
        return load_sklearn(source, labels=labels, strict=strict)
    raise UnembedError(f"cannot read a head from a {type(source).__name__}; expected a path, a "
                       f"torch nn.Module, a scikit-learn estimator or a Head.", function="load")


def _is_weight_file(source: str | os.PathLike[str], revision: str | None) -> bool:
    """Whether a path source is read as a weight file (not a directory, hub name or pickle)."""
    from pathlib import Path

    from unembed.sources import hub_cache

    if not os.path.exists(source) and hub_cache.looks_like_repo_id(os.fspath(source)) and \
            hub_cache.find(source, revision) is not None:
        return False
    p = Path(source)
    return not p.is_dir() and not is_pickle(p)


def _takes_labels(source: Any) -> bool:
    """Sources whose own loader takes a list of labels (torch modules, scikit-learn
    estimators); spaCy pipelines and TransformerLens models are renamed after reading."""
    from unembed.sources.spacy_pipeline import is_spacy_language
    from unembed.sources.tlens import is_hooked_transformer

    return not (is_spacy_language(source) or is_hooked_transformer(source)
                or isinstance(source, Head))


def _cpu_only(device: str | None, what: str) -> None:
    """Refuse an explicit accelerator for a source that runs where its library runs it: the
    forward passes would silently stay on the CPU otherwise."""
    if device is not None and device != "cpu":
        from unembed._checks import UnembedError

        raise UnembedError(f"--device {device} applies to torch models unembed runs itself; {what} "
                           f"runs on the CPU here.")


def _own_dtype(model_dtype: str | None, what: str) -> None:
    """Refuse ``--model-dtype`` for a source unembed does not run in torch: its value is
    checked first (a bad one is named with the allowed ones), then said not to apply."""
    if model_dtype is None:
        return
    from unembed._checks import UnembedError
    from unembed.device import resolve_dtype_name

    if resolve_dtype_name(model_dtype) is not None:
        raise UnembedError(f"--model-dtype {model_dtype} applies to torch models unembed runs "
                           f"itself; "
                           f"{what} is not one.")


def _is_module(obj: Any) -> bool:
    """Whether ``obj`` is a torch module (without importing torch: a module object exists only
    where torch has been imported)."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)
