"""The adapter of a TransformerLens ``HookedTransformer``: its exact head ``W = W_U^T`` (V, d),
``b = b_U``, the hidden states at ``unembed.hook_in`` and what its weight processing did
(:func:`detect_processing`; see :mod:`unembed.sources.tlens`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed.bounds import Rows
from unembed.head import Head
from unembed.sources._repr import model_html, model_repr
from unembed.sources._torch import FinalNorm, check_logits_equal, to_f64
from unembed.sources.torch_base import head_through_norm

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
    __repr__ = model_repr
    _repr_html_ = model_html

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
            "family": "transformer_lens", "folded": proc.fold_ln,
            "norm": norm, "norm_kind": None if fnorm is None else fnorm.kind,
            "tied": False,
            "processing": proc.to_dict(), "notes": list(proc.notes),
        }
        return Head(W=nh.W, b=nh.b, labels=labels or (), link="softmax", softcap=proc.softcap,
                    null_space=nh.null_space, reparam=False, dtype=self.dtype, meta=meta,
                    source=f"TransformerLens HookedTransformer ({m.cfg.model_name})",
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
            raise UnembedError("This TransformerLens model has no tokenizer, so text cannot be "
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
                raise UnembedError("Texts of different token lengths: pass them one at a time, or "
                                   "as "
                                   "token ids of shape (B, T).")
            inputs = seqs
        arr = np.asarray(inputs)
        if arr.dtype.kind not in "iu":
            raise UnembedError("must be text or integer token ids. Got dtype "
                               f"{arr.dtype} instead.", argument="inputs")
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2:
            raise UnembedError("must have shape (T,) or (B, T). Got shape "
                               f"{arr.shape} instead.", argument="inputs")
        v = int(self.model.cfg.d_vocab)
        if arr.size and (arr.min() < 0 or arr.max() >= v):
            raise UnembedError(f"The 'inputs' token ids must be in [0, {v}). Got ids from "
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
        check_logits_equal(self.head.source, "the logits at unembed.hook_out",
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
            raise UnembedError(f"The new head has shape {head.W.shape}; this model's is "
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
        raise UnembedError("reading a model as TransformerLens needs transformer_lens 3.x: pip "
                           "install "
                           "'unembed[lens]' and transformer_lens==3.9.0 (--no-deps).") from None
    version = tl_version()
    if "HookedTransformer" not in transformer_lens.__dict__:
        raise UnembedError(f"transformer_lens {version} has no HookedTransformer (4.x replaced it "
                           f"by "
                           f"TransformerBridge); unembed reads TransformerLens 3.x (tested: "
                           f"3.9.0).")
    return transformer_lens
