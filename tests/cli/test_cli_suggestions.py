"""A misspelt command or choice (British/American spellings included) gets the closest
spelling in its one-line error, exit 2; the Python API suggests the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from unembed import Head, UnembedError, cosine
from unembed.neighbours import neighbours


def test_neighbors_suggests_neighbours(tmp_path: Path) -> None:
    np.save(tmp_path / "W.npy", np.eye(3))
    r = run_cli("neighbors", "W.npy", "#0", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "'neighbors' is not a command. Did you mean 'neighbours'?" in r.stderr


@pytest.mark.parametrize("command", [("cosine", "#0", "#1"), ("neighbours", "#0")])
def test_centred_suggests_centered(tmp_path: Path, command: tuple[str, ...]) -> None:
    np.save(tmp_path / "W.npy", np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -0.5]]))
    r = run_cli(command[0], "W.npy", *command[1:], "--view", "centred", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "argument --view: invalid choice: 'centred'. Did you mean 'centered'?" in r.stderr
    r = run_cli(command[0], "W.npy", *command[1:], "--view", "qqq", cwd=tmp_path)
    assert r.returncode == 2 and "Did you mean" not in r.stderr and "Choices: raw" in r.stderr


def test_the_api_suggests_centered_for_centred() -> None:
    head = Head(np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -0.5]]))
    for call in (lambda: cosine(head, 0, 1, "centred"),
                 lambda: neighbours(head, [0], view="centred")):
        with pytest.raises(UnembedError, match=r"\(did you mean 'centered'\?\)"):
            call()
