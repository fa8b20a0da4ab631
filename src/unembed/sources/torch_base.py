"""The shared base of the torch-based sources: HuggingFace causal LMs (:mod:`.hf_lm`), image
classifiers (:mod:`.hf_vision`), text classifiers (:mod:`.hf_classifier`) and any torch module
(:mod:`.torch_module`). What they have in common lives here once:

* **Final-norm folding** (:func:`head_through_norm`): with a final norm ``h = g * n + beta``
  right before the output Linear (W, b), the "stored" rows are W with the norm's output h as
  hidden state; the "folded" rows are ``W diag(g)`` with bias ``W beta + b`` and the
  normalised state n as hidden state (docs/model.md, "Final norms and folding"). Both give
  the same logits: ``W (g * n + beta) + b = (W diag(g)) n + (W beta + b)``. The same function
  says which directions of h every input is orthogonal to (the head's ``null_space``) and
  the box every h lies in (``hidden_bound``); TransformerLens models (:mod:`.tlens`) use it
  too.
* **The logits check** (:meth:`TorchSource.check_batch`): the first batch a model runs is
  compared with ``head.logits(hidden states)`` (:func:`check_logits_equal`); a model whose
  logits are not its head's is refused with the size of the difference, whatever the source.
* **The forward wrappers** (:meth:`TorchSource.forward_native`, :meth:`~TorchSource.forward`,
  :meth:`~TorchSource.hidden_states`, :meth:`~TorchSource.model_logits`): batching, the
  device and dtype the passes run in, capturing what the output Linear (and the final norm)
  receives, and float64 hidden states.
* **The output layer and the labels** of HuggingFace classifiers (:class:`HFClassifierSource`:
  one Linear found exactly, labels from ``id2label``), shared by the image and the text
  classifier.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed.bounds import HiddenBound, Rows, norm_box
from unembed.head import Head, Link
from unembed.sources._repr import model_html, model_repr
from unembed.sources._torch import (
    FinalNorm,
    as_f64,
    capture_inputs,
    check_logits_equal,
    place,
    to_f64,
)

__all__ = ["HFClassifierSource", "NormedHead", "TorchSource", "head_through_norm",
           "id2label_labels", "norm_hidden_bound", "refuse_fold"]


# --------------------------------------------------------------------------- final norms
def norm_hidden_bound(norm: FinalNorm, rows: Rows, dtype: str) -> HiddenBound:
    """The box that contains every hidden state a final norm can hand to the head (see
    :func:`unembed.bounds.norm_box`): recorded on the head as ``Head.hidden_bound``."""
    return norm_box(norm.kind, norm.gain, norm.shift, rows, dtype)


@dataclass(frozen=True)
class NormedHead:
    """A head's weight and bias in the rows asked for, and what the final norm says about
    its hidden states (see :func:`head_through_norm`)."""

    W: NDArray[Any]
    b: NDArray[np.float64] | None
    null_space: NDArray[np.float64] | None
    null_space_reason: str | None
    hidden_bound: HiddenBound | None


_LN_SUMS_TO_ZERO = ("LayerNorm's normalised state n sums to zero, so it is orthogonal to the "
                    "all-ones vector")


def head_through_norm(raw_W: NDArray[Any], raw_b: NDArray[np.float64] | None,
                      norm: FinalNorm | None, rows: Rows, dtype: str, *,
                      norm_feeds_head: bool = True) -> NormedHead:
    """The head (W, b) in ``rows`` given the output Linear (raw_W, raw_b) and the final norm
    ``h = g * n + beta`` before it.

    * ``rows="stored"``: W = raw_W, b = raw_b, the hidden state is h.
    * ``rows="folded"``: W = raw_W diag(g), b = raw_W beta + raw_b, the hidden state is n.

    Null space: after a LayerNorm n sums to zero, so folded rows can move along the all-ones
    vector; stored rows along 1/g when ``(1/g) . beta = 0`` (then ``(1/g) . h = 0`` for every
    input). The hidden bound is the box of :func:`norm_hidden_bound`. Both are claimed only
    when the norm's output is what the Linear reads (``norm_feeds_head``; always for folded
    rows, whose hidden state is the captured n itself).

    Examples
    --------
    >>> import numpy as np
    >>> from unembed.sources._torch import FinalNorm
    >>> norm = FinalNorm("ln_f", "layernorm", gain=np.array([2.0, 1.0, 0.5]),
    ...                  shift=np.array([0.0, 1.0, 0.0]))
    >>> W = np.arange(6.0).reshape(2, 3)
    >>> f = head_through_norm(W, None, norm, "folded", "float32")
    >>> f.W.tolist(), f.b.tolist(), f.null_space.ravel().tolist()
    ([[0.0, 1.0, 1.0], [6.0, 4.0, 2.5]], [1.0, 4.0], [1.0, 1.0, 1.0])
    >>> n = np.array([0.5, -1.0, 0.5])  # a LayerNorm's normalised state: sums to zero
    >>> np.allclose(W @ (norm.gain * n + norm.shift), f.W @ n + f.b)
    True
    """
    W: NDArray[Any] = raw_W
    b = raw_b
    ns: NDArray[np.float64] | None = None
    reason: str | None = "none known"
    if rows == "folded":
        if norm is None:
            raise UnembedError("folded rows need a final norm right before the head.")
        W = raw_W * norm.gain[None, :]
        if norm.shift is not None:
            b = raw_W @ norm.shift + (0.0 if b is None else b)
        if norm.kind == "layernorm":
            ns, reason = np.ones((W.shape[1], 1)), _LN_SUMS_TO_ZERO
    elif norm is not None and norm.kind == "layernorm" and norm_feeds_head \
            and np.all(norm.gain != 0):
        inv = 1.0 / norm.gain
        const = 0.0 if norm.shift is None else float(inv @ norm.shift)
        if abs(const) <= 1e-12 * float(np.abs(inv).sum()):
            ns, reason = inv[:, None], "h = g * n + beta with sum(n) = 0 and (1/g) . beta = 0"
        else:
            reason = (f"(1/g) . h = (1/g) . beta = {const:.3g} for every input: moving rows "
                      f"along 1/g shifts each label's logit by its own constant, which the "
                      f"bias would have to absorb")
    bound = None
    if norm is not None and (norm_feeds_head or rows == "folded"):
        bound = norm_hidden_bound(norm, rows, dtype)
    return NormedHead(W=W, b=None if b is None else np.asarray(b, dtype=np.float64),
                      null_space=ns, null_space_reason=reason, hidden_bound=bound)


def refuse_fold(where: object, what: str, head: str = "head") -> UnembedError:
    """The one refusal of ``fold=True`` for a model without a final norm before its head
    (``head``: what the model calls it, "head" or "classifier")."""
    return UnembedError(f"{where}: {what} has no final norm right before its {head}, so there is "
                        f"no "
                        f"gain to fold; use the stored rows.")


def id2label_labels(config: Any, n: int) -> tuple[str, ...]:
    """One label per row from a HuggingFace config's ``id2label`` (keys int or str; a row it
    does not name is its number); a label already taken by a lower row gets ' [#N]'."""
    id2label = getattr(config, "id2label", None) or {}
    labels = tuple(str(id2label.get(i, id2label.get(str(i), i))) for i in range(n))
    if len(set(labels)) != len(labels):
        labels = tuple(f"{s} [#{i}]" if labels.index(s) != i else s
                       for i, s in enumerate(labels))
    return labels


# --------------------------------------------------------------------------- the base
#: how many predictions of the first batch are checked against the head
_CHECK_ROWS = 64


class TorchSource:
    """What every torch-based source shares: a torch model whose output Linear is the head.

    A subclass provides the head (``head``, ``dtype``, ``family``, ``rows``, ``norm``), the
    torch model (:meth:`_torch_model`), its output Linear (:meth:`_head_module`) and how one
    batch of inputs is run (:meth:`_batches`, :meth:`_run_batch`); this class runs the
    batches, captures hidden states and checks the first batch's logits against the head.

    Invariant (checked on the first batch, :meth:`check_batch`):
    ``head.logits(hidden_states(x)) == model_logits(x)`` within the tolerance of the dtype the
    model runs in.
    """

    kind: str
    head: Head
    dtype: str
    family: str
    raw_b: NDArray[np.float64] | None
    norm: FinalNorm | None = None
    rows: Rows = "stored"
    #: the dtype the forward passes run in (None: the weights' own)
    model_dtype: str | None = None
    _device: Any = None
    _verified: bool = False

    __repr__ = model_repr
    _repr_html_ = model_html

    # ------------------------------------------------------------------ to provide
    def _where(self) -> object:
        """What error messages name: the directory or the module."""
        raise NotImplementedError

    def _what(self) -> str:
        """What the logits check names: "the gpt2 model's logits"."""
        return f"the {self.family} model's logits"

    def _torch_model(self) -> Any:
        """The torch model the passes run (loaded, placed and eval)."""
        raise NotImplementedError

    def _head_module(self) -> Any:
        """The output Linear inside :meth:`_torch_model`."""
        raise NotImplementedError

    def _batches(self, inputs: Any) -> Iterable[Any]:
        """The inputs as the batches one model call takes."""
        raise NotImplementedError

    def _run_batch(self, batch: Any) -> tuple[NDArray[np.float64], Any]:
        """(hidden states (n, d) float64, logits (n, V) as :func:`logits_out` gives them)."""
        raise NotImplementedError

    def _norm_position(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """The final norm's input at the positions the head reads (default: all)."""
        return x

    # ------------------------------------------------------------------ shared
    def _hf_options(self, path: Path, trust_remote_code: bool, device: str | None,
                    model_dtype: str | None) -> None:
        """A HuggingFace directory's reading options: where it is, whether its own code may
        run, where the forward passes run (None: CUDA when present, else the CPU; resolved
        when the model is placed) and in what dtype (None: the checkpoint's)."""
        from unembed.device import resolve_device, resolve_dtype_name

        if device is not None:
            resolve_device(device)  # an unknown or absent device is refused before any work
        self.path = path
        self.trust_remote_code = trust_remote_code
        self.device_name = device
        self.model_dtype = resolve_dtype_name(model_dtype)

    def _place(self, model: Any, device: str | None) -> Any:
        """``model`` on ``device`` (None: CUDA when present, else the CPU) in
        ``model_dtype``; the device is kept for the inputs."""
        from unembed.device import resolve_device, torch_dtype

        self._device = resolve_device(device)
        return place(model, self._device, torch_dtype(self.model_dtype))

    def _captured(self, call: Any) -> tuple[NDArray[np.float64], Any]:
        """Run ``call()`` (one model call) capturing what the head reads: the output
        Linear's input (stored rows) or the final norm's normalised state n (folded rows).
        Returns (hidden states (n, d) float64, what ``call`` returned)."""
        import torch

        model = self._torch_model()
        mods = {"head": self._head_module()}
        if self.rows == "folded":
            assert self.norm is not None
            mods["norm"] = model.get_submodule(self.norm.name)
        with capture_inputs(mods) as cap, torch.no_grad():
            out = call()
        if self.rows == "folded":
            assert self.norm is not None
            h = self.norm.normalise(self._norm_position(to_f64(cap["norm"])).reshape(
                -1, self.head.d))
        else:
            h = to_f64(cap["head"])
        return h.reshape(-1, self.head.d), out

    def check_batch(self, h: NDArray[np.float64], z: Any) -> None:
        """Refuse the model (once, on its first batch: its first 64 predictions) when its
        logits ``z`` are not ``head.logits(h)`` within the tolerance of the dtype it runs in
        (:func:`unembed.sources._torch.check_logits_equal`)."""
        if self._verified or not len(h):
            return
        if h.shape[0] != z.shape[0]:
            raise UnembedError(f"{self._where()}: {h.shape[0]} hidden states reached the head but "
                               f"the "
                               f"model gave {z.shape[0]} rows of logits; this architecture cannot "
                               f"be "
                               f"handled exactly.")
        k = min(len(h), _CHECK_ROWS)  # a few rows: never a whole batch's (n, V) float64 copy
        check_logits_equal(self._where(), self._what(), self.head.logits(h[:k]),
                           as_f64(z[:k]), self.model_dtype or self.dtype)
        self._verified = True

    def forward_native(self, inputs: Any) -> tuple[NDArray[np.float64], Any]:
        """(hidden states (n, d) float64, logits (n, V) in the model's own precision): on the
        CPU a numpy array (float32 or float64; float16/bfloat16 widened exactly to float32),
        on an accelerator the tensor on its device (the hidden states come to the host in
        float64). n counts every prediction: positions of token sequences, images, rows."""
        hs, zs = [], []
        for batch in self._batches(inputs):
            h, z = self._run_batch(batch)
            self.check_batch(h, z)
            hs.append(h)
            zs.append(z)
        if not hs:
            return np.zeros((0, self.head.d)), np.zeros((0, self.head.n_labels))
        if len(zs) == 1:
            return hs[0], zs[0]
        if not isinstance(zs[0], np.ndarray):
            import torch

            return np.concatenate(hs), torch.cat(zs)
        return np.concatenate(hs), np.concatenate(zs)

    def forward(self, inputs: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(hidden states (n, d), model logits (n, V)), both float64."""
        h, z = self.forward_native(inputs)
        return h, as_f64(z)

    def hidden_states(self, inputs: Any) -> NDArray[np.float64]:
        """What the head consumes, (n, d) float64: the output Linear's input (stored rows) or
        the final norm's normalised state without gain and shift (folded rows)."""
        return self.forward(inputs)[0]

    def model_logits(self, inputs: Any) -> NDArray[np.float64]:
        """The model's own logits (n, V), float64."""
        return self.forward(inputs)[1]


class HFClassifierSource(TorchSource):
    """A HuggingFace classifier read from a local directory: one classifier Linear (found
    exactly by :meth:`_find_layer`), labels from ``id2label``, the model placed where asked
    and checked against its head on random inputs when it is read."""

    tied = False
    #: what the model is called in messages ("classifier", "sequence classifier")
    noun = "classifier"

    def __init__(self, path: Path, *, fold: bool = False, strict: bool = True,
                 trust_remote_code: bool = False, device: str | None = None,
                 model_dtype: str | None = None) -> None:
        from unembed.sources.hf_dir import read_config

        self._hf_options(path, trust_remote_code, device, model_dtype)
        self.config = read_config(path, trust_remote_code=trust_remote_code)
        self.family = str(getattr(self.config, "model_type", "?"))
        self.rows = "folded" if fold else "stored"
        self._setup()
        self.model = self._load()
        self.layer_name = self._find_layer()
        layer = self.model.get_submodule(self.layer_name)
        self.dtype = str(layer.weight.dtype).removeprefix("torch.")
        self.raw_W = to_f64(layer.weight)
        self.raw_b = None if layer.bias is None else to_f64(layer.bias)
        self.norm = self._find_norm()
        if fold and self.norm is None:
            raise refuse_fold(path, f"the {self.family} {self.noun}", "classifier")
        self.head = self._build_head(strict)
        # the head is the checkpoint's (read above); the forward passes run where asked
        self.model = self._place(self.model, device)
        self.forward(self.random_inputs(2, 6, seed=0))  # the first batch is checked

    # ------------------------------------------------------------------ to provide
    def _setup(self) -> None:
        """Checks and attributes that come from the config alone (before the model loads)."""

    def _load(self) -> Any:
        """A fresh torch model from the directory."""
        raise NotImplementedError

    def _find_layer(self) -> str:
        """The dotted name of the classifier Linear."""
        raise NotImplementedError

    def _find_norm(self) -> FinalNorm | None:
        """The final norm right before the classifier, if any."""
        return None

    def _build_head(self, strict: bool) -> Head:
        raise NotImplementedError

    def random_inputs(self, n: int, length: int, *, seed: int = 0) -> Any:
        raise NotImplementedError

    # ------------------------------------------------------------------ shared
    def _where(self) -> object:
        return self.path

    def _what(self) -> str:
        return f"the {self.family} {self.noun}'s logits"

    def _torch_model(self) -> Any:
        return self.model

    def _head_module(self) -> Any:
        return self.model.get_submodule(self.layer_name)

    def _classifier_head(self, strict: bool, *, link: Link, reparam_reason: str,
                         norm_feeds_head: bool = False, meta: dict[str, Any]) -> Head:
        """The head of the classifier Linear through the final norm (if any), labels from
        ``id2label``."""
        nh = head_through_norm(self.raw_W, self.raw_b, self.norm, self.rows, self.dtype,
                               norm_feeds_head=norm_feeds_head)
        meta = {"family": self.family,
                "norm": None if self.norm is None else self.norm.describe(),
                "norm_kind": None if self.norm is None else self.norm.kind, "tied": False,
                "folded": self.rows == "folded", "layer": self.layer_name, **meta}
        return Head(W=nh.W, b=nh.b, labels=id2label_labels(self.config, nh.W.shape[0]),
                    link=link, reparam=False, null_space=nh.null_space, dtype=self.dtype,
                    meta=meta, source=str(self.path), strict=strict, rows=self.rows,
                    hidden_bound=nh.hidden_bound,
                    reparam_reason=reparam_reason, labels_from="id2label",
                    null_space_reason=None if nh.null_space is None else nh.null_space_reason)

    # ------------------------------------------------------------------ for exports
    def load_fresh(self) -> Any:
        """A second, independent torch model (to be modified and saved)."""
        return self._load()

    def output_layer(self, model: Any) -> Any:
        """The classifier Linear of a torch model of this kind."""
        return model.get_submodule(self.layer_name)

    def reopen(self, path: str | os.PathLike[str]) -> HFClassifierSource:
        """The model saved at ``path``, read the same way (same rows)."""
        return type(self)(Path(path), fold=self.rows == "folded", strict=self.head.strict,
                          trust_remote_code=self.trust_remote_code, device=self.device_name,
                          model_dtype=self.model_dtype)
