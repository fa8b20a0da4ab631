"""Equivalent models written back in the user's own format, verified before success.

:func:`export_model` takes a model read by :func:`unembed.load` and a new head in the same
view (e.g. the translated head of :func:`unembed.construct.translation_for_cosine`) and writes
it in the model's family's format, one module per family, each registered by the source class
it writes (:func:`~unembed.export._registry.register`):

* :mod:`~unembed.export.hf`: HuggingFace models, a directory that ``from_pretrained`` loads
  unchanged (a tied head untied, a folded head unfolded);
* :mod:`~unembed.export.torch_module`: torch modules, a state dict (``.safetensors`` or
  ``.pt``) with the output Linear replaced;
* :mod:`~unembed.export.tlens`: TransformerLens models, a state dict and its config
  ``NAME.tl_config.json`` beside it;
* :mod:`~unembed.export.spacy`: spaCy pipelines, a pipeline directory;
* :mod:`~unembed.export.sklearn`: scikit-learn estimators, pickled;
* :mod:`~unembed.export.weights`: weight files (a bare head), written in the file's own
  format and dtype (:func:`~unembed.export.weights.write_weights`).

Every model export is written into a temporary path beside the target, re-read from there,
run on inputs next to the original (tokens drawn from the vocabulary, random images or
features, or the caller's data) and compared (:func:`unembed.equivalence.compare_logits`);
only an equivalent result is moved into place. An existing target needs ``force=True``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from unembed._io import atomic_target
from unembed._progress import progress_bars
from unembed.export import hf, sklearn, spacy, tlens, torch_module  # noqa: F401 (register)
from unembed.export._common import ExportJob, ExportResult, check_same_shape
from unembed.export._registry import check_exportable, family_of, not_exportable
from unembed.head import Head
from unembed.model import LoadedModel

__all__ = ["ExportResult", "check_exportable", "export_model", "not_exportable"]


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
    family = family_of(model, "export_model")
    check_same_shape(model, head)
    outp = Path(out)
    family.check_target(outp, force)
    with atomic_target(outp, force=force) as tmp, progress_bars(progress) as bars:
        job = ExportJob(head=head, out=outp, tmp=tmp, inputs=inputs, n_sequences=n_sequences,
                        length=length, seed=seed, force=force, bars=bars)
        return family.run(model, job)
