"""TransformerLens models by name or local HuggingFace directory, built the way
``HookedTransformer.from_pretrained`` builds them, from the local hub cache only (never a
download), each conversion checked against the HuggingFace model it came from."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from unembed._checks import UnembedError
from unembed._dependency_errors import reads_named_file
from unembed._tolerance import tolerance
from unembed.head import max_probability_gap
from unembed.sources._torch import to_f64
from unembed.sources.tl_config import config_path
from unembed.sources.tlens.adapter import (
    TLModel,
    _transformer_lens,
    load_hooked_transformer,
    tl_version,
)


def official_name(name: str) -> str:
    """TransformerLens's official name for a model name or alias (``gpt2-small`` -> ``gpt2``);
    a name it does not know is refused with the closest names in its table."""
    import difflib

    from transformer_lens import loading_from_pretrained as loading

    aliases = loading.make_model_alias_map()
    found = aliases.get(name.lower())
    if found is None:
        near = difflib.get_close_matches(name.lower(), list(aliases), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(aliases[n]) for n in near)}?" if near else ""
        raise UnembedError(f"{name}: not a model name TransformerLens knows (from_pretrained takes "
                           f"only the {len(loading.OFFICIAL_MODEL_NAMES)} models of its table, or "
                           f"their aliases).{hint} A local HuggingFace directory is read without "
                           f"--as transformer-lens.")
    return str(found)


@reads_named_file
def load_pretrained(name: str, *, revision: str | None = None, fold_ln: bool = True,
                    center_writing_weights: bool = True, center_unembed: bool = True,
                    dtype: str | None = None, strict: bool = True,
                    labels: str | os.PathLike[str] | None = None,
                    unique_labels: bool = False) -> TLModel:
    """``HookedTransformer.from_pretrained(name, fold_ln=..., center_writing_weights=...,
    center_unembed=..., dtype=...)`` from the local hub cache only (see the module docstring),
    read as :func:`load_hooked_transformer` reads it. The defaults are TransformerLens's own;
    ``head.meta["transformer_lens"]`` records the name, the official name, the version and
    the processing asked for (:attr:`TLModel.processing` is what the weights show).

    ``labels`` (a labels file or a tokenizer directory) renames the rows (see
    :func:`unembed.sources.sidecar.relabel`).

    A name TransformerLens does not know, a name missing from the hub cache and a checkpoint
    TransformerLens cannot convert are one-line errors; nothing is downloaded.
    """
    import contextlib
    import io
    import warnings

    from unembed.sources import hub_cache
    from unembed.sources.hf_dir import (
        check_model_dir,
        config_dict,
        from_pretrained,
        load_tokenizer,
        transformers_module,
    )

    tl = _transformer_lens()
    local = Path(name)
    snap = None
    official: str | None = None
    if local.exists():
        if local.is_file():
            raise UnembedError(f"{name}: a file, not a model name or directory; a TransformerLens "
                               f"state dict with its config {config_path(local).name} beside it is "
                               f"read by load_state_dict_file.")
        if not (local / "config.json").is_file():
            raise UnembedError(f"{name}: --as transformer-lens takes a model name from "
                               f"TransformerLens's table (read from the hub cache) or a local "
                               f"HuggingFace model directory (config.json) of an architecture it "
                               f"converts; this is neither.")
        if revision is not None:
            raise UnembedError(f"{name}: --revision applies to hub names, not to a local "
                               f"directory.")
        where = local
    else:
        official = official_name(name)
        snap = hub_cache.resolve(official, revision)
        where = snap.path
    # every file read stays inside the directory or the snapshot's repository folder, and a
    # HuggingFace config naming its own code (auto_map) is refused: it is never run here
    if snap is not None and official is not None and official.startswith(_TL_FORMAT_ORGS):
        from unembed.sources._paths import check_tree

        check_tree(where, "snapshot")
    else:
        config_dict(check_model_dir(where))
    kw: dict[str, Any] = {"fold_ln": fold_ln, "center_writing_weights": center_writing_weights,
                          "center_unembed": center_unembed}
    notes: list[str] = []
    hf_model = None
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            # from_pretrained warns that it is deprecated in favour of 4.x's bridge, and prints
            # "Loaded pretrained model ..." on stdout (which belongs to --json): both dropped
            warnings.simplefilter("ignore", DeprecationWarning)
            # its own-format config reader json.load(open(...))s without closing the file
            warnings.simplefilter("ignore", ResourceWarning)
            if snap is not None and official is not None and \
                    official.startswith(_TL_FORMAT_ORGS):
                model = _from_tl_format(tl, official, snap, kw, dtype or "float32", notes)
            else:
                import torch

                tf = transformers_module()
                # in the dtype asked for, as from_pretrained loads it itself (a 7B model in
                # float32 beside its bfloat16 conversion would double the memory); this copy
                # is also the reference the conversion is checked on, at that dtype's tolerance
                torch_dtype = getattr(torch, dtype or "float32", None)
                if not isinstance(torch_dtype, torch.dtype):
                    raise UnembedError(f"--model-dtype {dtype}: not a torch dtype.")
                hf_model = from_pretrained(tf.AutoModelForCausalLM, where, "a causal LM",
                                           dtype=torch_dtype)
                tok = load_tokenizer(where)
                if snap is not None:
                    model = tl.HookedTransformer.from_pretrained(
                        official, hf_model=hf_model, tokenizer=tok, device="cpu",
                        dtype=dtype or "float32", cache_dir=str(snap.cache_dir),
                        local_files_only=True, revision=snap.commit, **kw)
                else:
                    model = _from_local_dir(tl, where, hf_model, tok, kw, dtype or "float32",
                                            notes)
    except (KeyboardInterrupt, SystemExit, MemoryError, UnembedError):
        raise
    except Exception as e:
        text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise UnembedError(f"{name}: TransformerLens {tl_version()} cannot build it from {where} "
                           f"({type(e).__name__}: {text}).") from None
    model.eval()
    if hf_model is not None:
        notes.append(_check_against_hf(name, model, hf_model, dtype or "float32"))
    out = load_hooked_transformer(model, strict=strict)
    if snap is not None:
        hub_cache.mark(out, snap)
        source = (f"TransformerLens {official} from the hub cache "
                  f"({snap.repo_id}@{snap.revision}, {snap.path})")
    else:
        source = f"TransformerLens conversion of {where}"
    out.head = out.head.with_provenance(
        source=source, notes=notes,
        transformer_lens={"name": name, "official_name": official, "version": tl_version(),
                          "dtype": dtype or "float32", **kw})
    if labels is not None:
        from unembed.sources.sidecar import relabel

        relabel(out, labels, unique=unique_labels)
    return out


def _from_local_dir(tl: Any, path: Path, hf_model: Any, tok: Any, kw: dict[str, Any],
                    dtype: str, notes: list[str]) -> Any:
    """A HookedTransformer from a local HuggingFace directory, built the way
    ``from_pretrained`` builds one (its config and state-dict converters take a local path;
    ``from_pretrained`` itself takes only names): the same guards on the processing
    (shortformer, post-norm, soft-cap), the same processing."""
    import torch
    from transformer_lens import loading_from_pretrained as loading
    from transformer_lens.utilities.activation_functions import softcap_enabled
    from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise UnembedError(f"--model-dtype {dtype}: not a torch dtype.")
    cfg = loading.get_pretrained_model_config(
        str(path), hf_cfg=hf_model.config.to_dict(), fold_ln=kw["fold_ln"], device="cpu",
        dtype=torch_dtype, local_files_only=True)
    if cfg.positional_embedding_type == "shortformer":
        kw.update(fold_ln=False, center_unembed=False, center_writing_weights=False)
    if cfg.original_architecture in POST_NORM_ARCHITECTURES:
        kw.update(fold_ln=False, center_writing_weights=False)
    if kw["center_unembed"] and softcap_enabled(cfg.output_logits_soft_cap):
        kw["center_unembed"] = False
        notes.append("center_unembed not applied: the logits are soft-capped (as "
                     "from_pretrained refuses it)")
    state_dict = loading.get_pretrained_state_dict(str(path), cfg, hf_model, dtype=torch_dtype)
    if tok is None:
        cfg.tokenizer_name = None
        notes.append("the directory has no tokenizer: labels are row numbers and inputs must "
                     "be token ids")
    model = tl.HookedTransformer(cfg, tok, move_to_device=False)
    model.load_and_process_state_dict(state_dict, fold_value_biases=True, **kw)
    return model


def _check_against_hf(name: str, model: Any, hf_model: Any, dtype: str) -> str:
    """The converted model's probabilities against the HuggingFace model's on random token
    ids (TransformerLens converts the weights by architecture: a conversion that does not
    reproduce the model is refused, not read); returns the note saying so."""
    import torch

    v = int(model.cfg.d_vocab)
    ids = torch.from_numpy(np.random.default_rng(0).integers(
        0, v, size=(2, min(8, int(model.cfg.n_ctx)))))
    with torch.no_grad():
        z_tl = to_f64(model(ids))
        z_hf = to_f64(hf_model(ids).logits)
    if z_tl.shape != z_hf.shape:
        raise UnembedError(f"{name}: TransformerLens's conversion has logits of shape "
                           f"{tuple(z_tl.shape)}, the HuggingFace model {tuple(z_hf.shape)}; "
                           f"refused.")
    dp = max_probability_gap(z_hf.reshape(-1, v), z_tl.reshape(-1, v), "softmax")
    tol = tolerance(dtype).probability
    if not dp <= tol:
        raise UnembedError(f"{name}: TransformerLens's conversion does not reproduce the "
                           f"HuggingFace "
                           f"model's probabilities (max |dp| = {dp:.3g} > {tol:.0e}, the {dtype} "
                           f"tolerance); refused rather than read wrongly.")
    return (f"TransformerLens's conversion checked against the HuggingFace model on "
            f"{ids.shape[0] * ids.shape[1]} positions: max |dp| = {dp:.2g}")


#: Organisations whose models TransformerLens stores in its own format (config.json of a
#: HookedTransformerConfig, a ``*final.pth`` state dict) instead of HuggingFace's.
_TL_FORMAT_ORGS = ("NeelNanda/", "ArthurConmy/", "Baidicoot/")


def _from_tl_format(tl: Any, official: str, snap: Any, kw: dict[str, Any], dtype: str,
                    notes: list[str]) -> Any:
    """A model of TransformerLens's own format from its snapshot, as ``from_pretrained``
    builds it, except that the state dict is read with ``weights_only=True`` (TransformerLens
    itself unpickles it with ``weights_only=False``) and its tokenizer only from the hub
    cache (without it the labels are row numbers)."""
    import torch
    from transformer_lens import loading_from_pretrained as loading

    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise UnembedError(f"--model-dtype {dtype}: not a torch dtype.")
    cfg = loading.get_pretrained_model_config(
        official, fold_ln=kw["fold_ln"], device="cpu", dtype=torch_dtype,
        cache_dir=str(snap.cache_dir), local_files_only=True, revision=snap.commit)
    finals = sorted(p for p in snap.path.iterdir() if p.name.endswith("final.pth"))
    if not finals:
        raise UnembedError(f"{snap.path}: no *final.pth state dict in the snapshot "
                           f"(TransformerLens "
                           f"reads its own-format models from that file).")
    try:
        sd = torch.load(finals[0], map_location="cpu", weights_only=True)
    except Exception as e:
        raise UnembedError(f"{finals[0]}: not a state dict of tensors readable with "
                           f"weights_only=True "
                           f"({type(e).__name__}); unembed does not unpickle it.") from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UnembedError(f"{finals[0]}: not a state dict of tensors.")
    sd = {k: v.to(torch_dtype) for k, v in sd.items()}
    if cfg.original_architecture == "neel-solu-old":
        sd = loading.convert_neel_solu_old_weights(sd, cfg)
    elif cfg.original_architecture == "mingpt":
        sd = loading.convert_mingpt_weights(sd, cfg)
    if cfg.positional_embedding_type == "shortformer":
        # what from_pretrained does: no processing for shortformer models
        kw.update(fold_ln=False, center_unembed=False, center_writing_weights=False)
    tok = named_tokenizer(cfg.tokenizer_name, notes, snap.path)
    if tok is None:
        cfg.tokenizer_name = None
    model = tl.HookedTransformer(cfg, tok, move_to_device=False)
    model.load_and_process_state_dict(sd, fold_value_biases=True, **kw)
    return model


def named_tokenizer(name: object, notes: list[str], where: Path) -> Any:
    """The tokenizer a config (``where``) names by hub name, read from the hub cache only; None
    (and a note) when it is not there. A name that is not a hub name (a directory, any path)
    is refused: a config does not lead unembed to read files it was not given."""
    if not name:
        return None
    from unembed._checks import UnembedError
    from unembed.sources import hub_cache
    from unembed.sources._paths import check_tree
    from unembed.sources.hf_dir import load_tokenizer

    if not isinstance(name, str) or not hub_cache.looks_like_repo_id(name):
        raise UnembedError(f"names the tokenizer {str(name)[:80]!r}, which is not a hub "
                                f"name (ORG/NAME); a TransformerLens config's tokenizer is read "
                                f"from the hub cache only, never from a path; refused.", path=where)
    try:
        snap = hub_cache.resolve(name)
    except UnembedError:
        snap = None
    tok = None if snap is None else load_tokenizer(check_tree(snap.path, "tokenizer directory"))
    if tok is None:
        notes.append(f"its tokenizer {name} is not in the hub cache: labels are row numbers "
                     f"and inputs must be token ids")
    return tok
