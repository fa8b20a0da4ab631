"""Which writer exports which model: each family module registers its source class with its
writer (:func:`register`); :func:`family_of` finds it by the model's class (a model of no
registered class is refused by :func:`not_exportable`, naming what it is)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from unembed._checks import UnembedError
from unembed.export._common import ExportJob, ExportResult
from unembed.model import LoadedModel

__all__ = ["Family", "check_exportable", "family_of", "not_exportable", "register"]

_M = TypeVar("_M")


def _no_check(out: Path, force: bool) -> None:
    return None


@dataclass(frozen=True)
class Family(Generic[_M]):
    """One family's exporter: the source class it writes back, the check of a target made
    before any work (a suffix, a file beside it), and the writer."""

    cls: type[_M]
    write: Callable[[_M, ExportJob], ExportResult]
    check_target: Callable[[Path, bool], None] = _no_check

    def accepts(self, model: object) -> bool:
        return isinstance(model, self.cls)

    def run(self, model: object, job: ExportJob) -> ExportResult:
        """Write ``model`` (one of this family's class) as ``job`` says."""
        if not isinstance(model, self.cls):
            raise not_exportable_any(model, "export_model")
        return self.write(model, job)


_FAMILIES: list[Family[Any]] = []


def register(cls: type[_M], write: Callable[[_M, ExportJob], ExportResult], *,
             check_target: Callable[[Path, bool], None] = _no_check) -> None:
    """Export models of class ``cls`` (and its subclasses) with ``write``."""
    _FAMILIES.append(Family(cls, write, check_target))


def family_of(model: LoadedModel, where: object) -> Family[Any]:
    """The registered family of ``model``'s class; refused (:func:`not_exportable`) when
    none is."""
    for fam in _FAMILIES:
        if fam.accepts(model):
            return fam
    raise not_exportable(model, where)


def check_exportable(model: LoadedModel, where: object) -> None:
    """Refuse, before any work, a model :func:`unembed.export.export_model` cannot write."""
    family_of(model, where)


def not_exportable(model: LoadedModel, where: object) -> UnembedError:
    """The one refusal of a model that cannot be written back, naming ``where`` (the file or
    the function the user called) and what the model is."""
    what = ("a weight file (a bare head; its rows are written in the file's own format, "
            "e.g. by unembed counterexample HEAD)" if model.kind == "file"
            else f"a {type(model).__name__} of kind {model.kind!r}")
    return UnembedError(f"{where}: {what} cannot be written back as a model; models are written "
                        f"back "
                        f"from HuggingFace directories, torch modules, scikit-learn estimators, "
                        f"spaCy "
                        f"pipelines and TransformerLens models.")


def not_exportable_any(model: object, where: object) -> UnembedError:
    return UnembedError(f"{where}: a {type(model).__name__} cannot be written back as a model.")
