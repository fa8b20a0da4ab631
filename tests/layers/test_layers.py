"""The layers of the package, held against its imports (read with ``ast``, nothing imported).

The import picture has an edge M -> N for every ``import``/``from ... import`` in module M that
names module N of ``unembed``, wherever it stands: at the top, inside a function (a lazy
import is still a dependency), or under ``if TYPE_CHECKING`` (a type is a dependency too).
``from unembed.x import y`` is an edge to ``unembed.x.y`` when that is a module, else to
``unembed.x``. The package's own ``unembed/__init__.py`` is left out as a source of edges: it
only re-exports the public API (nothing inside ``src`` imports it for a name), so its imports
say what is public, not which room uses which.

Also checked: the command line rewrites no message with a regular expression (an error's
fields are rendered, see ``unembed.errors``), no module is over 600 lines, and
``docs/layout.md`` names every module of the tree and nothing else.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PKG = SRC / "unembed"
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, source: str | None = None) -> set[str]:
    """The modules of ``unembed`` that ``module`` imports (its file, or ``source``)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source)
    out: set[str | None] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module if path.name == "__init__.py" else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = base + ("." + node.module if node.module else "")
            else:
                target = node.module or ""
            if target != "unembed" and not target.startswith("unembed."):
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                out.add(full if full in MODULES else _resolve(target))
        elif isinstance(node, ast.Import):
            out.update(_resolve(a.name) for a in node.names if a.name.startswith("unembed"))
    return {m for m in out if m is not None and m != module}


#: the import picture: module -> the modules it imports (the package root re-exports only)
GRAPH: dict[str, set[str]] = {m: (set() if m == "unembed" else _imports(m)) for m in MODULES}


def _cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def _in(module: str, room: str) -> bool:
    return module == room or module.startswith(room + ".")


def _edges(frm: tuple[str, ...], to: tuple[str, ...]) -> list[str]:
    return sorted(f"{m} -> {n}" for m, deps in GRAPH.items() for n in deps
                  if any(_in(m, r) for r in frm) and any(_in(n, r) for r in to))


def test_the_picture_sees_lazy_relative_and_type_only_imports() -> None:
    source = ("from typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n    from unembed.head import Head\n"
              "def f():\n    from unembed import views\n    import unembed.sources.files\n"
              "from . import _checks\nfrom .feasibility import argmaxable\nimport numpy\n")
    assert _imports("unembed.gauges", source) == {
        "unembed.head", "unembed.views", "unembed.sources.files", "unembed._checks",
        "unembed.feasibility"}
    assert len(GRAPH) == len(MODULES) > 40


def test_no_import_circle() -> None:
    assert _cycles() == []


def test_sources_import_neither_export_nor_equivalence() -> None:
    assert _edges(("unembed.sources",), ("unembed.export", "unembed.equivalence")) == []


def test_the_core_and_the_analyses_import_no_source() -> None:
    core = ("unembed.head", "unembed.gauges", "unembed.construct", "unembed.equivalence",
            "unembed.views", "unembed.feasibility")
    assert _edges(core, ("unembed.sources",)) == []


def test_the_core_and_the_analyses_import_no_presentation() -> None:
    core = ("unembed.head", "unembed.gauges", "unembed.construct", "unembed.equivalence",
            "unembed.views", "unembed.audit", "unembed.sources")
    presentation = ("unembed._reprs", "unembed.tables", "unembed.report", "unembed.plots",
                    "unembed.cli")
    assert _edges(core, presentation) == []


def test_the_command_line_rewrites_no_message() -> None:
    found = []
    for m, path in MODULES.items():
        if _in(m, "unembed.cli"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import) and any(a.name == "re" for a in node.names):
                    found.append(f"{m}: import re")
                if isinstance(node, ast.ImportFrom) and node.module == "re":
                    found.append(f"{m}: from re import")
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                        and node.value.id == "re"):
                    found.append(f"{m}:{node.lineno}: re.{node.attr}")
    assert found == []


def test_no_module_over_600_lines() -> None:
    long = {m: n for m, p in MODULES.items()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_presentation_modules_stay_under_600_lines() -> None:
    mine = ("unembed.cli", "unembed.report", "unembed.tables", "unembed._reprs",
            "unembed.plots", "unembed.errors", "unembed._checks", "unembed.audit")
    long = {m: n for m, p in MODULES.items() if any(_in(m, r) for r in mine)
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


# ------------------------------------------------------------------------- docs/layout.md
LAYOUT = ROOT / "docs" / "layout.md"


def _named_on_layout_page() -> set[str]:
    """Module paths the page names: ``unembed/x.py`` or ``unembed/pkg/`` in backticks."""
    text = LAYOUT.read_text(encoding="utf-8")
    return set(re.findall(r"`(unembed/[\w/]*(?:\.py|/)?)`", text))


def _tree_names() -> set[str]:
    out = set()
    for p in MODULES.values():
        rel = p.relative_to(SRC).as_posix()
        out.add(rel[: -len("__init__.py")] if p.name == "__init__.py" else rel)
    return out


def test_the_layout_page_names_every_module() -> None:
    missing = sorted(_tree_names() - _named_on_layout_page())
    assert missing == [], f"docs/layout.md does not name: {missing}"


def test_every_name_on_the_layout_page_exists() -> None:
    stale = sorted(_named_on_layout_page() - _tree_names())
    assert stale == [], f"docs/layout.md names what is not in src/: {stale}"


def test_public_names_survive_their_submodules_being_imported():
    """``unembed`` binds its public names on first use; a name that is also a submodule's
    (``unembed.neighbours``) must stay the function once that submodule is imported."""
    import importlib
    import pkgutil

    import unembed

    for m in pkgutil.iter_modules(unembed.__path__):
        if m.name != "__main__":  # (that one runs the command line)
            importlib.import_module(f"unembed.{m.name}")
    for name in unembed.__all__:
        value = getattr(unembed, name)
        assert not isinstance(value, type(unembed)), f"unembed.{name} is a module"
