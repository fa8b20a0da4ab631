"""Every example of README.md and docs/*.md runs as written, so none can fail on copy-paste.

The convention (stated at the end of README.md):

* a ```` ```sh ```` block is run by bash (``-e -o pipefail``: any failing line fails the test)
  with the environment's ``bin`` directory (that of ``sys.executable``: the ``.venv`` that
  ``make test`` made) first on ``PATH``, so ``unembed`` and ``python`` are the installed ones;
* a ```` ```python ```` block is run in a fresh namespace;
* the blocks of one page run in order in one temporary directory (the page's working
  directory: a later block may read what an earlier one wrote), nothing else in it;
* a ```` ```text ```` block is shown only (output, formulas); a ```` ```console ```` block is a
  command that cannot run on a test machine (it needs a cluster, a model of the reader's, a
  multi-GB head) and is placed below a line (in the paragraph just above) that starts "Not run by the test suite:" and says
  why. No other fence is allowed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = ("sh", "python")
SHOWN = ("text", "console")
REASON = "Not run by the test suite:"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                    re.S | re.M)


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: its language, its text (dedented) and its first line."""

    page: str
    lang: str
    code: str
    line: int
    before: str  # the paragraph just above the fence

    def where(self) -> str:
        return f"{self.page}:{self.line} ({self.lang})"


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    out = []
    for m in _FENCE.finditer(text):
        above = text[: m.start()].rstrip("\n").split("\n\n")[-1]
        out.append(Block(page.name, m["lang"].strip(), textwrap.dedent(m["body"]),
                         text.count("\n", 0, m.start()) + 1, above.strip()))
    return out


def test_fences_are_found_with_their_language() -> None:
    """The parser itself: indented fences in lists, the paragraph above, languages."""
    page = ROOT / "README.md"
    found = blocks(page)
    assert [b.lang for b in found][:3] == ["console", "sh", "python"]
    assert found[0].before.startswith(REASON)
    assert "unembed inspect W.npy" in found[1].code


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_block_follows_the_convention(page: Path) -> None:
    for b in blocks(page):
        assert b.lang in RUN + SHOWN, f"{b.where()}: fence it as one of {RUN + SHOWN}"
        if b.lang == "console":
            assert any(line.strip().startswith(REASON) for line in b.before.splitlines()), (
                f"{b.where()}: a block that is not run needs a line '{REASON} <why>' above it")


def _run_sh(b: Block, cwd: Path) -> None:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    # the examples run this checkout's code, whatever the installed package points at
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["NO_COLOR"] = "1"
    res = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", b.code], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, (f"{b.where()} exited {res.returncode}\n--- stdout\n"
                                 f"{res.stdout[-4000:]}\n--- stderr\n{res.stderr[-4000:]}")


def _run_python(b: Block, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(cwd)
    code = compile(b.code, b.where(), "exec")
    exec(code, {"__name__": "__main__"})  # the page's own example, run as written


_RUNNABLE = [p for p in PAGES if any(b.lang in RUN for b in blocks(p))]


@pytest.mark.parametrize("page", _RUNNABLE, ids=lambda p: p.name)
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for b in blocks(page):
        if b.lang == "sh":
            _run_sh(b, tmp_path)
        elif b.lang == "python":
            _run_python(b, tmp_path, monkeypatch)
    if page.name == "README.md":  # the quick start wrote what it says
        for name in [*re.findall(r"--out (\S+)", _quick_start().code), "W.npy", "H.npy"]:
            assert (tmp_path / name).exists(), name
        assert (tmp_path / "audit-animals" / "report.html").is_file()


def _quick_start() -> Block:
    return next(b for b in blocks(ROOT / "README.md") if b.lang == "sh")


def test_quick_start_outputs_are_distinct() -> None:
    """No line of the quick start writes a file an earlier line wrote (no --force in it)."""
    quick = _quick_start()
    assert "--force" not in quick.code
    outs = re.findall(r"--out (\S+)", quick.code)
    assert len(outs) == len(set(outs)) >= 3, outs
