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
              "unembed._io", "unembed._progress", "unembed._tolerance"]


@pytest.mark.parametrize("name", _MUST_HAVE)
def test_core_modules_have_examples(name: str) -> None:
    assert _examples(name), f"{name} lost its docstring examples"
