"""Every name the benchmarks import from unembed exists (the benchmarks are not run by the
suite, so an import inside one of their functions would otherwise go stale unnoticed)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _imports() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted(BENCH.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("unembed"):
                out += [(path.name, str(node.module), a.name) for a in node.names]
    return out


@pytest.mark.parametrize("where, module, name", _imports())
def test_benchmark_imports_resolve(where, module, name):
    mod = importlib.import_module(module)
    assert hasattr(mod, name) or importlib.util.find_spec(f"{module}.{name}") is not None, (
        f"{where}: {module} has no {name}")
