"""HuggingFace causal language models from a local directory: the exact LM head.

The logits of a causal LM are ``z = U h + b`` (then ``cap * tanh(z / cap)`` for Gemma 2), where
h is the output of the final norm, ``h = g * n + beta``. Two sets of rows for the same head
(``head.rows``):

* ``"stored"`` (default): W = U as stored, the hidden state is the final norm's output h.
* ``"folded"`` (``fold=True``): W = U diag(g), b = U beta + b; the hidden state is n, the
  normalised state *without* gain or shift (docs/model.md, "Final norms and folding"; one rule
  for every torch source, :func:`unembed.sources.torch_base.head_through_norm`). Cosines of
  stored and folded rows differ.

Known families (read lazily: only the head's and the norm's tensors are loaded, memory-mapped)
are in :data:`FAMILIES`; any other architecture goes through the model's output embeddings and
a final norm found by name and confirmed by running it. Whatever the path, the first time the
model runs its logits are checked against ``head.logits(hidden_states)``; a model whose logits
are not made that way is refused rather than guessed at.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed._tensors import tensor_to_numpy
from unembed.head import Head
from unembed.sources._torch import (
    FinalNorm,
    capture_inputs,
    guess_norm_kinds,
    logits_out,
    norm_from_module,
    norm_matches,
    to_f64,
)
from unembed.sources.checkpoint import Checkpoint
from unembed.sources.hf_dir import (
    from_pretrained,
    load_tokenizer,
    run_model,
    transformers_module,
)
from unembed.sources.hf_dir import read_config as _read_config
from unembed.sources.torch_base import (
    TorchSource,
    head_through_norm,
    norm_hidden_bound,
    refuse_fold,
)

__all__ = ["FAMILIES", "HFCausalLM", "LMFamily", "load_hf_lm", "norm_hidden_bound",
           "readable_labels"]


@dataclass(frozen=True)
class LMFamily:
    """Where a family keeps its head: output weight, input embedding (for tied heads) and final
    norm (module path and kind), as named in the checkpoint."""

    head: str
    embed: str
    norm: str | None
    norm_kind: str | None


_LLAMA_LIKE = LMFamily("lm_head.weight", "model.embed_tokens.weight", "model.norm", "rmsnorm")
_GEMMA_LIKE = LMFamily("lm_head.weight", "model.embed_tokens.weight", "model.norm", "rmsnorm_1p")

FAMILIES: dict[str, LMFamily] = {
    "gpt2": LMFamily("lm_head.weight", "transformer.wte.weight", "transformer.ln_f", "layernorm"),
    "gpt_neox": LMFamily("embed_out.weight", "gpt_neox.embed_in.weight",
                         "gpt_neox.final_layer_norm", "layernorm"),
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "gemma": _GEMMA_LIKE,
    "gemma2": _GEMMA_LIKE,
    "opt": LMFamily("lm_head.weight", "model.decoder.embed_tokens.weight",
                    "model.decoder.final_layer_norm", "layernorm"),
}

_GENERIC_NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f",
                       "final_norm")


def _transformers() -> Any:
    return transformers_module()


def read_config(path: Path, *, trust_remote_code: bool = False) -> Any:
    """The model's config from ``path/config.json``, validated before transformers reads it
    (:func:`unembed.sources.hf_dir.read_config`; local only; no remote code unless asked)."""
    return _read_config(Path(path), trust_remote_code=trust_remote_code)


# --------------------------------------------------------------------------- labels
def _byte_decoder() -> dict[str, int]:
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _is_byte_level(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    dec = getattr(backend, "decoder", None)
    return dec is not None and "ByteLevel" in repr(dec)


def readable_labels(tokenizer: Any, n_rows: int) -> tuple[str, ...]:
    """One unique, readable label per row: the tokenizer's tokens with byte-level BPE undone
    ('Ġdog' -> ' dog', undecodable bytes as '\\xe2') and SentencePiece's '▁' shown as a space.
    A label already taken by a lower row gets ' [#N]' appended (N its row). Rows beyond the
    tokenizer's vocabulary (padding) are '[#N]'."""
    n_tok = min(len(tokenizer), n_rows)
    tokens = tokenizer.convert_ids_to_tokens(list(range(n_tok)))
    byte_level = _is_byte_level(tokenizer)
    dec = _byte_decoder() if byte_level else {}
    out: list[str] = []
    seen: set[str] = set()
    for i in range(n_rows):
        tok = tokens[i] if i < n_tok else None
        if tok is None:
            s = f"[#{i}]"
        elif byte_level and all(ch in dec for ch in tok):
            s = bytes(dec[ch] for ch in tok).decode("utf-8", errors="backslashreplace")
        else:
            s = str(tok).replace("▁", " ")
        if s in seen:
            s = f"{s} [#{i}]"
        seen.add(s)
        out.append(s)
    return tuple(out)


# --------------------------------------------------------------------------- the model
class HFCausalLM(TorchSource):
    """A HuggingFace causal LM read from a local directory (see :func:`load_hf_lm`); the
    shared parts (final-norm folding, the forward wrappers and the logits check) are
    :class:`~unembed.sources.torch_base.TorchSource`'s.

    Attributes
    ----------
    head : Head
        The exact head in the requested rows; ``meta`` has "source", "family", "norm",
        "tied", "folded"; ``head.hidden_bound`` is the box every hidden state of those rows
        lies in when there is a final norm (see :func:`norm_hidden_bound`).
    kind : str
        "hf_lm".
    raw_W : ndarray of shape (V, d)
        The output weight as stored (the stored rows' W; float16 and bfloat16 widened exactly
        to float32), kept for exports.
    raw_b : ndarray of shape (V,) or None
        The output layer's bias, if any.
    norm : FinalNorm or None
        The final norm (gain g, shift beta), when there is one right before the head.
    """

    kind = "hf_lm"

    def __init__(self, path: Path, config: Any, *, fold: bool, strict: bool,
                 raw_W: NDArray[Any], raw_b: NDArray[Any] | None, dtype: str,
                 norm: FinalNorm | None, tied: bool, family: str, generic_model: Any = None,
                 reparam: bool = False, reparam_reason: str = "",
                 trust_remote_code: bool = False, device: str | None = None,
                 model_dtype: str | None = None) -> None:
        self._hf_options(path, trust_remote_code, device, model_dtype)
        self.config = config
        self.family = family
        self.tied = tied
        self.dtype = dtype
        self.norm = norm
        # kept in stored precision (float16/bfloat16 widened exactly to float32): a float64
        # copy of a vocabulary-sized matrix is made once, by the Head
        self.raw_W = np.asarray(raw_W)
        self.raw_b = None if raw_b is None else np.asarray(raw_b, dtype=np.float64)
        self.rows = "folded" if fold else "stored"
        if fold and norm is None:
            raise refuse_fold(path, f"the {family} model")
        self._model = generic_model
        self._weights_checked = False
        self.head = self._build_head(strict, reparam, reparam_reason)

    # ------------------------------------------------------------------ the head
    def _build_head(self, strict: bool, reparam: bool, reparam_reason: str) -> Head:
        cfg = self.config
        softcap = getattr(cfg, "final_logit_softcapping", None)
        softcap = float(softcap) if softcap else None
        scale = 1.0
        if isinstance(getattr(cfg, "logit_scale", None), (int, float)):
            scale = float(cfg.logit_scale)
        if isinstance(getattr(cfg, "logits_scaling", None), (int, float)):
            scale = 1.0 / float(cfg.logits_scaling)
        norm = self.norm
        nh = head_through_norm(self.raw_W, self.raw_b, norm, self.rows, self.dtype)
        labels = self._labels(nh.W.shape[0])
        meta: dict[str, Any] = {
            "family": self.family,
            "norm": None if norm is None else norm.describe(),
            "norm_kind": None if norm is None else norm.kind,
            "tied": self.tied, "folded": self.rows == "folded",
        }
        return Head(W=nh.W, b=nh.b, labels=labels or (), link="softmax", softcap=softcap,
                    logit_scale=scale, reparam=reparam, null_space=nh.null_space,
                    dtype=self.dtype, meta=meta, source=str(self.path), strict=strict,
                    rows=self.rows,
                    hidden_bound=nh.hidden_bound, reparam_reason=reparam_reason or None,
                    null_space_reason=nh.null_space_reason,
                    labels_from="tokenizer" if labels else "row numbers")

    def _labels(self, n: int) -> tuple[str, ...] | None:
        tok = self.tokenizer
        return None if tok is None else readable_labels(tok, n)

    @cached_property
    def tokenizer(self) -> Any:
        """The directory's tokenizer, or None when it has none (transformers would otherwise
        build an empty one from the config, with only its special tokens)."""
        return load_tokenizer(self.path, trust_remote_code=self.trust_remote_code)

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        if self.tokenizer is None:
            raise UnembedError("has no tokenizer, so text cannot be tokenized; pass "
                               "token ids instead.", path=self.path)
        return [int(i) for i in self.tokenizer(text, add_special_tokens=False)["input_ids"]]

    def token_limits(self) -> tuple[int, int | None]:
        """(vocabulary size, most positions in one sequence: config.json's
        max_position_embeddings, None when it names none)."""
        n = getattr(self.config, "max_position_embeddings", None)
        return self.head.n_labels, n if isinstance(n, int) and n > 0 else None

    # ------------------------------------------------------------------ running the model
    @property
    def model(self) -> Any:
        """The torch model (loaded on first use, in its stored dtype, eval mode), checked
        against the head: its weights against the checkpoint's, its logits on random token
        ids against ``head.logits`` (:meth:`TorchSource.check_batch`)."""
        model = self._torch_model()
        if not self._verified:
            self.forward(self.random_inputs(2, 6, seed=0))
        return model

    def _where(self) -> object:
        return self.path

    def _torch_model(self) -> Any:
        """The torch model, loaded and placed on first use, its weights checked against the
        checkpoint's head and final norm."""
        if self._device is None:
            from unembed.device import torch_dtype

            if self._model is None:
                self._model = load_torch_lm(self.path, torch_dtype(self.model_dtype) or "auto",
                                            trust_remote_code=self.trust_remote_code)
            self._model = self._place(self._model, self.device_name)
        if not self._weights_checked:
            self._check_weights()
        return self._model

    def _head_module(self) -> Any:
        return self._model.get_output_embeddings()

    def _check_weights(self) -> None:
        import torch

        m = self._model
        out = m.get_output_embeddings()
        if not isinstance(out, torch.nn.Linear):
            raise UnembedError(f"the output layer is a {type(out).__name__}, not a "
                               f"Linear; "
                               f"this architecture cannot be handled exactly.", path=self.path)
        live_w = out.weight.detach().cpu()
        stored = torch.from_numpy(np.ascontiguousarray(self.raw_W))
        if self.model_dtype is not None and tuple(live_w.shape) == tuple(stored.shape):
            stored = stored.to(live_w.dtype)  # the stored head rounded to the dtype it runs in
        if live_w.dtype in (torch.float16, torch.bfloat16):
            live_w, stored = live_w.float(), stored.float()
        if tuple(live_w.shape) != self.raw_W.shape or not np.array_equal(live_w.numpy(),
                                                                           stored.numpy()):
            raise UnembedError("the loaded model's output weight differs from the "
                               f"checkpoint's {self.family} head; cannot read this head exactly.",
                               path=self.path)
        if self.norm is not None:
            mod = m.get_submodule(self.norm.name)
            live = norm_from_module(self.norm.name, mod, self.norm.kind)
            if self.model_dtype is None and not np.array_equal(live.gain, self.norm.gain):
                raise UnembedError("the final norm's gain in the loaded model "
                                   "differs "
                                   "from the checkpoint's.", path=self.path)
            self.norm = live  # now with eps
        self._weights_checked = True

    def as_ids(self, inputs: Any) -> list[NDArray[np.int64]]:
        """Inputs as a list of 1-D token id arrays: text, a list of texts, or ids of shape
        (T,) or (B, T)."""
        if isinstance(inputs, str):
            return [np.asarray(self.tokenize(inputs), dtype=np.int64)]
        if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], str):
            return [np.asarray(self.tokenize(t), dtype=np.int64) for t in inputs]
        if isinstance(inputs, (list, tuple)) and inputs and not np.isscalar(inputs[0]):
            return [np.asarray(x, dtype=np.int64).reshape(-1) for x in inputs]
        arr = np.asarray(inputs)
        if arr.dtype.kind not in "iu":
            raise UnembedError("must be text or integer token ids. Got dtype "
                               f"{arr.dtype} instead.", argument="inputs")
        arr = arr.astype(np.int64)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2:
            raise UnembedError("must have shape (T,) or (B, T). Got shape "
                               f"{arr.shape} instead.", argument="inputs")
        v = self.head.n_labels
        if arr.size and (arr.min() < 0 or arr.max() >= v):
            raise UnembedError(f"The 'inputs' token ids must be in [0, {v}). Got ids from "
                               f"{arr.min()} to {arr.max()}.")
        return list(arr)

    def _batches(self, inputs: Any) -> list[NDArray[np.int64]]:
        """Sequences of one length in one batch (B, T); of different lengths one by one (no
        padding, so no padding token is assumed); empty ones skipped."""
        seqs = self.as_ids(inputs)
        same = len({len(s) for s in seqs}) == 1
        batches = [np.stack(seqs)] if same else [s[None, :] for s in seqs]
        return [b for b in batches if b.shape[1] > 0]

    def _run_batch(self, batch: NDArray[np.int64]) -> tuple[NDArray[np.float64], Any]:
        import torch

        model = self._torch_model()
        h, out = self._captured(lambda: run_model(self.path, lambda: model(
            input_ids=torch.as_tensor(batch, device=self._device))))
        return h, logits_out(out.logits.reshape(-1, self.head.n_labels))

    # ------------------------------------------------------------------ for exports
    def load_fresh(self) -> Any:
        """A second, independent copy of the torch model (to be modified and saved)."""
        return load_torch_lm(self.path, trust_remote_code=self.trust_remote_code)

    def output_layer(self, model: Any) -> Any:
        """The output Linear of a torch model of this family."""
        return model.get_output_embeddings()

    def reopen(self, path: str | os.PathLike[str]) -> HFCausalLM:
        """The model saved at ``path``, read the same way (same rows)."""
        return load_hf_lm(path, fold=self.rows == "folded", strict=self.head.strict,
                          trust_remote_code=self.trust_remote_code,
                          device=self.device_name, model_dtype=self.model_dtype)

    def random_inputs(self, n: int, length: int, *, seed: int = 0) -> NDArray[np.int64]:
        """Token ids of shape (n, length) drawn uniformly from the vocabulary."""
        rng = np.random.default_rng(seed)
        vocab = self.head.n_labels
        if self.tokenizer is not None:
            vocab = min(vocab, len(self.tokenizer))
        return rng.integers(0, vocab, size=(n, length), dtype=np.int64)


def load_torch_lm(path: Path, dtype: Any = "auto", *, trust_remote_code: bool = False) -> Any:
    """``AutoModelForCausalLM.from_pretrained(path)`` locally, in eval mode; refused when a
    weight is missing from the checkpoint (:func:`unembed.sources.hf_dir.from_pretrained`)."""
    tf = _transformers()
    return from_pretrained(tf.AutoModelForCausalLM, Path(path), "a causal LM",
                           trust_remote_code=trust_remote_code, dtype=dtype)


def _opt_norm(config: Any, fam: LMFamily) -> tuple[LMFamily, bool, str]:
    """OPT: no usable final norm when it is removed or followed by ``project_out``."""
    proj = getattr(config, "word_embed_proj_dim", config.hidden_size) != config.hidden_size
    no_norm = (not getattr(config, "do_layer_norm_before", True)
               or getattr(config, "_remove_final_layer_norm", False))
    if proj:
        return (LMFamily(fam.head, fam.embed, None, None), True,
                "the hidden state is the output of the Linear project_out, which can absorb A")
    if no_norm:
        return LMFamily(fam.head, fam.embed, None, None), False, _NO_REPARAM
    return fam, False, _NORM_REPARAM


_NORM_REPARAM = ("the hidden state leaves a final norm whose gain is diagonal: only a diagonal "
                 "A can be absorbed, not every invertible A")
_NO_REPARAM = "the module producing the hidden state is not a Linear that could absorb A"


def load_hf_lm(path: str | os.PathLike[str], *, fold: bool = False,
               strict: bool = True, trust_remote_code: bool = False,
               device: str | None = None, model_dtype: str | None = None) -> HFCausalLM:
    """Read the head of a HuggingFace causal LM from a local directory.

    Parameters
    ----------
    path : directory
        Holds ``config.json``, the weights (``model.safetensors``, sharded with an index, or
        ``pytorch_model.bin``) and, ideally, the tokenizer (labels are its tokens; without one
        they are row numbers).
    fold : bool
        Fold the final norm's gain (and shift) into the head (``head.rows`` "folded");
        default: the stored rows.
    strict : bool
        Refuse heads with all-zero or identical rows (see :class:`~unembed.head.Head`).
    device, model_dtype : str, optional
        Where the forward passes run and in what dtype (:mod:`unembed.device`; default: CUDA
        when present, else the CPU; the checkpoint's dtype). The head is the checkpoint's.

    Returns
    -------
    HFCausalLM
        ``.head`` is the (V, d) head in float64; the torch model is loaded only when hidden
        states or logits are asked for. For the families of :data:`FAMILIES` only the head's
        and the final norm's tensors are read (memory-mapped) to build the head.
    """
    p = Path(path)
    config = read_config(p, trust_remote_code=trust_remote_code)
    model_type = str(getattr(config, "model_type", ""))
    fam = FAMILIES.get(model_type)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    if fam is None:
        return _load_generic(p, config, fold=fold, strict=strict, tied=tied,
                             trust_remote_code=trust_remote_code, device=device,
                             model_dtype=model_dtype)
    reparam, reparam_reason = False, _NORM_REPARAM
    if model_type == "opt":
        fam, reparam, reparam_reason = _opt_norm(config, fam)
    ckpt = Checkpoint(p)
    name = ckpt.resolve(fam.embed) if tied else ckpt.resolve(fam.head)
    if name is None:
        want = fam.embed if tied else fam.head
        raise UnembedError(f"the {model_type} checkpoint has no tensor {want!r} "
                           f"({'tied' if tied else 'untied'} head).", path=p)
    W, dtype = ckpt.get(name)
    _check_head_shape(p, config, name, W.shape, reparam and model_type == "opt")
    norm = None
    if fam.norm is not None and fam.norm_kind is not None:
        gname = ckpt.resolve(fam.norm + ".weight")
        if gname is None:
            raise UnembedError(f"the {model_type} checkpoint has no final norm weight "
                               f"{fam.norm + '.weight'!r}.", path=p)
        g, _ = ckpt.get(gname)
        gain = np.asarray(g, dtype=np.float64)
        if gain.shape != (W.shape[1],):
            raise UnembedError(f"the final norm weight {gname!r} has shape {gain.shape}, but "
                               f"the "
                               f"head {name!r} has {W.shape[1]} columns.", path=p)
        if fam.norm_kind == "rmsnorm_1p":
            gain = 1.0 + gain
        shift = None
        bname = ckpt.resolve(fam.norm + ".bias") if fam.norm_kind == "layernorm" else None
        if bname is not None:
            shift = np.asarray(ckpt.get(bname)[0], dtype=np.float64)
            if shift.shape != gain.shape:
                raise UnembedError(f"the final norm bias {bname!r} has shape {shift.shape}; "
                                   f"expected {gain.shape}.", path=p)
        norm = FinalNorm(name=fam.norm, kind=fam.norm_kind, gain=gain, shift=shift)
    return HFCausalLM(p, config, fold=fold, strict=strict, raw_W=W, raw_b=None, dtype=dtype,
                      norm=norm, tied=tied, family=model_type, reparam=reparam,
                      reparam_reason=reparam_reason, trust_remote_code=trust_remote_code,
                      device=device, model_dtype=model_dtype)


def _check_head_shape(p: Path, config: Any, name: str, shape: tuple[int, ...],
                      projected: bool) -> None:
    """The head tensor must be (vocab_size, hidden size) as config.json says (OPT with
    ``project_out``: word_embed_proj_dim columns); one line naming both numbers otherwise."""
    if len(shape) != 2:
        raise UnembedError(f"the head tensor {name!r} has shape {shape}; expected a matrix.",
                           path=p)
    vocab = getattr(config, "vocab_size", None)
    if isinstance(vocab, int) and shape[0] != vocab:
        raise UnembedError(f"config.json says vocab_size {vocab}, but the checkpoint's "
                           f"{name!r} "
                           f"has {shape[0]} rows.", path=p)
    key = "word_embed_proj_dim" if projected else "hidden_size"
    d = getattr(config, key, None)
    if isinstance(d, int) and shape[1] != d:
        raise UnembedError(f"config.json says {key} {d}, but the checkpoint's {name!r} has "
                           f"{shape[1]} columns.", path=p)


def _load_generic(p: Path, config: Any, *, fold: bool, strict: bool, tied: bool,
                  trust_remote_code: bool = False, device: str | None = None,
                  model_dtype: str | None = None) -> HFCausalLM:
    """Any other architecture: the output embeddings must be a Linear; the final norm is a
    module named like one (``norm``, ``ln_f``, ``final_layer_norm``, ...) whose output is
    confirmed, by running the model, to be exactly what the head receives."""
    import torch

    model = load_torch_lm(p, trust_remote_code=trust_remote_code)
    out = model.get_output_embeddings()
    mt = getattr(config, "model_type", "?")
    if not isinstance(out, torch.nn.Linear):
        raise UnembedError(f"cannot find the output layer of the {mt!r} architecture exactly "
                           f"(get_output_embeddings() gives {type(out).__name__}).", path=p)
    W, dtype = tensor_to_numpy(out.weight)
    b = None if out.bias is None else to_f64(out.bias)
    tied = tied and out.weight is model.get_input_embeddings().weight
    norm = _find_generic_norm(model, out, dtype)
    if fold and norm is None:
        raise UnembedError("no final norm could be confirmed right before the head of the "
                           f"{mt!r} architecture, so there is no gain to fold; use the stored "
                           f"rows.", path=p)
    reason = _NORM_REPARAM if norm is not None else (
        "unknown for this architecture; not claimed")
    lm = HFCausalLM(p, config, fold=fold, strict=strict, raw_W=W, raw_b=b, dtype=dtype,
                    norm=norm, tied=tied, family=f"{mt} (generic)", generic_model=model,
                    reparam=False, reparam_reason=reason, trust_remote_code=trust_remote_code,
                    device=device, model_dtype=model_dtype)
    _ = lm.model  # the model is loaded already: check its logits against the head now
    return lm


def _find_generic_norm(model: Any, out: Any, dtype: str) -> FinalNorm | None:
    import torch

    cands = []
    for name, mod in model.named_modules():
        parts = name.split(".")
        if parts[-1] in _GENERIC_NORM_NAMES and not any(x.isdigit() for x in parts):
            cands.append((name, mod))
    if not cands:
        return None
    ids = torch.zeros((1, 4), dtype=torch.long)
    mods = {"head": out, **{n: m for n, m in cands}}
    with capture_inputs(mods) as cap, torch.no_grad():
        model(input_ids=ids)
    for name, mod in cands:
        if name not in cap or cap[name].shape != cap["head"].shape:
            continue
        for kind in guess_norm_kinds(mod):
            norm = norm_from_module(name, mod, kind)
            if norm_matches(norm, mod, cap[name], dtype):
                with torch.no_grad():
                    y = mod(cap[name])
                if torch.equal(y, cap["head"]):
                    return norm
    return None
