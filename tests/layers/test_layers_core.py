"""The directions of the import picture that keep reading, writing back and the math apart:
sources never import export or the analyses; the core and the analyses never import sources;
export and sources form no import circle (imports inside functions and type-only imports
included), read from the source files with ast, independently of Python's import system."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _modules() -> dict[str, Path]:
    out = {}
    for p in (SRC / "unembed").rglob("*.py"):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Every module of unembed each module names in an import, anywhere in its file."""
    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                         for a in node.names]
            for n in names:
                t = known(n)
                if t is not None and t != m:
                    edges[m].add(t)
    return edges


EDGES = _imports(_modules())


def _in(module: str, room: str) -> bool:
    return module == room or module.startswith(room + ".")


def test_sources_import_neither_export_nor_equivalence() -> None:
    bad = sorted((m, t) for m, ts in EDGES.items() if _in(m, "unembed.sources") for t in ts
                 if _in(t, "unembed.export") or t == "unembed.equivalence")
    assert bad == []


def test_core_and_analyses_import_no_source() -> None:
    rooms = ("unembed.head", "unembed.gauges", "unembed.bounds", "unembed.model",
             "unembed.rows", "unembed.construct", "unembed.equivalence", "unembed.views",
             "unembed.feasibility")
    bad = sorted((m, t) for m, ts in EDGES.items() if any(_in(m, r) for r in rooms)
                 for t in ts if _in(t, "unembed.sources"))
    assert bad == []


def test_export_and_sources_form_no_import_circle() -> None:
    """No circle among the modules of sources/ and export/ (reaching outside them is fine)."""
    inside = {m for m in EDGES if _in(m, "unembed.sources") or _in(m, "unembed.export")}
    state: dict[str, int] = {}
    circle: list[str] = []

    def visit(m: str, path: list[str]) -> bool:
        state[m] = 1
        for t in sorted(EDGES[m] & inside):
            if state.get(t) == 1:
                circle.extend([*path[path.index(t):], m, t] if t in path else [m, t])
                return True
            if t not in state and visit(t, [*path, m]):
                return True
        state[m] = 2
        return False

    for m in sorted(inside):
        if m not in state and visit(m, []):
            break
    assert circle == []


def test_the_sources_base_names_no_concrete_source() -> None:
    assert {t for t in EDGES["unembed.sources.base"] if _in(t, "unembed.sources")} == set()
