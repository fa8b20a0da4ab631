"""Equivalent models written back in the user's own format, verified before success.

:func:`export_model` takes a model read by :func:`unembed.load` and a new head in the same
view (e.g. the translated head of :func:`unembed.construct.translation_for_cosine`) and writes:

* HuggingFace models: a directory that ``from_pretrained`` loads unchanged (no custom code).
  A tied head is untied first (input embeddings kept, ``tie_word_embeddings`` set to false).
  A folded head is unfolded: folded rows W_f = U diag(g) become U = W_f diag(1/g), so a
  translation by c of folded rows is a translation by c / g of the stored rows; the bias the
  model would need, b = b_f - U beta, is dropped when it is the same for every label (softmax
  ignores it) and otherwise must fit the output layer's own bias.
* torch modules: a state dict (``.safetensors``, or ``.pt`` via ``torch.save``) with the
  output Linear's weight (and bias) replaced.
* TransformerLens models: the HookedTransformer's state dict (W_U, b_U replaced) and, beside
  it, its config ``NAME.tl_config.json`` (a state dict holds no architecture), re-read from
  the two files as :func:`unembed.sources.tlens.load_state_dict_file` reads them.
* scikit-learn: the estimator with ``coef_`` / ``intercept_`` replaced, pickled.

Every export is written into a temporary path beside the target, re-read from there, run on
inputs next to the original (tokens drawn from the vocabulary, random images or features, or
the caller's data) and compared (:func:`unembed.equivalence.compare_logits`); only an
equivalent result is moved into place. An existing target needs ``force=True``.
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError, fail
from unembed._io import atomic_target, is_pickle
from unembed._progress import progress_bars
from unembed.equivalence import Equivalence, compare_logits
from unembed.head import Head
from unembed.sources._paths import contained
from unembed.sources.base import (
    EXPORT_KINDS,
    HFExportable,
    LoadedModel,
    SklearnExportable,
    TorchExportable,
    as_hf,
    as_sklearn,
    as_spacy,
    as_tl,
    as_torch,
    not_exportable,
)

__all__ = ["ExportResult", "export_model"]

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt")


@dataclass(frozen=True)
class ExportResult:
    """What was written and how it was checked.

    ``head`` is the head re-read from the written model, in the same view as the input head;
    ``equivalence`` compares the original and the written model run on the same inputs.
    """

    out: Path
    kind: str
    head: Head
    equivalence: Equivalence
    untied: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "kind": self.kind, "untied": self.untied,
                "rows": self.head.rows, "notes": list(self.notes),
                "equivalence": self.equivalence.to_dict()}


Step = Callable[[str], None]


def _check_same_shape(model: LoadedModel, head: Head) -> None:
    old: Head = model.head
    if head.W.shape != old.W.shape:
        raise fail(f"export_model: the new head has shape {head.W.shape}, the model's head "
                   f"{old.W.shape}.")
    if head.labels != old.labels:
        raise fail("export_model: the new head's labels differ from the model's.")
    if head.link != old.link or head.softcap != old.softcap:
        raise fail("export_model: the new head's link or soft-cap differs from the model's.")


def require_equivalent(eq: Equivalence, out: Path, what: str) -> None:
    """Raise (so that the temporary is removed and ``out`` left as it was) unless the written
    result is equivalent."""
    if not eq.equivalent:
        raise fail(f"export_model: the written {what} is not equivalent to the original "
                   f"({eq.verdict}); nothing was written to {out}.")


def _unfold(model: HFExportable, head: Head) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The stored (raw) weight and bias that realise ``head`` given in the model's view."""
    if head.rows != "folded":
        return np.array(head.W), np.array(head.bias)
    norm = model.norm
    if norm is None:
        raise fail("The head is in the folded view, but the model has no final norm to "
                   "unfold it with.")
    g = norm.gain
    if np.any(g == 0):
        raise fail("The final norm has zero gains, so folded rows cannot be unfolded; export "
                   "from the stored rows (without fold=True).")
    U = head.W / g[None, :]
    b = head.bias - (U @ norm.shift if norm.shift is not None else 0.0)
    return U, np.asarray(b, dtype=np.float64)


def _bias_to_write(model: HFExportable | TorchExportable | SklearnExportable, head: Head,
                   b_new: NDArray[np.float64], has_bias: bool,
                   notes: list[str]) -> NDArray[np.float64] | None:
    """The output layer's new bias, or None when it has none and needs none."""
    if has_bias:
        return b_new
    old = np.zeros_like(b_new) if model.raw_b is None else model.raw_b
    delta = b_new - old
    spread = float(delta.max() - delta.min()) if delta.size else 0.0
    scale = 1.0 + float(np.abs(b_new).max(initial=0.0))
    if spread <= 1e-9 * scale:
        if abs(float(delta.mean())) > 1e-12 * scale:
            notes.append(f"a uniform logit shift of {float(delta.mean()):.6g} was dropped "
                         f"(softmax ignores it; the output layer has no bias)")
        return None
    raise fail(f"The new head needs a different bias per label (spread {spread:.3g}), but "
               f"the model's output layer has no bias, so it cannot be written.")


def _tensor(a: NDArray[np.float64], dtype: Any) -> Any:
    """A float64 array as a torch tensor of ``dtype`` (a writable copy first)."""
    import torch

    return torch.from_numpy(np.array(a, dtype=np.float64)).to(dtype)


# --------------------------------------------------------------------------- HuggingFace
def _copy_side_files(src: Path, dst: Path) -> None:
    """Tokenizer and other non-weight files of ``src`` not already written into ``dst``."""
    for f in src.iterdir():
        if not f.is_file() or (dst / f.name).exists():
            continue
        if f.is_symlink():
            try:
                contained(src, f.name)  # hub snapshots link into their blobs/; nothing else
            except UnembedError:
                continue
        if f.suffix in _WEIGHT_SUFFIXES or f.name.endswith(".index.json"):
            continue
        shutil.copy2(f, dst / f.name)


def _export_hf(model: HFExportable, head: Head, out: Path, tmp: Path, inputs: Any,
               n_sequences: int, length: int, seed: int, step: Step) -> ExportResult:
    import torch

    notes: list[str] = []
    U, b_new = _unfold(model, head)
    step("loading a copy of the model")
    loaded = model.load_fresh()
    layer = model.output_layer(loaded)
    b_write = _bias_to_write(model, head, b_new, layer.bias is not None, notes)
    untied = False
    dtype = layer.weight.dtype
    if model.tied:
        untied = True
        loaded.config.tie_word_embeddings = False
        notes.append("the tied head was untied: the input embeddings are unchanged and "
                     "tie_word_embeddings is now false")
    layer.weight = torch.nn.Parameter(_tensor(U, dtype),
                                      requires_grad=False)
    if b_write is not None:
        layer.bias = torch.nn.Parameter(_tensor(b_write, dtype),
                                        requires_grad=False)
    step(f"writing {tmp.name}")
    loaded.save_pretrained(str(tmp))
    del loaded
    _copy_side_files(model.path, tmp)
    step("re-reading the written model")
    reread = model.reopen(tmp)
    step("running both models on the same inputs")
    x = model.random_inputs(n_sequences, length, seed=seed) if inputs is None else inputs
    z_old = model.model_logits(x)
    z_new = reread.model_logits(x)
    eq = compare_logits(z_old, z_new, head.link, dtype=model.dtype)
    new_head = reread.head
    require_equivalent(eq, out, "model")
    return ExportResult(out=out, kind=model.kind, head=new_head, equivalence=eq, untied=untied,
                        notes=tuple(notes))


# --------------------------------------------------------------------------- torch modules
def _export_torch(model: TorchExportable, head: Head, out: Path, tmp: Path, inputs: Any,
                  seed: int) -> ExportResult:
    import torch

    notes: list[str] = []
    layer = model.layer
    b_write = _bias_to_write(model, head, head.bias, layer.bias is not None, notes)
    new_module = copy.deepcopy(model.module)
    new_layer = new_module.get_submodule(model.layer_name)
    dtype = layer.weight.dtype
    with torch.no_grad():
        new_layer.weight.copy_(_tensor(head.W, dtype))
        if b_write is not None:
            new_layer.bias.copy_(_tensor(b_write, dtype))
    reread_state = write_state_dict(new_module, tmp, out.suffix)
    check_module = copy.deepcopy(model.module)
    check_module.load_state_dict(reread_state)
    reread = model.with_module(check_module)
    if inputs is None:
        notes.append("no inputs given: verified on random hidden states fed to the "
                     "output layer")
        h = _random_hidden_for(model.head, seed)
        z_old, z_new = model.layer_logits(h), reread.layer_logits(h)
    else:
        z_old, z_new = model.model_logits(inputs), reread.model_logits(inputs)
    eq = compare_logits(z_old, z_new, head.link, dtype=model.dtype)
    require_equivalent(eq, out, "state dict")
    return ExportResult(out=out, kind=model.kind, head=reread.head, equivalence=eq,
                        notes=tuple(notes))


def save_state_dict(module: Any, tmp: Path, suffix: str) -> None:
    """Write a torch module's state dict to ``tmp``: safetensors for a ``.safetensors``
    ``suffix``, else ``torch.save``."""
    import torch

    state = {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(tmp))
    else:
        torch.save(state, tmp)


def write_state_dict(module: Any, tmp: Path, suffix: str) -> dict[str, Any]:
    """:func:`save_state_dict`, then return what reading it back safely gives
    (``weights_only=True``): exports verify the file, not the object they wrote from."""
    import torch

    save_state_dict(module, tmp, suffix)
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(tmp)))
    return dict(torch.load(tmp, map_location="cpu", weights_only=True))


def _random_hidden_for(head: Head, seed: int) -> NDArray[np.float64]:
    from unembed.equivalence import random_hidden

    return random_hidden(head, 256, seed=seed)


# --------------------------------------------------------------------------- scikit-learn
def _export_sklearn(model: SklearnExportable, head: Head, out: Path, tmp: Path, inputs: Any,
                    seed: int) -> ExportResult:
    import pickle

    est = model.with_head(head)
    with open(tmp, "wb") as fh:
        pickle.dump(est, fh)
    with open(tmp, "rb") as fh:
        reread_est = pickle.load(fh)
    reread = model.with_estimator(reread_est)
    x = model.random_inputs(256, 0, seed=seed) if inputs is None else inputs
    z_old, z_new = model.model_logits(x), reread.model_logits(x)
    eq = compare_logits(z_old, z_new, head.link, dtype=model.dtype)
    require_equivalent(eq, out, "estimator")
    notes: tuple[str, ...] = () if inputs is not None else (
        "verified on random standard-normal features",)
    if model.structure == "binary":
        notes += ("a binary estimator stores only the difference of its two rows, so no "
                  "translation survives in it: re-read, the rows are -w/2 and +w/2 again",)
    return ExportResult(out=out, kind=model.kind, head=reread.head, equivalence=eq,
                        notes=notes)


def export_model(model: LoadedModel, head: Head, out: str | os.PathLike[str], *,
                 force: bool = False, inputs: Any = None, n_sequences: int = 8, length: int = 16,
                 seed: int = 0, progress: bool = False) -> ExportResult:
    """Write ``model`` with its head replaced by ``head`` (same shape, labels and view), in
    the model's own format, verified on inputs before it is moved into place.

    Parameters
    ----------
    model : a model from :func:`unembed.load` (kind "hf_lm", "hf_vision", "torch", "sklearn",
        "spacy": a pipeline directory, "transformer_lens": a state dict file and its config
        ``NAME.tl_config.json`` beside it, read back by
        :func:`unembed.sources.tlens.load_state_dict_file`)
    head : Head of shape (V, d)
        The new head, in the same view as ``model.head`` (raw or folded).
    out : path
        A directory (HuggingFace) or a file (``.safetensors``/``.pt`` for torch modules,
        ``.pkl`` for scikit-learn). An existing one needs ``force=True``.
    inputs : optional
        What both models are run on: token ids or texts (LMs), images (N, C, H, W) (image
        classifiers), the module's inputs (torch), features (n, d) (scikit-learn). Default:
        ``n_sequences`` random sequences of ``length`` tokens from the vocabulary, random
        images, or random features.
    progress : bool
        Show the steps on stderr (a rich spinner) while they run.

    Returns
    -------
    ExportResult
        Raises UnembedError (and writes nothing) when the written model is not equivalent.
    """
    kind = model.kind
    if kind not in EXPORT_KINDS:
        raise not_exportable(model, "export_model")
    _check_same_shape(model, head)
    outp = Path(out)
    if kind == "sklearn" and not is_pickle(outp):
        raise fail(f"{outp}: a scikit-learn estimator is written as a pickle; use a .pkl "
                   f"suffix.")
    if kind == "transformer_lens":
        from unembed.sources.tlens import check_state_dict_target

        check_state_dict_target(outp, force=force)  # and its config beside it
    with atomic_target(outp, force=force) as tmp, progress_bars(progress) as bars:
        if kind in ("hf_lm", "hf_vision", "hf_classifier"):
            step = bars.step("export")
            return _export_hf(as_hf(model, "export_model"), head, outp, tmp, inputs,
                              n_sequences, length, seed, step)
        if kind == "torch":
            return _export_torch(as_torch(model, "export_model"), head, outp, tmp, inputs,
                                 seed)
        if kind == "spacy":
            from unembed.sources.spacy_pipeline import export_spacy

            return export_spacy(as_spacy(model, "export_model"), head, outp, tmp, inputs, seed)
        if kind == "transformer_lens":
            from unembed.sources.tlens import export_tl

            return export_tl(as_tl(model, "export_model"), head, outp, tmp, inputs, seed,
                             force=force)
        return _export_sklearn(as_sklearn(model, "export_model"), head, outp, tmp, inputs,
                               seed)
