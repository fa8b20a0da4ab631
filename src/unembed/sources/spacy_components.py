"""Which components of a spaCy pipeline unembed reads, and which one it picks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unembed._checks import UnembedError

__all__ = ["BEAM", "READ", "TAGGERS", "TRANSITION", "factory", "is_spacy_dir",
           "is_spacy_language", "pick_component"]

#: Components whose model is spaCy's Tagger architecture (tok2vec, then a Softmax layer with
#: one row per ``pipe.labels`` entry, the label written being that of the argmax row).
TAGGERS = ("tagger", "morphologizer", "senter")
TRANSITION = ("parser", "ner")
BEAM = ("beam_parser", "beam_ner")
READ = TAGGERS + TRANSITION


def is_spacy_dir(path: Path) -> bool:
    """A saved pipeline (``nlp.to_disk``): ``config.cfg`` and ``meta.json``."""
    return (path / "config.cfg").is_file() and (path / "meta.json").is_file()


def is_spacy_language(obj: object) -> bool:
    """Whether ``obj`` is a spaCy ``Language`` (without importing spaCy when it is not
    already imported)."""
    import sys

    mod = sys.modules.get("spacy.language")
    return mod is not None and isinstance(obj, mod.Language)


def factory(nlp: Any, name: str) -> str:
    """The factory (the kind) of the pipeline component ``name``."""
    return str(nlp.get_pipe_meta(name).factory)


def pick_component(nlp: Any, component: str | None, where: str) -> str:
    """The component to read: ``component`` when it is one unembed reads (refused with the
    reason otherwise: beam search, another output layer); by default the only tagger, else the
    only other component read."""
    names = list(nlp.pipe_names)
    if component is not None:
        if component not in names:
            raise UnembedError(f"{where}: no component {component!r} in the pipeline (it has "
                               f"{', '.join(names) or 'none'}).")
        fac = factory(nlp, component)
        if fac in BEAM:
            raise UnembedError(f"{where}: component {component!r} ({fac}) parses with beam search: "
                               f"which parser states are scored depends on the beam, so there is "
                               f"no "
                               f"one hidden state per decision; unembed reads greedy parsers and "
                               f"NER "
                               f"(beam_width 1).")
        if fac not in READ:
            raise UnembedError(f"{where}: component {component!r} ({fac}) is not read by unembed: "
                               f"its "
                               f"output layer maps rows to labels in its own way; unembed reads "
                               f"{', '.join(READ)}.")
        return component
    # default: the only tagger; else the only one of the other components read
    have = ", ".join(f"{n} ({factory(nlp, n)})" for n in names) or "none"
    for group, what in ((("tagger",), "taggers"),
                        (TAGGERS[1:] + TRANSITION, "components unembed reads")):
        found = [n for n in names if factory(nlp, n) in group]
        if len(found) == 1:
            return found[0]
        if found:
            raise UnembedError(f"{where}: the pipeline has several {what} ({', '.join(found)}); "
                               f"name "
                               f"one (component=... / --component).")
    raise UnembedError(f"{where}: the pipeline has no component unembed reads (components: "
                       f"{have}); unembed reads {', '.join(READ)}.")
