"""The differences view of a pair for rows kept in a float32 or float16 file: the pass over
the reference labels bounds each one in float32 (:func:`unembed.difference_view._estimates32`)
and computes directly in float64 only those that can be the minimum. The answer must be the
float64 direct computation's minimum over every reference label: the same bits as the same
rows held in memory (whose pass is float64), and, to 1e-12, the brute force one reference
label at a time."""

from __future__ import annotations

import numpy as np
import pytest

import unembed.difference_view as dv
from unembed import Head, cosine, load_head_file


def _brute(W: np.ndarray, i: int, j: int) -> float:
    best = np.inf
    for k in range(len(W)):
        if k in (i, j):
            continue
        a, b = W[i] - W[k], W[j] - W[k]
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        if na > 0 and nb > 0:
            best = min(best, float(a @ b / (na * nb)))
    return best


def _spy(monkeypatch) -> list[int]:
    """Counts the passes made in float32."""
    calls: list[int] = []
    real = dv._estimates32

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(dv, "_estimates32", spy)
    return calls


def _near_tie_rows(rng: np.random.Generator, d: int, offset: float) -> np.ndarray:
    """Labels 0 and 1 at e_1 and e_2, 300 reference labels on the far side of their
    bisector moved by 1e-4 across it (their difference cosines with the pair agree to about
    1e-8, far below a float32 product's resolution), 200 unrelated labels; all moved by one
    offset vector of size ``offset``."""
    e = np.eye(d)
    ties = -(e[0] + e[1]) + 1e-4 * rng.standard_normal((300, d)) * (np.arange(d) >= 2)
    rows = np.vstack([e[0], e[1], ties, 3 * rng.standard_normal((200, d))])
    return rows + offset * rng.standard_normal(d)


@pytest.mark.parametrize("offset", [0.0, 30.0])
def test_near_ties_among_the_reference_labels_give_the_float64_minimum(tmp_path, monkeypatch,
                                                                      offset):
    W32 = _near_tie_rows(np.random.default_rng(3), 32, offset).astype(np.float32)
    path = tmp_path / "W.npy"
    np.save(path, W32)
    head = load_head_file(path)
    W = W32.astype(np.float64)
    calls = _spy(monkeypatch)
    got = cosine(head, 0, 1, "differences")
    assert calls
    assert got == cosine(Head(W), 0, 1, "differences")
    assert got == pytest.approx(_brute(W, 0, 1), abs=1e-12)


@pytest.mark.parametrize("case", ["random", "shared-mean", "near-duplicates", "float16"])
def test_pairs_of_file_rows_agree_with_the_rows_in_memory(tmp_path, monkeypatch, case):
    rng = np.random.default_rng(11)
    W = rng.standard_normal((160, 16))
    if case == "shared-mean":  # rows 1e4 times their spread from the origin
        W = W * 1e-2 + 100.0 * rng.standard_normal(16)
    elif case == "near-duplicates":  # rows one float32 step from i and j
        W32 = W.astype(np.float32)
        W32[30] = np.nextafter(W32[2], np.float32(np.inf))
        W32[31] = np.nextafter(W32[5], np.float32(-np.inf))
        W = W32.astype(np.float64)
    dt = np.float16 if case == "float16" else np.float32
    Wd = W.astype(dt)
    path = tmp_path / "W.npy"
    np.save(path, Wd)
    head = load_head_file(path)
    W = Wd.astype(np.float64)
    calls = _spy(monkeypatch)
    for i, j in [(2, 5), (5, 2), (0, 1), (30, 2)]:
        got = cosine(head, i, j, "differences")
        assert got == cosine(Head(W), i, j, "differences")
        assert got == pytest.approx(_brute(W, i, j), abs=1e-12)
    assert calls
