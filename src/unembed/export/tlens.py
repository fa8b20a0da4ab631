"""TransformerLens models written back: the HookedTransformer's state dict (W_U, b_U replaced)
and, beside it, its config ``NAME.tl_config.json`` (a state dict holds no architecture),
re-read from the two files as :func:`unembed.sources.tlens.load_state_dict_file` reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unembed._io import atomic_target
from unembed.equivalence import compare_logits
from unembed.export._common import ExportJob, ExportResult, require_equivalent, save_state_dict
from unembed.export._registry import register
from unembed.sources.tl_config import CONFIG_FORMAT, STATE_DICT_SUFFIXES, config_path
from unembed.sources.tlens.adapter import TLModel, tl_version
from unembed.sources.tlens.state_dict import load_written

__all__ = ["check_state_dict_target", "export_tl", "write_config"]


def check_state_dict_target(out: Path, force: bool) -> None:
    """Refuse, before any work, a state dict target that could not be read back: a suffix that
    names no state dict format, or a config beside it that exists (without ``force``)."""
    from unembed._checks import UnembedError
    from unembed._io import check_target

    if out.suffix not in STATE_DICT_SUFFIXES:
        raise UnembedError(f"a TransformerLens model is written as a state dict: use a "
                              f"{' or '.join(STATE_DICT_SUFFIXES[:2])} suffix.", path=out)
    check_target(config_path(out), force=force)


def _config_value(v: object) -> object:
    """A HookedTransformerConfig field as plain JSON (torch dtypes by name, NumPy scalars as
    Python numbers)."""
    import torch

    if isinstance(v, torch.dtype):
        return str(v).replace("torch.", "")
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, tuple):
        return [_config_value(x) for x in v]
    if isinstance(v, list):
        return [_config_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _config_value(x) for k, x in v.items()}
    return v


def write_config(model: TLModel, path: Path) -> str | None:
    """Write ``model``'s HookedTransformerConfig as JSON to ``path``: with the state dict it is
    the whole model (``HookedTransformer(cfg)`` then ``load_state_dict``); the config records
    the processing as it stands (``normalization_type`` "LNPre" after fold_ln). A model given
    its tokenizer as an object has no ``tokenizer_name``; the tokenizer's own name is recorded
    then, so that the labels come back. Only a hub name is recorded (a config's tokenizer is
    read from the hub cache only): a tokenizer from a directory is not, and the note returned
    says so (else None)."""
    import json

    from unembed.sources.hub_cache import looks_like_repo_id

    fields = {k: _config_value(v) for k, v in model.model.cfg.to_dict().items()}
    if not fields.get("tokenizer_name") and model.tokenizer is not None:
        fields["tokenizer_name"] = str(model.tokenizer.name_or_path or "") or None
    name = fields.get("tokenizer_name")
    note = None
    if name is not None and not (isinstance(name, str) and looks_like_repo_id(name)):
        fields["tokenizer_name"] = None
        note = (f"its tokenizer came from the directory {name}, which the config does not "
                f"record (a TransformerLens config names its tokenizer by hub name only): read "
                f"it back with --labels {name} for the labels")
    record = {"format": CONFIG_FORMAT, "transformer_lens": tl_version(), "config": fields}
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return note


def export_tl(model: TLModel, job: ExportJob) -> ExportResult:
    """Write the HookedTransformer's state dict with W_U, b_U from ``job.head``
    (``.safetensors``, or ``.pt`` via ``torch.save``) and its config beside it
    (:func:`~unembed.sources.tl_config.config_path`), read both back as
    :func:`~unembed.sources.tlens.load_state_dict_file` reads them (``unembed verify`` too) and
    compare the re-read model with the original on the inputs (token ids or texts; default:
    random token ids); raises unless equivalent (:func:`unembed.export.export_model` moves
    ``tmp`` to ``out``; the config is moved into place here, just before)."""
    head, out, tmp, inputs, seed, force = (job.head, job.out, job.tmp, job.inputs, job.seed,
                                           job.force)
    new = model.with_head(head)
    cpath = config_path(out)
    notes: list[str] = [f"its config is written beside it: {cpath.name} (a state dict holds "
                        f"no architecture)"]
    save_state_dict(new.model, tmp, out.suffix)
    with atomic_target(cpath, force=force) as ctmp:
        note = write_config(new, ctmp)
        if note is not None:
            notes.append(note)
        reread = load_written(tmp, out.suffix, ctmp, dtype=None, strict=head.strict,
                               tokenizer=model.tokenizer, find_tokenizer=False)
        if inputs is None:
            notes.append("verified on 8 random sequences of 16 token ids")
            inputs = model.random_inputs(8, min(16, int(model.model.cfg.n_ctx)), seed=seed)
        z_old, z_new = model.model_logits(inputs), reread.model_logits(inputs)
        eq = compare_logits(z_old, z_new, "softmax", dtype=model.dtype)
        require_equivalent(eq, out, "state dict")
    return ExportResult(out=out, kind=model.kind, head=reread.head, equivalence=eq,
                        notes=tuple(notes))


register(TLModel, export_tl, check_target=check_state_dict_target)
