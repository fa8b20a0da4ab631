"""Answers the span theorem knows: a two-label head's labels are always the top two, and a head
with affinely independent rows (V - 1 <= d) has every label argmaxable and every pair a
possible top two, at any tolerance (float16 heads included), each "yes" with a witness that
is checked here on the head's own logits, against an explicit least-squares solve and SciPy's
LP written independently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linprog

from conftest import run_cli
from unembed import Head
from unembed._checks import UnembedError
from unembed.feasibility import argmaxable_all, can_be_top_two, co_top_matrix, is_argmaxable
from unembed.keep_cosines import unargmaxable_keeping_cosines


def near_hull_float16_head() -> Head:
    """6 rows in R^8, row 5 within 1% of the hull of rows 0..2, stored in float16: affinely
    independent, but the float16 tolerance (2^-8) is larger than label 5's margin."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((6, 8))
    W[5] = W[:3].mean(axis=0) + 0.01 * rng.standard_normal(8)
    return Head(W.astype(np.float16), b=rng.standard_normal(6).astype(np.float16))


def lp_margin(W: np.ndarray, b: np.ndarray, top: list[int], R: float) -> float:
    """max t s.t. z_a - z_k >= t (a in top, k outside), z_top tied, |h|_inf <= R (SciPy)."""
    V, d = W.shape
    rest = [k for k in range(V) if k not in top]
    A = [np.r_[-(W[a] - W[k]), 1.0] for a in top for k in rest]
    rhs = [b[a] - b[k] for a in top for k in rest]
    eq = [np.r_[W[top[0]] - W[t], 0.0] for t in top[1:]]
    beq = [-(b[top[0]] - b[t]) for t in top[1:]]
    res = linprog(np.r_[np.zeros(d), -1.0], A_ub=np.array(A), b_ub=np.array(rhs),
                  A_eq=np.array(eq) if eq else None, b_eq=np.array(beq) if eq else None,
                  bounds=[(-R, R)] * d + [(None, None)], method="highs")
    assert res.status == 0
    return float(-res.fun)


def test_two_label_head_answers_top_two_yes_with_a_witness_on_the_tie() -> None:
    head = Head(np.array([[1.0, 2.0, 0.5], [0.3, -1.0, 2.0]]), b=np.array([0.5, -0.2]))
    r = can_be_top_two(head, "#0", "#1")
    assert r.status == "yes" and r.margin == np.inf
    z = head.W @ r.witness + head.bias
    assert abs(z[0] - z[1]) <= 1e-12 * np.abs(z).max()
    assert "no other label" in r.reason
    # identical rows with the same bias tie everywhere: yes too
    same = Head(np.array([[1.0, 2.0], [1.0, 2.0]]), strict=False)
    assert can_be_top_two(same, 0, 1).status == "yes"


def test_cli_feasible_top_two_of_a_two_label_head(tmp_path: Path) -> None:
    np.save(tmp_path / "W.npy", np.array([[1.0, 2.0, 0.5], [0.3, -1.0, 2.0]]))
    r = run_cli("feasible", tmp_path / "W.npy", "--top-two", "#0", "#1", "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["status"] == "yes" and got["witness"] is not None and got["method"] == "span"
    assert got["margin"] is None and "unbounded" in got["reason"]  # +inf in strict JSON
    r = run_cli("feasible", tmp_path / "W.npy", "--top-two", "#0", "#1")
    assert r.returncode == 0 and ": yes" in r.stdout and "margin inf" in r.stdout


def test_affinely_independent_float16_head_decides_every_label_by_the_theorem() -> None:
    head = near_hull_float16_head()
    W, b = head.W, head.bias
    r = is_argmaxable(head, 5)
    assert r.status == "yes" and r.method == "span"
    assert r.margin <= r.tol and r.lp.status != "yes"  # the LP alone: not decided
    z = W @ r.witness + b
    assert int(np.argmax(z)) == 5 and np.sort(z)[-2] < z[5]
    # independent: an explicit numpy solve of the differences for target logits, and SciPy's LP
    D = W[:-1] - W[-1]
    t = np.zeros(6)
    t[5] = 1.0
    h, *_ = np.linalg.lstsq(D, (t[:-1] - t[-1]) - (b[:-1] - b[-1]), rcond=None)
    assert int(np.argmax(W @ h + b)) == 5
    assert lp_margin(W, b, [5], 1e3) > 0
    whole = argmaxable_all(head, progress=False)
    assert list(whole.status) == ["yes"] * 6 and set(whole.method) == {"span"}
    assert any("below the tolerance" in n for n in whole.notes)
    for i in range(6):
        assert int(np.argmax(head.logits(whole.witness(i))[0])) == i


def test_affinely_independent_head_has_every_pair_as_a_possible_top_two() -> None:
    head = near_hull_float16_head()
    W, b = head.W, head.bias
    m = co_top_matrix(head, list(range(6)))
    assert m.feasible[~np.eye(6, dtype=bool)].all()
    for (a, c), r in m.results.items():
        z = W @ r.witness + b
        rest = np.delete(z, [a, c])
        assert min(z[a], z[c]) > rest.max()
        assert abs(z[a] - z[c]) <= r.tol * max(1.0, np.abs(r.witness).max())
        assert lp_margin(W, b, [a, c], 1e3) > 0


def test_dependent_rows_still_go_to_the_lp_and_get_a_certificate() -> None:
    W = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [0.3, 0.3]])  # V - 1 > d
    r = is_argmaxable(Head(W), 3)
    assert r.status == "no" and r.certificate is not None


def test_keep_cosines_refusal_names_a_certificate_not_an_undecided_label() -> None:
    W = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [0.3, 0.3]])
    with pytest.raises(UnembedError) as e:
        unargmaxable_keeping_cosines(Head(W), 3)
    assert "already not argmaxable" in str(e.value) and "certificate" in str(e.value)
