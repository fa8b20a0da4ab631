"""The options that name a model, read once into typed values, and translated into the library's
loader calls (``load``, ``load_pretrained``, ``load_state_dict_file``) and engine.

:func:`head_options` is the one place that reads the argparse Namespace for these options (a
command that does not declare an option gets its default); everything else takes a
:class:`HeadOptions` / :class:`EngineOptions`.
"""

from __future__ import annotations

import argparse
import functools
import os
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

from unembed._checks import UnembedError
from unembed.head import Head

if TYPE_CHECKING:
    from unembed.engine import RayEngine
    from unembed.sources.base import LoadedModel

__all__ = ["EngineOptions", "HeadOptions", "engine_options", "head_options", "head_source",
           "load_head", "load_model", "model_loader", "per_input_temperature",
           "ray_engine", "scaled_inputs"]

def _given(cls: type[Any], args: argparse.Namespace) -> dict[str, Any]:
    """The options of ``args`` that are fields of the dataclass ``cls`` (a command that does
    not declare one leaves the field's default)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}


@dataclass(frozen=True)
class HeadOptions:
    """The options that name a head or model and say how to read it (one field per option,
    named as its argparse ``dest``)."""

    head: str | None = None
    model: str | None = None
    labels: str | None = None
    bias: str | None = None
    link: Literal["softmax", "sigmoid"] = "softmax"
    softcap: float | None = None
    temperature: str | None = None
    allow_degenerate: bool = False
    transpose: bool = False
    fold: bool = False
    trust_pickle: bool = False
    trust_remote_code: bool = False
    unique_labels: bool = False
    component: str | None = None
    revision: str | None = None
    device: str | None = None
    model_dtype: str | None = None
    read_as: str | None = None
    no_fold_ln: bool = False
    no_center_unembed: bool = False
    no_center_writing_weights: bool = False

    @property
    def fixed_temperature(self) -> float | None:
        """``--temperature T`` as a number (None when absent or a per-input file)."""
        if self.temperature is None:
            return None
        try:
            value = float(self.temperature)
        except ValueError:
            return None
        if not (0 < value < float("inf")):
            raise UnembedError("must be a positive number or a .npy file", option="--temperature",
                               got=self.temperature)
        return value

    @property
    def per_input_temperature(self) -> bool:
        """Whether ``--temperature`` names a file of one temperature per input."""
        return self.temperature is not None and self.fixed_temperature is None


@dataclass(frozen=True)
class EngineOptions:
    """--engine, --address, --workers."""

    engine: str = "local"
    address: str | None = None
    workers: int | None = None


def head_options(args: argparse.Namespace) -> HeadOptions:
    """The head options of a parsed command line."""
    return HeadOptions(**_given(HeadOptions, args))


def engine_options(args: argparse.Namespace) -> EngineOptions:
    """The engine options of a parsed command line."""
    return EngineOptions(**_given(EngineOptions, args))


def head_source(args: argparse.Namespace | HeadOptions) -> str:
    """What names the head: HEAD or --model (one of them, not both)."""
    o = args if isinstance(args, HeadOptions) else head_options(args)
    if o.head is not None and o.model is not None and o.head != o.model:
        raise UnembedError(f"name the head once: HEAD ({o.head}) or --model ({o.model}), not "
                           f"both.")
    source = o.model if o.model is not None else o.head
    if source is None:
        raise UnembedError("name a head: HEAD (a weight file, model directory or .pkl), or "
                           "--model PATH.")
    return str(source)


def per_input_temperature(args: argparse.Namespace, n: int) -> Any:
    """``--temperature FILE``: one positive T per input row, shape (n,) float64
    (:func:`unembed.temperature.read_temperatures`); None when absent or a number."""
    from unembed.temperature import read_temperatures

    o = head_options(args)
    if o.temperature is None or not o.per_input_temperature:
        return None
    return read_temperatures(o.temperature, n)


def scaled_inputs(args: argparse.Namespace, H: Any, head: Head) -> Any:
    """Hidden states H (n, d) with ``--temperature FILE`` applied
    (:func:`unembed.temperature.divide_by_temperature`)."""
    import numpy as np

    from unembed.temperature import divide_by_temperature

    T = per_input_temperature(args, int(np.asarray(H).shape[0]))
    if T is None:
        return H
    return divide_by_temperature(H, head, T, where=head_options(args).temperature)


def _tl_switches(o: HeadOptions) -> tuple[tuple[str, bool], ...]:
    """TransformerLens's processing switches given, by option."""
    return (("--no-fold-ln", o.no_fold_ln), ("--no-center-unembed", o.no_center_unembed),
            ("--no-center-writing-weights", o.no_center_writing_weights))


def model_loader(args: argparse.Namespace,
                 spec: str | None = None) -> functools.partial[LoadedModel]:
    """``load(...)`` of the model named by HEAD or ``--model`` (``spec`` overrides both), with
    the options given, as a picklable call: workers of ``--engine ray`` run it themselves."""
    from unembed.sources import load

    o = head_options(args)
    if o.read_as == "transformer-lens":
        return _tl_loader(o, spec)
    tl_only = [opt for opt, given in _tl_switches(o) if given]
    if tl_only:
        raise UnembedError(f"{tl_only[0]} applies with --as transformer-lens.")
    return functools.partial(
        load,
        spec if spec is not None else head_source(o),
        fold=o.fold,
        trust_pickle=o.trust_pickle,
        labels=o.labels,
        bias=o.bias,
        link=o.link,
        softcap=o.softcap,
        strict=not o.allow_degenerate,
        trust_remote_code=o.trust_remote_code,
        unique_labels=o.unique_labels,
        device=o.device,
        model_dtype=o.model_dtype,
        revision=o.revision,
        component=o.component,
        temperature=o.fixed_temperature,
        transpose=o.transpose,
    )


def _tl_loader(o: HeadOptions, spec: str | None) -> functools.partial[Any]:
    """``load_pretrained(NAME, ...)`` for ``--as transformer-lens``; options that mean nothing
    for a TransformerLens model are refused, not ignored."""
    from unembed.sources.tlens import STATE_DICT_SUFFIXES, load_pretrained

    given = [(opt, v) for opt, v in (("--fold", o.fold), ("--bias", o.bias),
                                     ("--softcap", o.softcap), ("--temperature", o.temperature),
                                     ("--trust-pickle", o.trust_pickle),
                                     ("--trust-remote-code", o.trust_remote_code),
                                     ("--component", o.component),
                                     ("--transpose", o.transpose))
             if v not in (None, False)]
    if o.link != "softmax":
        given.append(("--link", o.link))
    if given:
        why = (" (TransformerLens folds the final norm by default: fold_ln; --no-fold-ln turns "
               "it off)" if given[0][0] == "--fold" else "")
        raise UnembedError(f"{given[0][0]} does not apply with --as transformer-lens{why}.")
    if o.device is not None and o.device != "cpu":
        raise UnembedError(f"--device {o.device}: with --as transformer-lens the model runs on "
                           f"the CPU here.")
    source = spec if spec is not None else head_source(o)
    if os.path.isfile(source) or source.endswith(STATE_DICT_SUFFIXES):
        return _tl_file_loader(o, source)
    return functools.partial(
        load_pretrained, source, revision=o.revision,
        fold_ln=not o.no_fold_ln, center_unembed=not o.no_center_unembed,
        center_writing_weights=not o.no_center_writing_weights,
        dtype=o.model_dtype, strict=not o.allow_degenerate,
        labels=o.labels, unique_labels=o.unique_labels)


def _tl_file_loader(o: HeadOptions, path: str) -> functools.partial[Any]:
    """``load_state_dict_file(PATH, ...)``: a state dict (with its config beside it) is read as
    written, so the processing switches and --revision are refused, not ignored."""
    from unembed.sources.tlens import load_state_dict_file

    for option, value in (*_tl_switches(o), ("--revision", o.revision)):
        if value not in (None, False):
            raise UnembedError(f"{option} does not apply to a state dict file ({path}): it is "
                               f"read as written, and its processing is read off its weights.")
    return functools.partial(
        load_state_dict_file, path, dtype=o.model_dtype, strict=not o.allow_degenerate,
        labels=o.labels, unique_labels=o.unique_labels)


def load_model(args: argparse.Namespace, spec: str | None = None) -> LoadedModel:
    """The model named by HEAD or ``--model``; ``spec`` overrides both. What a command needs
    beyond :class:`~unembed.sources.base.LoadedModel` it narrows to explicitly (an export:
    :func:`unembed.sources.base.check_exportable`)."""
    return model_loader(args, spec)()


def load_head(args: argparse.Namespace, spec: str | None = None) -> Head:
    """The head named by the parsed options (``spec`` overrides HEAD and --model)."""
    return load_model(args, spec).head


def ray_engine(args: argparse.Namespace) -> RayEngine | None:
    """The RayEngine the options ask for, or None for --engine local."""
    o = engine_options(args)
    if o.engine != "ray":
        if o.address is not None:
            raise UnembedError("--address needs --engine ray.")
        return None
    from unembed.engine import RayEngine, reachable

    if o.address is not None:
        reachable(o.address)  # before any work: an unreachable cluster is an error now
    return RayEngine(workers=o.workers or max(1, min(8, os.cpu_count() or 1)),
                     address=o.address)
