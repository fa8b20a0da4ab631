"""scikit-learn estimators written back: the estimator with ``coef_`` / ``intercept_``
replaced, pickled, unpickled again (the file just written) and compared with the original."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed._io import is_pickle
from unembed.equivalence import compare_logits
from unembed.export._common import ExportJob, ExportResult, require_equivalent
from unembed.export._registry import register
from unembed.head import Head
from unembed.model import LoadedModel
from unembed.sources.sklearn import SklearnModel

__all__ = ["SklearnExportable", "export_sklearn"]


class SklearnExportable(LoadedModel, Protocol):
    """A scikit-learn linear classifier (kind "sklearn")."""

    @property
    def dtype(self) -> str: ...

    @property
    def raw_b(self) -> NDArray[np.float64] | None: ...

    @property
    def structure(self) -> str: ...

    def with_head(self, head: Head) -> Any: ...

    def with_estimator(self, estimator: Any) -> SklearnExportable: ...


def check_pickle_target(out: Path, force: bool) -> None:
    """A scikit-learn estimator is written as a pickle: the target must say so."""
    if not is_pickle(out):
        raise UnembedError("a scikit-learn estimator is written as a pickle; use a .pkl "
                           "suffix.", path=out)


def export_sklearn(model: SklearnExportable, job: ExportJob) -> ExportResult:
    """Pickle the estimator with the new head to ``job.tmp``, unpickle that file and compare
    both on the inputs (default: random standard-normal features)."""
    head, inputs = job.head, job.inputs
    est = model.with_head(head)
    with open(job.tmp, "wb") as fh:
        pickle.dump(est, fh)
    with open(job.tmp, "rb") as fh:
        reread_est = pickle.load(fh)
    reread = model.with_estimator(reread_est)
    x = model.random_inputs(256, 0, seed=job.seed) if inputs is None else inputs
    z_old, z_new = model.model_logits(x), reread.model_logits(x)
    eq = compare_logits(z_old, z_new, head.link, dtype=model.dtype)
    require_equivalent(eq, job.out, "estimator")
    notes: tuple[str, ...] = () if inputs is not None else (
        "verified on random standard-normal features",)
    if model.structure == "binary":
        notes += ("a binary estimator stores only the difference of its two rows, so no "
                  "translation survives in it: re-read, the rows are -w/2 and +w/2 again",)
    return ExportResult(out=job.out, kind=model.kind, head=reread.head, equivalence=eq,
                        notes=notes)


register(SklearnModel, export_sklearn, check_target=check_pickle_target)
