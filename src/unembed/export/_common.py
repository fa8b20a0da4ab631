"""What every exporter shares: the result type, the job it is given, the checks before and
after writing, and the torch pieces (tensors, state dicts) several families write with.

A written model is verified before it is moved into place: :func:`require_equivalent`
raises (so the temporary is removed and the target left as it was) unless the model re-read
from the temporary is equivalent to the original (:func:`unembed.equivalence.compare_logits`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed._progress import Bars
from unembed.equivalence import Equivalence, random_hidden
from unembed.head import Head
from unembed.model import LoadedModel

__all__ = ["ExportJob", "ExportResult", "bias_to_write", "check_same_shape",
           "require_equivalent", "save_state_dict", "to_tensor", "write_state_dict"]

Step = Callable[[str], None]


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

    def __repr__(self) -> str:
        """One line: what was written where, and the equivalence verdict on re-reading it."""
        extra = ", untied" if self.untied else ""
        notes = f", {len(self.notes)} notes" if self.notes else ""
        return (f"ExportResult({self.kind} written to {str(self.out)!r}{extra}{notes}; "
                f"{self.equivalence!r})")

    def _repr_html_(self) -> str:
        from unembed._display import html

        return html("export", self)

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "kind": self.kind, "untied": self.untied,
                "rows": self.head.rows, "notes": list(self.notes),
                "equivalence": self.equivalence.to_dict()}


@dataclass(frozen=True)
class ExportJob:
    """One export, as :func:`unembed.export.export_model` hands it to a family's writer:
    the new ``head``, the target ``out``, the temporary ``tmp`` beside it to write into (moved
    to ``out`` when the writer returns), what to verify on and the progress display."""

    head: Head
    out: Path
    tmp: Path
    inputs: Any
    n_sequences: int
    length: int
    seed: int
    force: bool
    bars: Bars


class BiasedModel(Protocol):
    """A model whose output layer may lack a bias: the bias it has (None: none)."""

    @property
    def raw_b(self) -> NDArray[np.float64] | None: ...


def check_same_shape(model: LoadedModel, head: Head) -> None:
    """Refuse a new head that is not in the model's shape, labels, link and soft-cap."""
    old: Head = model.head
    if head.W.shape != old.W.shape:
        raise UnembedError(f"the new head has shape {head.W.shape}, the model's head "
                           f"{old.W.shape}.", function="export_model")
    if head.labels != old.labels:
        raise UnembedError("the new head's labels differ from the model's.",
                           function="export_model")
    if head.link != old.link or head.softcap != old.softcap:
        raise UnembedError("the new head's link or soft-cap differs from the model's.",
                           function="export_model")


def require_equivalent(eq: Equivalence, out: Path, what: str) -> None:
    """Raise (so that the temporary is removed and ``out`` left as it was) unless the written
    result is equivalent."""
    if not eq.equivalent:
        raise UnembedError(f"the written {what} is not equivalent to the original "
                           f"({eq.verdict}); nothing was written to {out}.",
                           function="export_model")


def bias_to_write(model: BiasedModel, b_new: NDArray[np.float64], has_bias: bool,
                  notes: list[str]) -> NDArray[np.float64] | None:
    """The output layer's new bias, or None when it has none and needs none: a bias the same
    for every label is a uniform logit shift, which softmax ignores, so it is dropped (and
    said in ``notes``); a bias that differs per label cannot be written without one."""
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
    raise UnembedError(f"The new head needs a different bias per label (spread {spread:.3g}), but "
                       f"the model's output layer has no bias, so it cannot be written.")


def to_tensor(a: NDArray[np.float64], dtype: Any) -> Any:
    """A float64 array as a torch tensor of ``dtype`` (a writable copy first)."""
    import torch

    return torch.from_numpy(np.array(a, dtype=np.float64)).to(dtype)


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


def random_hidden_for(head: Head, seed: int) -> NDArray[np.float64]:
    """256 random hidden states for ``head`` (:func:`unembed.equivalence.random_hidden`): what
    a written output layer is verified on when no inputs are given."""
    return random_hidden(head, 256, seed=seed)
