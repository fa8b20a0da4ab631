"""The examples in the docstrings run and print what they say: every module of unembed that
has examples (found by walking the package, so a new module's examples are run too)."""

import doctest
import importlib
import pkgutil

import pytest

import unembed

_MODULES = sorted(
    m.name for m in pkgutil.walk_packages(unembed.__path__, prefix="unembed.")
    if not m.name.endswith("__main__")
)
_FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def _examples(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    return [t for t in doctest.DocTestFinder().find(module) if t.examples]


@pytest.mark.parametrize("name", _MODULES)
def test_docstring_examples(name: str) -> None:
    tests = _examples(name)  # a module without examples is only imported
    runner = doctest.DocTestRunner(optionflags=_FLAGS)
    for t in tests:
        runner.run(t)
    res = runner.summarize(verbose=False)
    assert res.attempted == sum(len(t.examples) for t in tests)
    assert res.failed == 0


# modules whose docstrings must show examples (a module that loses them fails here)
_MUST_HAVE = ["unembed.head", "unembed.construct", "unembed.views", "unembed.moments",
              "unembed._io", "unembed._progress", "unembed._tolerance", "unembed._stats"]


@pytest.mark.parametrize("name", _MUST_HAVE)
def test_core_modules_have_examples(name: str) -> None:
    assert _examples(name), f"{name} lost its docstring examples"


def test_doc_pages_cited_by_readme_and_docstrings_exist() -> None:
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "shared/DESIGN.md" not in readme
    cited = set(re.findall(r"\(docs/([a-z_]+\.md)", readme))
    assert {"model.md", "symmetries.md", "views.md", "feasibility.md", "audit.md"} <= cited
    for f in (root / "src" / "unembed").rglob("*.py"):
        text = f.read_text(encoding="utf-8")
        assert "DESIGN.md" not in text, f
        cited |= set(re.findall(r"docs/([a-z_]+\.md)", text))
    for page in sorted(cited):
        assert (root / "docs" / page).is_file(), page
    # every page links only to pages that exist
    for page in (root / "docs").glob("*.md"):
        for target in re.findall(r"\]\(([a-z_]+\.md)", page.read_text(encoding="utf-8")):
            assert (root / "docs" / target).is_file(), (page.name, target)
