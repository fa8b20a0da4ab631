"""What a saved spaCy pipeline's own files must be before ``spacy.load`` reads them.

``spacy.load`` reports a broken ``meta.json`` or ``config.cfg`` in its own words, or not at
all (a pipeline made for another spaCy prints a warning and loads). Here each file is read
first and refused in one line naming it:

* ``meta.json``: a JSON object; its ``spacy_version`` a version range, of the installed
  spaCy's major version (a pipeline for spaCy v4 is refused under v3; one for another minor
  version is read, with a note);
* ``config.cfg``: parses (no duplicate section), every ``${...}`` interpolation resolves, and
  ``[nlp] lang`` names a language this spaCy has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unembed._checks import UnembedError, read_json
from unembed._dependency_errors import reading

__all__ = ["check_pipeline_files"]


def _version_note(meta_path: Path, wanted: Any, installed: str) -> str | None:
    """None when ``installed`` satisfies the range ``wanted``; a note when only the minor
    version differs; refused when no release of the installed major version does."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import Version

    if wanted is None:
        return None
    if not isinstance(wanted, str):
        raise UnembedError(f"its \"spacy_version\" must be a version range such as "
                                    f"\">=3.8.0,<3.9.0\". Got {wanted!r}.", path=meta_path)
    try:
        spec = SpecifierSet(wanted)
    except InvalidSpecifier:
        raise UnembedError(f"its \"spacy_version\" {wanted!r} is not a version "
                                    f"range.", path=meta_path) from None
    have = Version(installed)
    if spec.contains(have, prereleases=True):
        return None
    major = have.major
    if not any(spec.contains(f"{major}.{minor}.{patch}", prereleases=True)
               for minor in range(100) for patch in (0, 99)):
        raise UnembedError(f"the pipeline was made for spaCy {wanted}; the installed "
                                    f"spaCy is {installed}, another major version; refused.",
                           path=meta_path)
    return (f"the pipeline was made for spaCy {wanted}, read with {installed} (same major "
            f"version)")


def check_pipeline_files(path: Path) -> list[str]:
    """Check ``path/meta.json`` and ``path/config.cfg`` (see the module docstring); returns
    the notes (a spaCy minor version other than the pipeline's)."""
    import spacy
    from spacy import util

    meta_path, cfg_path = path / "meta.json", path / "config.cfg"
    meta = read_json(meta_path, "spaCy meta.json")
    if not isinstance(meta, dict):
        raise UnembedError("not a JSON object (a spaCy pipeline's meta).", path=meta_path)
    notes: list[str] = []
    note = _version_note(meta_path, meta.get("spacy_version"), str(spacy.__version__))
    if note is not None:
        notes.append(note)
    with reading(cfg_path):
        config = util.load_config(cfg_path, interpolate=True)
    nlp = config.get("nlp")
    lang = nlp.get("lang") if isinstance(nlp, dict) else None
    if not isinstance(lang, str) or not lang:
        raise UnembedError(f"its [nlp] section must name a language (lang = \"en\"). "
                                   f"Got {lang!r}.", path=cfg_path)
    try:
        util.get_lang_class(lang)
    except ImportError:
        raise UnembedError(f"[nlp] lang = {lang!r} is not a language spaCy "
                                   f"{spacy.__version__} has.", path=cfg_path) from None
    return notes


def load_pipeline(path: Path) -> tuple[Any, list[str]]:
    """:func:`unembed.sources.spacy_read.read_pipeline` (``spacy.load`` with its guards)
    after :func:`check_pipeline_files`, with spaCy's warning about another minor version
    turned into a note; what it still refuses is one line naming the directory. Returns the
    pipeline and the notes."""
    import warnings

    from unembed.sources._paths import check_tree
    from unembed.sources.spacy_read import read_pipeline

    check_tree(path, "spaCy pipeline")  # nothing read through a link that leads out
    notes = check_pipeline_files(path)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"\[W095\]")  # in the notes instead
            nlp = read_pipeline(path)  # nothing outside path read, no pickled code run
    except (OSError, ValueError, KeyError) as e:
        text = " ".join(str(e).split())[:200]
        raise UnembedError(f"not a loadable spaCy pipeline ({type(e).__name__}: "
                               f"{text}).", path=path) from None
    return nlp, notes
