"""A TransformerLens model from a state dict file and the config beside it
(``NAME.tl_config.json``, :func:`unembed.sources.tl_config.config_path`), as
:func:`unembed.export.export_model` writes one: the config and the state dict checked against
each other before the model is built."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from unembed._checks import UnembedError
from unembed._dependency_errors import reads_named_file
from unembed.sources.tl_config import CONFIG_FORMAT, STATE_DICT_SUFFIXES, config_path
from unembed.sources.tlens.adapter import (
    TLModel,
    _transformer_lens,
    load_hooked_transformer,
    tl_version,
)
from unembed.sources.tlens.hub import named_tokenizer


def _read_config(path: Path, tl: Any) -> tuple[Any, str]:
    """The HookedTransformerConfig in ``path`` (written by :func:`write_config`) and the
    TransformerLens version that wrote it; anything else is refused naming the file."""
    import torch

    from unembed._checks import read_json

    record = read_json(path, "TransformerLens config")
    if not isinstance(record, dict) or record.get("format") != CONFIG_FORMAT:
        raise UnembedError(f"not a config unembed wrote beside a TransformerLens state dict "
                               f"(its \"format\" is not {CONFIG_FORMAT!r}).", path=path)
    fields = record.get("config")
    if not isinstance(fields, dict):
        raise UnembedError("its \"config\" is not a JSON object of HookedTransformerConfig "
                               "fields.", path=path)
    for name in ("d_model", "d_vocab", "n_layers", "n_ctx", "dtype"):
        if name not in fields:
            raise UnembedError(f"its config lacks the field {name!r}.", path=path)
    dtype = torch.__dict__.get(str(fields["dtype"]))
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise UnembedError(f"its config's dtype {fields['dtype']!r} is not a torch floating "
                               f"dtype.", path=path)
    from unembed.sources.tl_config import check_fields

    check_fields(path, fields, tl.HookedTransformerConfig)
    fields = {**fields, "dtype": dtype, "device": "cpu", "n_devices": 1}
    try:
        cfg = tl.HookedTransformerConfig.from_dict(fields)
    except Exception as e:
        text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise UnembedError(f"not a HookedTransformerConfig TransformerLens {tl_version()} "
                               f"accepts ({type(e).__name__}: {text}).", path=path) from None
    return cfg, str(record.get("transformer_lens", "unknown"))


def _read_state_dict(path: Path, suffix: str) -> dict[str, Any]:
    """The tensors of a state dict file (safetensors by ``suffix``, else a torch file read with
    ``weights_only=True``); anything but a flat dict of named tensors is refused."""
    import torch


    if suffix == ".safetensors":
        from safetensors.torch import load_file

        from unembed.sources.safetensors_file import check_safetensors

        check_safetensors(path)
        try:
            sd: object = load_file(str(path))
        except Exception as e:
            raise UnembedError(f"not a readable safetensors file ({type(e).__name__}).",
                               path=path) \
                from None
    else:
        from unembed.sources.torch_file import torch_load

        sd = torch_load(path)
    if not isinstance(sd, dict) or not sd or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise UnembedError("not a state dict (a flat dict of named tensors).", path=path)
    return sd


def _check_fits(path: Path, cpath: Path, sd: dict[str, Any], model: Any, declared: Any) -> None:
    """Refuse a state dict that is not the config's model: a tensor missing or extra, of
    another shape, or a parameter stored in another dtype than the config declares."""

    want = model.state_dict()
    params = {name for name, _ in model.named_parameters()}
    problem = None
    missing = [k for k in want if k not in sd]
    extra = [k for k in sd if k not in want]
    if missing:
        problem = f"the config's model has {missing[0]!r}, which the state dict lacks"
    elif extra:
        problem = f"the state dict has {extra[0]!r}, which the config's model lacks"
    else:
        for k, t in want.items():
            if tuple(sd[k].shape) != tuple(t.shape):
                problem = (f"{k!r} has shape {tuple(sd[k].shape)} in the state dict, "
                           f"{tuple(t.shape)} in the config's model")
                break
            if k in params and sd[k].dtype != declared:
                problem = (f"{k!r} is stored as {str(sd[k].dtype).replace('torch.', '')}, the "
                           f"config says {str(declared).replace('torch.', '')}")
                break
    if problem is not None:
        raise UnembedError(f"does not fit its config {cpath.name}: {problem}; refused.", path=path)


@reads_named_file
def load_state_dict_file(path: str | os.PathLike[str], *, dtype: str | None = None,
                         strict: bool = True, labels: str | os.PathLike[str] | None = None,
                         unique_labels: bool = False) -> TLModel:
    """A HookedTransformer from a state dict file and the config beside it
    (``NAME.tl_config.json``, see :func:`config_path`), as :func:`unembed.export.export_model`
    writes a TransformerLens model (``unembed counterexample --model M --as transformer-lens
    --out NAME.safetensors``); CLI: ``--model NAME.safetensors --as transformer-lens``.

    The model is ``HookedTransformer(cfg)`` with the state dict loaded as written: no
    processing is applied (the state dict is the processed model's; its processing is read off
    the weights as for any model). The state dict is read with safetensors, or with
    ``weights_only=True``; its tokenizer is the one the config names, from the hub cache only
    (without it the labels are row numbers). ``dtype`` runs the model in another dtype.

    Refused in one line naming the file: a missing or foreign config (a state dict holds no
    architecture), and a state dict that does not fit it (a tensor missing or extra, another
    shape, or parameters stored in another dtype than the config declares).
    """
    from unembed._checks import regular_file

    p = regular_file(path, "state dict")
    if p.suffix not in STATE_DICT_SUFFIXES:
        raise UnembedError(f"not a state dict file ({', '.join(STATE_DICT_SUFFIXES)}).", path=p)
    from unembed.sources._paths import contained

    cpath = contained(p.parent, config_path(p).name, "TransformerLens config")
    out = load_written(p, p.suffix, cpath, dtype=dtype, strict=strict,
                        tokenizer=None, find_tokenizer=True)
    if labels is not None:
        from unembed.sources.sidecar import relabel

        relabel(out, labels, unique=unique_labels)
    return out


def load_written(path: Path, suffix: str, cpath: Path, *, dtype: str | None, strict: bool,
                  tokenizer: Any, find_tokenizer: bool) -> TLModel:
    """:func:`load_state_dict_file` on a state dict whose format is named by ``suffix`` and
    whose config is ``cpath`` (an export reads its temporaries back through this)."""
    import contextlib
    import io
    import warnings

    import torch


    tl = _transformer_lens()
    if not cpath.is_file():
        raise UnembedError(f"a TransformerLens state dict holds no architecture, and its "
                               f"config {cpath.name} (which unembed writes beside the state "
                               f"dicts it exports) is not beside it; refused.", path=path)
    cfg, written_with = _read_config(cpath, tl)
    declared = cfg.dtype
    if dtype is not None:
        run = torch.__dict__.get(dtype)
        if not isinstance(run, torch.dtype) or not run.is_floating_point:
            raise UnembedError(f"--model-dtype {dtype}: not a torch dtype.")
        cfg.dtype = run
    sd = _read_state_dict(path, suffix)
    from unembed.sources.tl_config import check_against_state_dict

    check_against_state_dict(cpath, cfg, {k: tuple(v.shape) for k, v in sd.items()})
    notes: list[str] = []
    if tokenizer is None and find_tokenizer:
        tokenizer = named_tokenizer(cfg.tokenizer_name, notes, cpath)
    if tokenizer is None:
        cfg.tokenizer_name = None  # else HookedTransformer would fetch it
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", DeprecationWarning)
            model = tl.HookedTransformer(cfg, tokenizer, move_to_device=False)
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as e:
        text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise UnembedError(f"TransformerLens {tl_version()} cannot build a model from this "
                                f"config ({type(e).__name__}: {text}).", path=cpath) from None
    _check_fits(path, cpath, sd, model, declared)
    model.load_state_dict(sd, strict=True)
    model.eval()
    if written_with != tl_version():
        notes.append(f"written with TransformerLens {written_with}, read with {tl_version()}")
    out = load_hooked_transformer(model, strict=strict)
    out.head = out.head.with_provenance(
        source=f"TransformerLens state dict {path} (config {cpath.name})", notes=notes,
        transformer_lens={"state_dict": str(path), "config": str(cpath),
                          "version": tl_version(), "written_with": written_with,
                          "dtype": str(cfg.dtype).replace("torch.", "")})
    return out
