"""spaCy pipelines written back: the pipeline with the component's W, b replaced, saved
with ``nlp.to_disk``, re-read with ``spacy.load`` and compared with the original."""

from __future__ import annotations

from unembed.equivalence import compare_logits
from unembed.export._common import (
    ExportJob,
    ExportResult,
    random_hidden_for,
    require_equivalent,
)
from unembed.export._registry import register
from unembed.sources.spacy_pipeline import SpacyComponent, SpacyTagger, SpacyTransition

__all__ = ["export_spacy"]


def export_spacy(model: SpacyComponent, job: ExportJob) -> ExportResult:
    """Write the pipeline with the component's W, b replaced by ``job.head``'s to the
    directory ``job.tmp`` (``nlp.to_disk``), re-read it with ``spacy.load`` and compare it with
    the original on the inputs (texts; default: random hidden states fed to both output
    layers); raises unless equivalent (:func:`unembed.export.export_model` moves ``tmp`` to
    ``out``)."""
    import spacy

    head, out, inputs = job.head, job.out, job.inputs
    notes: list[str] = []
    new = model.with_head(head)
    new.nlp.to_disk(job.tmp)
    reread = type(model)(spacy.load(job.tmp), model.component, source=str(out),
                         strict=head.strict)
    if inputs is None:
        notes.append("no inputs given: verified on random hidden states fed to the "
                     "component's output layer")
        h = random_hidden_for(model.head, job.seed)
        z_old, z_new = model.layer_logits(h), reread.layer_logits(h)
    else:
        z_old, z_new = model.model_logits(inputs), reread.model_logits(inputs)
    eq = compare_logits(z_old, z_new, "softmax", dtype=model.dtype)
    require_equivalent(eq, out, "spaCy pipeline")
    return ExportResult(out=out, kind=model.kind, head=reread.head, equivalence=eq,
                        notes=tuple(notes))


register(SpacyTagger, export_spacy)
register(SpacyTransition, export_spacy)
