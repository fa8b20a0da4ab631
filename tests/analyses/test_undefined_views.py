"""A view that carries no information is "undefined: why" in every command that shows it
(cosine, inspect, neighbours; terminal, JSON and API), never a ranking of rounding noise: the
causal view of a head whose centered rows have rank V - 1, the centered views of a two-label
head, and an equiangular (simplex) head's centered cosines. Degeneracy is established here
independently (numpy's matrix rank, cosines formed whole)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from unembed import Head
from unembed._checks import UnembedError
from unembed.neighbours import neighbours
from unembed.views import cosine


def general_head(V: int = 6, d: int = 10) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((V, d))


def simplex_head(V: int = 5, d: int = 7) -> np.ndarray:
    """Rows at the vertices of a regular simplex (centered cosines all -1/(V - 1)), rotated and
    translated."""
    E = np.eye(V, d)
    Q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((d, d)))
    return (E - E.mean(axis=0)) @ Q + 0.7


def _centered_cosines(W: np.ndarray) -> np.ndarray:
    C = W - W.mean(axis=0)
    U = C / np.linalg.norm(C, axis=1, keepdims=True)
    return U @ U.T


def test_cosine_causal_of_rank_v_minus_1_head_is_undefined(tmp_path: Path) -> None:
    W = general_head()
    assert np.linalg.matrix_rank(W - W.mean(axis=0)) == W.shape[0] - 1
    np.save(tmp_path / "W.npy", W)
    r = run_cli("cosine", tmp_path / "W.npy", "#0", "#1", "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["cosine"]["causal"] is None and got["cosine"]["centered"] is not None
    assert got["undefined"]["causal"].startswith("undefined: ")
    assert "rank V - 1 = 5" in got["undefined"]["causal"]
    r = run_cli("cosine", tmp_path / "W.npy", "#0", "#1")
    line = next(x for x in r.stdout.splitlines() if x.strip().startswith("causal"))
    assert "undefined: " in line
    with pytest.raises(UnembedError, match="equiangular"):
        cosine(Head(W), 0, 1, "causal")
    # rank below V - 1 (V - 1 > d): defined
    assert np.isfinite(cosine(Head(general_head(9, 4)), 0, 1, "causal"))


def test_neighbours_causal_of_rank_v_minus_1_head_is_undefined(tmp_path: Path) -> None:
    W = general_head()
    np.save(tmp_path / "W.npy", W)
    r = run_cli("neighbours", tmp_path / "W.npy", "#2", "--view", "causal", "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["neighbours"]["2"] is None and got["undefined"]["2"].startswith("undefined: ")
    r = run_cli("neighbours", tmp_path / "W.npy", "#2", "--view", "causal")
    assert "undefined: " in r.stdout and "+" not in r.stdout.split("undefined")[1][:5]
    with pytest.raises(UnembedError, match="rank nothing"):
        neighbours(Head(W), ["2"], view="causal")


def test_inspect_marks_degenerate_views_and_says_how_many_labels_it_sampled(
        tmp_path: Path) -> None:
    np.save(tmp_path / "W.npy", general_head(8, 12))
    r = run_cli("inspect", tmp_path / "W.npy", "--max-labels", "5", "--json")
    assert r.returncode == 0, r.stderr
    pairs = json.loads(r.stdout)["pairs"]
    assert pairs["causal"]["most"] is None and pairs["causal"]["undefined"].startswith(
        "undefined: ")
    assert pairs["centered"]["undefined"] is None and len(pairs["centered"]["most"]) > 0
    assert pairs["raw"]["sampled"] and pairs["raw"]["labels_searched"] == 5
    r = run_cli("inspect", tmp_path / "W.npy", "--max-labels", "5")
    assert "5 of 8 labels, a seeded sample" in r.stdout
    causal = r.stdout.split("causal view")[1].splitlines()
    assert any(x.strip().startswith("undefined: ") for x in causal[1:3])


def test_equiangular_head_centered_view_ranks_nothing_anywhere(tmp_path: Path) -> None:
    W = simplex_head()
    C = _centered_cosines(W)
    off = C[~np.eye(5, dtype=bool)]
    assert np.ptp(off) < 1e-14 and abs(off.mean() + 0.25) < 1e-14  # independent: -1/(V - 1)
    np.save(tmp_path / "W.npy", W)
    r = run_cli("inspect", tmp_path / "W.npy", "--json")
    pairs = json.loads(r.stdout)["pairs"]
    assert pairs["centered"]["most"] is None and "constant" in pairs["centered"]["undefined"]
    assert pairs["raw"]["undefined"] is None  # the raw rows are not equiangular
    r = run_cli("neighbours", tmp_path / "W.npy", "#0", "--view", "centered", "--json")
    got = json.loads(r.stdout)
    assert got["neighbours"]["0"] is None and "constant" in got["undefined"]["0"]
    # a generic head's centered neighbours are listed
    out = neighbours(Head(general_head()), ["0"], k=3, view="centered")["0"]
    assert len(out) == 3


def test_two_label_head_centered_views_are_undefined() -> None:
    head = Head(np.array([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]]))
    for view in ("centered", "normalized", "causal"):
        with pytest.raises(UnembedError, match="two labels"):
            cosine(head, 0, 1, view)
    assert np.isfinite(cosine(head, 0, 1, "raw"))

