"""TransformerLens ``HookedTransformer`` models: the exact head and what its processing did.

A HookedTransformer computes its logits as

    z = cap * tanh((h W_U + b_U) / cap)      (``output_logits_soft_cap`` > 0)
    z = h W_U + b_U                          (all others)

with ``W_U`` of shape (d, V) and ``h`` the input of the ``unembed`` component (the hook point
``unembed.hook_in``: the output of ``ln_final``). The head read here is ``W = W_U^T`` (V, d),
``b = b_U``; the hidden states come through that hook, so ``head.logits(hidden_states(x))``
is the model's own logits (checked on first use).

TransformerLens usually processes the weights when it loads a model
(``from_pretrained(..., fold_ln=True, center_writing_weights=True, center_unembed=True)``, or
``process_weights_``), and each step changes what the rows are:

* ``fold_ln``: the final norm's gain is multiplied into W_U (and its shift into b_U); the norm
  becomes ``LNPre`` / ``RMSPre`` (no gain). The rows are then the *folded* rows
  (docs/model.md), and the hidden state is the normalised state n. After a LayerNorm n sums to
  zero, so every row may move along the all-ones direction without changing a logit, and
  fold_ln moves each row there: it *projects the rows off that null-space direction*
  (each row sums to zero over d). Logits unchanged; cosines changed.
* ``center_unembed``: the mean row is subtracted from every row (W_U's columns average zero
  over the vocabulary): a *translation*. Logits shift by the same amount for every label, so
  softmax log-probabilities are unchanged; cosines change, which is the paper's point. With a
  soft-capped head the translation is *not* a symmetry: a uniform shift does not survive the
  tanh, so the processed model's log-probabilities differ from the original's.
  TransformerLens 3.x refuses this in ``from_pretrained`` but ``process_weights_`` still does
  it; unembed says so when it sees centred rows under a soft-cap.
* ``center_writing_weights``: every weight writing to the residual stream has mean zero over
  d_model. The following LayerNorm removes the mean anyway, so neither the head nor h changes.

None of this is recorded on the model, so :func:`detect_processing` reads it off the weights
(exact zero-mean checks up to the float precision) and the config (``normalization_type``).

Ways in:

* a ``HookedTransformer`` object (``unembed.load(model)``), whatever the user did to it;
* a model name from TransformerLens's model table (``gpt2``, ``gpt2-small``, ``pythia-70m``,
  ...), read from the local HuggingFace hub cache the way ``HookedTransformer.from_pretrained``
  reads it there once downloaded (:func:`load_pretrained`; CLI: ``--model gpt2 --as
  transformer-lens``), with TransformerLens's own processing defaults (fold_ln,
  center_writing_weights, center_unembed all True) unless turned off. Never a download: the
  snapshot is resolved by :mod:`unembed.sources.hub_cache` first, the HuggingFace model is read
  from it (``local_files_only``), and TransformerLens converts it (``hf_model=``) with every
  HuggingFace call it makes told ``local_files_only=True``;
* a local HuggingFace directory (a fine-tuned model of an architecture TransformerLens
  converts: ``--model DIR --as transformer-lens``), built as ``from_pretrained`` builds a model
  (its config and state-dict converters take a local path; ``from_pretrained`` itself takes
  only names), with the same guards on the processing;
* models TransformerLens keeps in its own format (``NeelNanda/...``, ``ArthurConmy/...``,
  ``Baidicoot/...``: the toy models ``gelu-1l``, ``attn-only-2l``, ``solu-1l``, ...; a
  ``config.json`` of a ``HookedTransformerConfig`` and a ``*final.pth`` state dict), built as
  ``from_pretrained`` builds them, except that the state dict is read with ``weights_only=True``
  (TransformerLens itself unpickles it with ``weights_only=False``) and the tokenizer is taken
  from the hub cache only (without it the labels are row numbers, said in the notes).

Every conversion from a HuggingFace model is checked against that model: the converted model's
probabilities on random token ids must equal the HuggingFace model's (within the dtype's
tolerance), or the model is refused rather than read.

* a state dict file with its config beside it (``NAME.safetensors`` or ``NAME.pt`` and
  ``NAME.tl_config.json``), as :func:`unembed.export.export_model` writes a TransformerLens
  model (``unembed counterexample ... --as transformer-lens``): :func:`load_state_dict_file`
  (CLI: ``--model NAME.safetensors --as transformer-lens``), so that ``unembed verify`` can
  compare what was written with the original.

Not read: a ``state_dict`` saved without that config (it holds no architecture, and
TransformerLens 3.x has no file format that does): refused with that reason.

Supported: ``transformer_lens`` 3.x (``HookedTransformer``; tested with 3.9.0). Releases 4.x
replace ``HookedTransformer`` with ``TransformerBridge``, which is not read here (refused with
that reason).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from unembed import _reprs
from unembed._checks import UnembedError, fail
from unembed._dependency_errors import reads_named_file
from unembed.bounds import Rows
from unembed.head import Head
from unembed.sources._torch import FinalNorm, check_logits_equal, to_f64
from unembed.sources.torch_base import head_through_norm

if TYPE_CHECKING:
    from unembed.export import ExportResult

__all__ = ["TLModel", "TLProcessing", "config_path", "detect_processing",
           "is_hooked_transformer", "load_hooked_transformer", "load_pretrained",
           "load_state_dict_file"]

#: Relative size below which a mean counts as zero (float32 weights: TL's own centering
#: leaves means of a few ulps of the entries).
_ZERO_MEAN = 1e-5


def is_hooked_transformer(obj: object) -> bool:
    """Whether ``obj`` is a TransformerLens ``HookedTransformer`` (without importing
    TransformerLens when it is not already imported)."""
    import sys

    mod = sys.modules.get("transformer_lens")
    if mod is None:
        return False
    cls = mod.__dict__.get("HookedTransformer")
    return cls is not None and isinstance(obj, cls)


@dataclass(frozen=True)
class TLProcessing:
    """What TransformerLens's weight processing left in a model, read off its weights.

    Attributes
    ----------
    normalization : str or None
        ``cfg.normalization_type``: "LN", "LNPre", "RMS", "RMSPre" or None.
    fold_ln : bool
        The final norm has no gain (LNPre / RMSPre): any gain is in W_U (folded rows).
    rows_off_ones : bool
        Every row of W (V, d) sums to zero over d: projected off the all-ones direction, as
        fold_ln leaves a LayerNorm model.
    center_unembed : bool
        W_U's mean over the vocabulary is zero: the rows were translated by minus their mean.
    center_writing_weights : bool or None
        The embeddings and every output matrix writing to the residual stream have mean zero
        over d_model (None when the model has none of them).
    softcap : float or None
        ``cfg.output_logits_soft_cap`` when positive.
    notes : tuple of str
        What each of these means for the rows, in words.
    """

    normalization: str | None
    fold_ln: bool
    rows_off_ones: bool
    center_unembed: bool
    center_writing_weights: bool | None
    softcap: float | None
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d


def _zero_mean(a: NDArray[np.float64], axis: int) -> bool:
    scale = float(np.abs(a).max()) if a.size else 0.0
    if scale == 0.0:
        return True
    return bool(np.abs(a.mean(axis=axis)).max() <= _ZERO_MEAN * scale)


def detect_processing(model: Any) -> TLProcessing:
    """Read which of fold_ln, center_unembed and center_writing_weights a HookedTransformer's
    weights show (see the module docstring for what each means for the rows)."""
    cfg = model.cfg
    norm = cfg.normalization_type
    W = to_f64(model.W_U).T  # (V, d)
    cap = float(cfg.output_logits_soft_cap or -1.0)
    softcap = cap if cap > 0 else None
    fold_ln = norm in ("LNPre", "RMSPre")
    off_ones = _zero_mean(W, axis=1)
    centered = _zero_mean(W, axis=0)
    writers = []
    for name, p in model.named_parameters():
        last = name.rsplit(".", 1)[-1]
        if last in ("W_E", "W_pos", "W_O", "W_out", "b_O", "b_out"):
            writers.append(to_f64(p))
    cww: bool | None = (all(_zero_mean(w, axis=-1) for w in writers) if writers else None)
    notes: list[str] = []
    if fold_ln:
        notes.append(f"final norm {norm} has no gain: the rows are the folded rows "
                     f"(W_U diag(g)), and h is the normalised state")
    if off_ones and norm in ("LN", "LNPre"):
        notes.append("every row sums to zero over d: projected off the all-ones direction "
                     "(the LayerNorm null space), as fold_ln leaves them; no logit changes, "
                     "cosines do")
    if centered:
        notes.append("the rows average to zero over the labels (center_unembed): a "
                     "translation of every row, which changes cosines"
                     + ("" if softcap else " but no softmax probability"))
    if centered and softcap:
        notes.append(f"WARNING: centred rows under a logit soft-cap ({softcap:g}): "
                     f"TransformerLens's center_unembed is not a symmetry of a soft-capped "
                     f"head (a uniform shift does not survive cap * tanh(z / cap)), so if it "
                     f"was applied this model's log-probabilities differ from the original "
                     f"model's")
    if cww:
        notes.append("weights writing to the residual stream have mean zero over d_model "
                     "(center_writing_weights): no effect on the head, nor on h after the "
                     "final LayerNorm")
    return TLProcessing(normalization=norm, fold_ln=fold_ln, rows_off_ones=off_ones,
                        center_unembed=centered, center_writing_weights=cww, softcap=softcap,
                        notes=tuple(notes))


class TLModel:
    """A HookedTransformer read by :func:`load_hooked_transformer`.

    Attributes
    ----------
    head : Head
        ``W = W_U^T`` (V, d), ``b = b_U``; ``meta["processing"]`` holds
        :meth:`TLProcessing.to_dict`, ``head.rows`` is "folded" when the final norm has no
        gain, else "raw".
    kind : str
        "transformer_lens".
    processing : TLProcessing
    """

    kind = "transformer_lens"
    __repr__ = _reprs.model_repr
    _repr_html_ = _reprs.model_html

    def __init__(self, model: Any, *, strict: bool = True) -> None:
        self.model = model
        self.processing = detect_processing(model)
        self.dtype = str(model.cfg.dtype).replace("torch.", "")
        self.head = self._build_head(strict)
        self._verified = False

    # ------------------------------------------------------------------ the head
    def _build_head(self, strict: bool) -> Head:
        m, proc = self.model, self.processing
        W = to_f64(m.W_U).T
        b = to_f64(m.b_U)
        d = W.shape[1]
        norm = proc.normalization
        fnorm: FinalNorm | None = None
        rows: Rows = "folded" if proc.fold_ln else "stored"
        if norm in ("LN", "LNPre"):
            gain, shift = ((np.ones(d), None) if norm == "LNPre"
                           else (to_f64(m.ln_final.w), to_f64(m.ln_final.b)))
            fnorm = FinalNorm(name="ln_final", kind="layernorm", gain=gain, shift=shift)
        elif norm in ("RMS", "RMSPre"):
            gain = np.ones(d) if norm == "RMSPre" else to_f64(m.ln_final.w)
            fnorm = FinalNorm(name="ln_final", kind="rmsnorm", gain=gain, shift=None)
        # the folded rows' gain is 1 (LNPre / RMSPre: any gain is in W_U already), so folding
        # leaves W and b as they are; the null space and the box are the shared ones
        nh = head_through_norm(W, b, fnorm, rows, self.dtype)
        labels = self._labels(W.shape[0])
        meta: dict[str, Any] = {
            "source": f"TransformerLens HookedTransformer ({m.cfg.model_name})",
            "family": "transformer_lens", "folded": proc.fold_ln,
            "norm": norm, "norm_kind": None if fnorm is None else fnorm.kind,
            "tied": False,
            "processing": proc.to_dict(), "notes": list(proc.notes),
        }
        return Head(W=nh.W, b=nh.b, labels=labels or (), link="softmax", softcap=proc.softcap,
                    null_space=nh.null_space, reparam=False, dtype=self.dtype, meta=meta,
                    strict=strict, rows=rows, hidden_bound=nh.hidden_bound,
                    null_space_reason=nh.null_space_reason,
                    reparam_reason="not claimed for TransformerLens models",
                    labels_from="tokenizer" if labels else "row numbers")

    def _labels(self, n: int) -> tuple[str, ...] | None:
        tok = self.tokenizer
        if tok is None:
            return None
        from unembed.sources.hf_lm import readable_labels

        return readable_labels(tok, n)

    @cached_property
    def tokenizer(self) -> Any:
        """The model's tokenizer, or None."""
        return self.model.tokenizer

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` (no BOS added)."""
        if self.tokenizer is None:
            raise fail("This TransformerLens model has no tokenizer, so text cannot be "
                       "tokenized; pass token ids instead.")
        return [int(i) for i in self.tokenizer(text, add_special_tokens=False)["input_ids"]]

    def token_limits(self) -> tuple[int, int | None]:
        """(vocabulary size d_vocab, most positions in one sequence n_ctx)."""
        return int(self.model.cfg.d_vocab), int(self.model.cfg.n_ctx)

    # ------------------------------------------------------------------ running the model
    def _as_tokens(self, inputs: Any) -> Any:
        import torch

        if isinstance(inputs, str):
            inputs = [inputs]
        if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], str):
            seqs = [self.tokenize(t) for t in inputs]
            if len({len(s) for s in seqs}) != 1:
                raise fail("Texts of different token lengths: pass them one at a time, or as "
                           "token ids of shape (B, T).")
            inputs = seqs
        arr = np.asarray(inputs)
        if arr.dtype.kind not in "iu":
            raise fail(f"The 'inputs' argument must be text or integer token ids. Got dtype "
                       f"{arr.dtype} instead.")
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2:
            raise fail(f"The 'inputs' argument must have shape (T,) or (B, T). Got shape "
                       f"{arr.shape} instead.")
        v = int(self.model.cfg.d_vocab)
        if arr.size and (arr.min() < 0 or arr.max() >= v):
            raise fail(f"The 'inputs' token ids must be in [0, {v}). Got ids from "
                       f"{arr.min()} to {arr.max()}.")
        return torch.from_numpy(arr.astype(np.int64))

    def forward(self, inputs: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(hidden states (n, d), the model's logits (n, V)) in float64, through the hook
        ``unembed.hook_in``; n = B * T positions."""
        import torch

        tokens = self._as_tokens(inputs)
        got: dict[str, Any] = {}

        def grab(x: Any, hook: Any) -> Any:
            got["h"] = x.detach()
            return x

        with torch.no_grad():
            z = self.model.run_with_hooks(tokens, fwd_hooks=[("unembed.hook_in", grab)])
        d, v = self.head.d, self.head.n_labels
        h = to_f64(got["h"]).reshape(-1, d)
        zz = to_f64(z).reshape(-1, v)
        if not self._verified:
            self._check(h, zz)
        return h, zz

    def _check(self, h: NDArray[np.float64], z: NDArray[np.float64]) -> None:
        check_logits_equal(self.head.meta["source"], "the logits at unembed.hook_out",
                           self.head.logits(h), z, self.dtype)
        self._verified = True

    def hidden_states(self, inputs: Any) -> NDArray[np.float64]:
        """The input of the unembed (n, d), float64."""
        return self.forward(inputs)[0]

    def model_logits(self, inputs: Any) -> NDArray[np.float64]:
        """The model's own logits (n, V), float64."""
        return self.forward(inputs)[1]

    def random_inputs(self, n_sequences: int, length: int, *, seed: int = 0) -> Any:
        """Token ids (n_sequences, length) drawn uniformly from the vocabulary."""
        rng = np.random.default_rng(seed)
        return rng.integers(0, int(self.model.cfg.d_vocab), size=(n_sequences, length))

    def with_head(self, head: Head) -> TLModel:
        """A copy of the model with W_U = head.W^T and b_U = head.b (same shape), read back."""
        import copy

        import torch

        if head.W.shape != self.head.W.shape:
            raise fail(f"The new head has shape {head.W.shape}; this model's is "
                       f"{self.head.W.shape}.")
        new = copy.deepcopy(self.model)
        dt = new.W_U.dtype
        with torch.no_grad():
            new.unembed.W_U.copy_(torch.tensor(head.W.T, dtype=dt))
            new.unembed.b_U.copy_(torch.tensor(head.bias, dtype=dt))
        return TLModel(new, strict=head.strict)


def load_hooked_transformer(model: Any, *, strict: bool = True) -> TLModel:
    """Read a TransformerLens ``HookedTransformer``: the head ``W_U^T`` (V, d), ``b_U`` and
    which weight processing was applied (see the module docstring). Models with a softcap and
    centred rows get a warning note in ``head.meta["notes"]``."""
    cfg = model.cfg
    out = TLModel(model, strict=strict)
    for note in out.processing.notes:
        if note.startswith("WARNING"):
            import warnings

            warnings.warn(note, UserWarning, stacklevel=2)
    out.forward(out.random_inputs(2, min(6, int(cfg.n_ctx)), seed=0))  # verify now
    return out


def tl_version() -> str:
    """The installed transformer_lens version (its module has no ``__version__``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("transformer_lens")
    except PackageNotFoundError:
        return "unknown"


def _transformer_lens() -> Any:
    """The ``transformer_lens`` module, refused with the reason when it is missing or has no
    ``HookedTransformer`` (4.x)."""
    try:
        import transformer_lens
    except ImportError:
        raise fail("reading a model as TransformerLens needs transformer_lens 3.x: pip install "
                   "'unembed[lens]' and transformer_lens==3.9.0 (--no-deps).") from None
    version = tl_version()
    if "HookedTransformer" not in transformer_lens.__dict__:
        raise fail(f"transformer_lens {version} has no HookedTransformer (4.x replaced it by "
                   f"TransformerBridge); unembed reads TransformerLens 3.x (tested: 3.9.0).")
    return transformer_lens


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
        raise fail(f"{name}: not a model name TransformerLens knows (from_pretrained takes "
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
            raise fail(f"{name}: a file, not a model name or directory; a TransformerLens "
                       f"state dict with its config {config_path(local).name} beside it is "
                       f"read by load_state_dict_file.")
        if not (local / "config.json").is_file():
            raise fail(f"{name}: --as transformer-lens takes a model name from "
                       f"TransformerLens's table (read from the hub cache) or a local "
                       f"HuggingFace model directory (config.json) of an architecture it "
                       f"converts; this is neither.")
        if revision is not None:
            raise fail(f"{name}: --revision applies to hub names, not to a local directory.")
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
                    raise fail(f"--model-dtype {dtype}: not a torch dtype.")
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
        raise fail(f"{name}: TransformerLens {tl_version()} cannot build it from {where} "
                   f"({type(e).__name__}: {text}).") from None
    model.eval()
    if hf_model is not None:
        notes.append(_check_against_hf(name, model, hf_model, dtype or "float32"))
    out = load_hooked_transformer(model, strict=strict)
    if snap is not None:
        hub_cache.mark(out, snap)
        out.head.meta["source"] = (f"TransformerLens {official} from the hub cache "
                                   f"({snap.repo_id}@{snap.revision}, {snap.path})")
    else:
        out.head.meta["source"] = f"TransformerLens conversion of {where}"
    out.head.meta["transformer_lens"] = {"name": name, "official_name": official,
                                         "version": tl_version(),
                                         "dtype": dtype or "float32", **kw}
    out.head.meta["notes"] = [*out.head.meta.get("notes", []), *notes]
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
        raise fail(f"--model-dtype {dtype}: not a torch dtype.")
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

    from unembed.equivalence import compare_logits

    v = int(model.cfg.d_vocab)
    ids = torch.from_numpy(np.random.default_rng(0).integers(
        0, v, size=(2, min(8, int(model.cfg.n_ctx)))))
    with torch.no_grad():
        z_tl = to_f64(model(ids))
        z_hf = to_f64(hf_model(ids).logits)
    if z_tl.shape != z_hf.shape:
        raise fail(f"{name}: TransformerLens's conversion has logits of shape "
                   f"{tuple(z_tl.shape)}, the HuggingFace model {tuple(z_hf.shape)}; refused.")
    eq = compare_logits(z_hf.reshape(-1, v), z_tl.reshape(-1, v), "softmax", dtype=dtype)
    if not eq.equivalent:
        raise fail(f"{name}: TransformerLens's conversion does not reproduce the HuggingFace "
                   f"model's probabilities ({eq.verdict}); refused rather than read wrongly.")
    return (f"TransformerLens's conversion checked against the HuggingFace model on "
            f"{ids.shape[0] * ids.shape[1]} positions: max |dp| = {eq.max_abs_dp:.2g}")


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
        raise fail(f"--model-dtype {dtype}: not a torch dtype.")
    cfg = loading.get_pretrained_model_config(
        official, fold_ln=kw["fold_ln"], device="cpu", dtype=torch_dtype,
        cache_dir=str(snap.cache_dir), local_files_only=True, revision=snap.commit)
    finals = sorted(p for p in snap.path.iterdir() if p.name.endswith("final.pth"))
    if not finals:
        raise fail(f"{snap.path}: no *final.pth state dict in the snapshot (TransformerLens "
                   f"reads its own-format models from that file).")
    try:
        sd = torch.load(finals[0], map_location="cpu", weights_only=True)
    except Exception as e:
        raise fail(f"{finals[0]}: not a state dict of tensors readable with weights_only=True "
                   f"({type(e).__name__}); unembed does not unpickle it.") from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise fail(f"{finals[0]}: not a state dict of tensors.")
    sd = {k: v.to(torch_dtype) for k, v in sd.items()}
    if cfg.original_architecture == "neel-solu-old":
        sd = loading.convert_neel_solu_old_weights(sd, cfg)
    elif cfg.original_architecture == "mingpt":
        sd = loading.convert_mingpt_weights(sd, cfg)
    if cfg.positional_embedding_type == "shortformer":
        # what from_pretrained does: no processing for shortformer models
        kw.update(fold_ln=False, center_unembed=False, center_writing_weights=False)
    tok = _named_tokenizer(cfg.tokenizer_name, notes, snap.path)
    if tok is None:
        cfg.tokenizer_name = None
    model = tl.HookedTransformer(cfg, tok, move_to_device=False)
    model.load_and_process_state_dict(sd, fold_value_biases=True, **kw)
    return model


# ---------------------------------------------------------------- state dicts and their config
#: What the config file beside a written state dict says it is (its "format" field).
CONFIG_FORMAT = "unembed: the HookedTransformerConfig of a TransformerLens state dict"
#: Suffixes of the state dicts written and read here: safetensors, else ``torch.save``.
STATE_DICT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


def config_path(state_dict: str | os.PathLike[str]) -> Path:
    """``dir/NAME.tl_config.json``, the config beside the state dict ``dir/NAME.EXT``.

    >>> config_path("out/gpt2-neg.safetensors").as_posix()
    'out/gpt2-neg.tl_config.json'
    """
    p = Path(state_dict)
    return p.with_name(p.stem + ".tl_config.json")


def check_state_dict_target(out: Path, *, force: bool) -> None:
    """Refuse, before any work, a state dict target that could not be read back: a suffix that
    names no state dict format, or a config beside it that exists (without ``force``)."""
    from unembed._checks import file_error
    from unembed._io import check_target

    if out.suffix not in STATE_DICT_SUFFIXES:
        raise file_error(out, f"a TransformerLens model is written as a state dict: use a "
                              f"{' or '.join(STATE_DICT_SUFFIXES[:2])} suffix.")
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


def _read_config(path: Path, tl: Any) -> tuple[Any, str]:
    """The HookedTransformerConfig in ``path`` (written by :func:`write_config`) and the
    TransformerLens version that wrote it; anything else is refused naming the file."""
    import torch

    from unembed._checks import file_error, read_json

    record = read_json(path, "TransformerLens config")
    if not isinstance(record, dict) or record.get("format") != CONFIG_FORMAT:
        raise file_error(path, f"not a config unembed wrote beside a TransformerLens state dict "
                               f"(its \"format\" is not {CONFIG_FORMAT!r}).")
    fields = record.get("config")
    if not isinstance(fields, dict):
        raise file_error(path, "its \"config\" is not a JSON object of HookedTransformerConfig "
                               "fields.")
    for name in ("d_model", "d_vocab", "n_layers", "n_ctx", "dtype"):
        if name not in fields:
            raise file_error(path, f"its config lacks the field {name!r}.")
    dtype = torch.__dict__.get(str(fields["dtype"]))
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise file_error(path, f"its config's dtype {fields['dtype']!r} is not a torch floating "
                               f"dtype.")
    from unembed.sources.tl_config import check_fields

    check_fields(path, fields, tl.HookedTransformerConfig)
    fields = {**fields, "dtype": dtype, "device": "cpu", "n_devices": 1}
    try:
        cfg = tl.HookedTransformerConfig.from_dict(fields)
    except Exception as e:
        text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise file_error(path, f"not a HookedTransformerConfig TransformerLens {tl_version()} "
                               f"accepts ({type(e).__name__}: {text}).") from None
    return cfg, str(record.get("transformer_lens", "unknown"))


def _read_state_dict(path: Path, suffix: str) -> dict[str, Any]:
    """The tensors of a state dict file (safetensors by ``suffix``, else a torch file read with
    ``weights_only=True``); anything but a flat dict of named tensors is refused."""
    import torch

    from unembed._checks import file_error

    if suffix == ".safetensors":
        from safetensors.torch import load_file

        from unembed.sources.files import check_safetensors

        check_safetensors(path)
        try:
            sd: object = load_file(str(path))
        except Exception as e:
            raise file_error(path, f"not a readable safetensors file ({type(e).__name__}).") \
                from None
    else:
        from unembed.sources.files import torch_load

        sd = torch_load(path)
    if not isinstance(sd, dict) or not sd or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise file_error(path, "not a state dict (a flat dict of named tensors).")
    return sd


def _check_fits(path: Path, cpath: Path, sd: dict[str, Any], model: Any, declared: Any) -> None:
    """Refuse a state dict that is not the config's model: a tensor missing or extra, of
    another shape, or a parameter stored in another dtype than the config declares."""
    from unembed._checks import file_error

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
        raise file_error(path, f"does not fit its config {cpath.name}: {problem}; refused.")


def _named_tokenizer(name: object, notes: list[str], where: Path) -> Any:
    """The tokenizer a config (``where``) names by hub name, read from the hub cache only; None
    (and a note) when it is not there. A name that is not a hub name (a directory, any path)
    is refused: a config does not lead unembed to read files it was not given."""
    if not name:
        return None
    from unembed._checks import file_error
    from unembed.sources import hub_cache
    from unembed.sources._paths import check_tree
    from unembed.sources.hf_dir import load_tokenizer

    if not isinstance(name, str) or not hub_cache.looks_like_repo_id(name):
        raise file_error(where, f"names the tokenizer {str(name)[:80]!r}, which is not a hub "
                                f"name (ORG/NAME); a TransformerLens config's tokenizer is read "
                                f"from the hub cache only, never from a path; refused.")
    try:
        snap = hub_cache.resolve(name)
    except UnembedError:
        snap = None
    tok = None if snap is None else load_tokenizer(check_tree(snap.path, "tokenizer directory"))
    if tok is None:
        notes.append(f"its tokenizer {name} is not in the hub cache: labels are row numbers "
                     f"and inputs must be token ids")
    return tok


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
    from unembed._checks import file_error, regular_file

    p = regular_file(path, "state dict")
    if p.suffix not in STATE_DICT_SUFFIXES:
        raise file_error(p, f"not a state dict file ({', '.join(STATE_DICT_SUFFIXES)}).")
    from unembed.sources._paths import contained

    cpath = contained(p.parent, config_path(p).name, "TransformerLens config")
    out = _load_written(p, p.suffix, cpath, dtype=dtype, strict=strict,
                        tokenizer=None, find_tokenizer=True)
    if labels is not None:
        from unembed.sources.sidecar import relabel

        relabel(out, labels, unique=unique_labels)
    return out


def _load_written(path: Path, suffix: str, cpath: Path, *, dtype: str | None, strict: bool,
                  tokenizer: Any, find_tokenizer: bool) -> TLModel:
    """:func:`load_state_dict_file` on a state dict whose format is named by ``suffix`` and
    whose config is ``cpath`` (an export reads its temporaries back through this)."""
    import contextlib
    import io
    import warnings

    import torch

    from unembed._checks import file_error

    tl = _transformer_lens()
    if not cpath.is_file():
        raise file_error(path, f"a TransformerLens state dict holds no architecture, and its "
                               f"config {cpath.name} (which unembed writes beside the state "
                               f"dicts it exports) is not beside it; refused.")
    cfg, written_with = _read_config(cpath, tl)
    declared = cfg.dtype
    if dtype is not None:
        run = torch.__dict__.get(dtype)
        if not isinstance(run, torch.dtype) or not run.is_floating_point:
            raise fail(f"--model-dtype {dtype}: not a torch dtype.")
        cfg.dtype = run
    sd = _read_state_dict(path, suffix)
    from unembed.sources.tl_config import check_against_state_dict

    check_against_state_dict(cpath, cfg, {k: tuple(v.shape) for k, v in sd.items()})
    notes: list[str] = []
    if tokenizer is None and find_tokenizer:
        tokenizer = _named_tokenizer(cfg.tokenizer_name, notes, cpath)
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
        raise file_error(cpath, f"TransformerLens {tl_version()} cannot build a model from this "
                                f"config ({type(e).__name__}: {text}).") from None
    _check_fits(path, cpath, sd, model, declared)
    model.load_state_dict(sd, strict=True)
    model.eval()
    if written_with != tl_version():
        notes.append(f"written with TransformerLens {written_with}, read with {tl_version()}")
    out = load_hooked_transformer(model, strict=strict)
    out.head.meta["source"] = f"TransformerLens state dict {path} (config {cpath.name})"
    out.head.meta["transformer_lens"] = {"state_dict": str(path), "config": str(cpath),
                                         "version": tl_version(), "written_with": written_with,
                                         "dtype": str(cfg.dtype).replace("torch.", "")}
    out.head.meta["notes"] = [*out.head.meta.get("notes", []), *notes]
    return out


def export_tl(model: TLModel, head: Head, out: Path, tmp: Path, inputs: Any, seed: int, *,
              force: bool) -> ExportResult:
    """Write the HookedTransformer's state dict with W_U, b_U from ``head`` (``.safetensors``,
    or ``.pt`` via ``torch.save``) and its config beside it (:func:`config_path`), read both
    back as :func:`load_state_dict_file` reads them (``unembed verify`` too) and compare the
    re-read model with the original on ``inputs`` (token ids or texts; default: random token
    ids); raises unless equivalent (:func:`unembed.export.export_model` moves ``tmp`` to
    ``out``; the config is moved into place here, just before)."""
    from unembed._io import atomic_target
    from unembed.equivalence import compare_logits
    from unembed.export import ExportResult, require_equivalent, save_state_dict

    new = model.with_head(head)
    cpath = config_path(out)
    notes: list[str] = [f"its config is written beside it: {cpath.name} (a state dict holds "
                        f"no architecture)"]
    save_state_dict(new.model, tmp, out.suffix)
    with atomic_target(cpath, force=force) as ctmp:
        note = write_config(new, ctmp)
        if note is not None:
            notes.append(note)
        reread = _load_written(tmp, out.suffix, ctmp, dtype=None, strict=head.strict,
                               tokenizer=model.tokenizer, find_tokenizer=False)
        if inputs is None:
            notes.append("verified on 8 random sequences of 16 token ids")
            inputs = model.random_inputs(8, min(16, int(model.model.cfg.n_ctx)), seed=seed)
        z_old, z_new = model.model_logits(inputs), reread.model_logits(inputs)
        eq = compare_logits(z_old, z_new, "softmax", dtype=model.dtype)
        require_equivalent(eq, out, "state dict")
    return ExportResult(out=out, kind=model.kind, head=reread.head, equivalence=eq,
                        notes=tuple(notes))
