"""An unknown label is refused in one wording by every command and function that takes
labels: "Unknown label 'x' (argument A): not among the V labels of this head ...", one line,
exit 2."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from unembed import Head, UnembedError, cosine, translation_for_cosine
from unembed.feasibility import can_be_top_two
from unembed.neighbours import neighbours

WORDING = re.compile(r"Unknown label 'zebr'( \(argument [^)]+\))?: not among the 4 labels of "
                     r"this head \(use '#N' for row N\)\. Did you mean 'zebra'\?")


@pytest.fixture
def head_file(tmp_path: Path) -> Path:
    np.save(tmp_path / "W.npy", np.array([[1.0, 0.0, 0.2], [0.0, 1.0, 0.1], [-1.0, -1.0, 0.0],
                                          [0.5, -0.3, 1.0]]))
    (tmp_path / "labels.txt").write_text("cat\ndog\nzebra\nowl\n")
    return tmp_path


@pytest.mark.parametrize("argv", [
    ("cosine", "W.npy", "cat", "zebr"),
    ("neighbours", "W.npy", "zebr"),
    ("feasible", "W.npy", "--top-two", "zebr", "cat"),
    ("counterexample", "W.npy", "--pair", "cat", "zebr", "--target", "0", "--out", "o.npy"),
    ("counterexample", "W.npy", "--keep-cosines", "--unargmaxable", "zebr", "--out", "o.npy"),
])
def test_every_command_says_an_unknown_label_in_one_wording(head_file: Path,
                                                           argv: tuple[str, ...]) -> None:
    r = run_cli(*argv, "--labels", "labels.txt", cwd=head_file)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert WORDING.search(r.stderr), r.stderr
    assert not (head_file / "o.npy").exists()


def test_the_python_api_says_it_in_the_same_wording() -> None:
    head = Head(np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [0.5, 2.0]]),
                labels=["cat", "dog", "zebra", "owl"])
    calls = [lambda: cosine(head, "cat", "zebr"), lambda: neighbours(head, ["zebr"]),
             lambda: can_be_top_two(head, "zebr", "cat"),
             lambda: translation_for_cosine(head, "zebr", "cat", 0.0)]
    for call in calls:
        with pytest.raises(UnembedError) as e:
            call()
        assert WORDING.search(str(e.value)), str(e.value)
    with pytest.raises(UnembedError, match=r"^Label index 9 \(argument b\) is out of range for "
                                           r"a head with 4 labels\.$"):
        translation_for_cosine(head, 0, 9, 0.0)
