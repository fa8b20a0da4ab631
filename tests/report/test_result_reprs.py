"""Every result the API returns shows itself in a notebook as a short summary (a repr of a few
lines, at most 300 characters at V = 200, naming the key numbers) and a small HTML table; the
numbers named are recomputed here by independent means (scipy's LP solver, numpy cosines and
softmaxes), not read back from the result."""

from __future__ import annotations

import ast
import itertools
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.optimize import linprog

import unembed as u
from unembed import Head

V, D = 200, 8
MAX_REPR = 300


@pytest.fixture(scope="module")
def head() -> Head:
    rng = np.random.default_rng(7)
    return Head(rng.normal(size=(V, D)), rng.normal(size=V) * 0.3,
                labels=[f"w{i}" for i in range(V)])


def _short(obj: object) -> str:
    text = repr(obj)
    assert len(text) <= MAX_REPR and text.count("\n") <= 2, (len(text), text[:400])
    page = obj._repr_html_()  # type: ignore[attr-defined]
    assert isinstance(page, str) and "<table" in page
    return text


def _leads(W: NDArray[np.float64], b: NDArray[np.float64], first: list[int],
           rest: list[int], tie: bool = False) -> bool:
    """Is there an h with z_f > z_r for every f in ``first`` (in order when several: a
    ranking; tied when ``tie``) and every r in ``rest``? An LP in (h, t): maximise t, each
    strict inequality as difference >= t, t <= 1 (scale-free, so t > 0 iff feasible)."""
    A_ub, b_ub, A_eq, b_eq = [], [], [], []
    chain = [(first[0], first[1])] if tie else list(itertools.pairwise(first))
    for a, c in chain:
        if tie:
            A_eq.append(np.r_[W[a] - W[c], 0.0])
            b_eq.append(b[c] - b[a])
        else:
            A_ub.append(np.r_[W[c] - W[a], 1.0])
            b_ub.append(b[a] - b[c])
    for r in rest:
        A_ub.append(np.r_[W[r] - W[first[-1]], 1.0])
        b_ub.append(b[first[-1]] - b[r])
    res = linprog(np.r_[np.zeros(W.shape[1]), -1.0], A_ub=np.array(A_ub), b_ub=b_ub,
                  A_eq=np.array(A_eq) if A_eq else None, b_eq=b_eq or None,
                  bounds=[(None, None)] * W.shape[1] + [(None, 1.0)], method="highs")
    assert res.status == 0
    return bool(-res.fun > 1e-7)


def test_argmaxable_all_is_one_line_with_its_counts(head: Head) -> None:
    res = u.argmaxable_all(head)
    text = _short(res)
    b = head.b
    assert b is not None
    yes = sum(_leads(head.W, b, [i], [j for j in range(V) if j != i]) for i in range(V))
    assert f"V={V}: {yes} yes, {V - yes} no" in text
    assert f"LP {int((res.method == 'lp').sum())}" in text
    assert len(repr(res)) < 400  # it was 40,059 characters (239,749 for this head)


def test_feasibility_answers_are_one_line(head: Head) -> None:
    b = head.b
    assert b is not None
    for i in (0, 1, 2):
        r = u.is_argmaxable(head, i)
        expect = _leads(head.W, b, [i], [j for j in range(V) if j != i])
        assert f"'w{i}': {'yes' if expect else 'no'}," in _short(r)
    r = u.can_be_top_two(head, "w0", "w1")
    expect = _leads(head.W, b, [0, 1], list(range(2, V)), tie=True)
    assert f"'w0', 'w1': {'yes' if expect else 'no'}," in _short(r)


def test_co_top_matrix_counts_its_pairs(head: Head) -> None:
    b = head.b
    assert b is not None
    idx = [int(i) for i in np.argsort(-np.linalg.norm(head.W, axis=1))[:6]]
    r = u.co_top_matrix(head, idx)
    yes = sum(_leads(head.W, b, [a, c], [j for j in range(V) if j not in (a, c)], tie=True)
              for a, c in itertools.combinations(idx, 2))
    assert f"6 labels ('w{idx[0]}'" in _short(r) and f"15 pairs: {yes} can be the top two, " \
        f"{15 - yes} cannot" in repr(r)


def test_enumeration_counts_its_items() -> None:
    """In d = 2 four labels cannot take every one of their 24 rankings."""
    rng = np.random.default_rng(3)
    flat = Head(rng.normal(size=(V, 2)), rng.normal(size=V) * 0.3,
                labels=[f"w{i}" for i in range(V)])
    assert flat.b is not None
    labels = [0, 1, 2, 3]
    r = u.enumerate_rankings(flat, labels)
    yes = sum(_leads(flat.W, flat.b, list(p), []) for p in itertools.permutations(labels))
    assert 0 < yes < 24 and "ranking of 4 labels" in _short(r)
    assert f"24 in all, {yes} feasible, {24 - yes} infeasible, 0 undecided" in repr(r)


def _cos(a: NDArray[np.float64], c: NDArray[np.float64]) -> float:
    return float(a @ c / np.sqrt((a @ a) * (c @ c)))


def test_constructions_name_the_cosines_before_and_after(head: Head) -> None:
    r = u.translation_for_cosine(head, "w3", "w4", -0.5)
    text = _short(r)
    assert f"{_cos(head.W[3], head.W[4]):+.4f} -> {_cos(r.head.W[3], r.head.W[4]):+.4f}" in text
    assert "target -0.5000 (reached)" in text and "Equivalence(equivalent" in text
    m = u.translation_for_cosines(head, {("w3", "w4"): -0.5, ("w5", "w6"): 0.25})
    reached = sum(abs(_cos(m.head.W[i], m.head.W[j]) - t) <= 1e-9
                  for i, j, t in ((3, 4, -0.5), (5, 6, 0.25)))
    assert f"2 pairs, {reached} reached" in _short(m)
    a = u.translation_for_all_pairs(head, 0.1)
    text = _short(a)
    U = a.head.W / np.linalg.norm(a.head.W, axis=1, keepdims=True)
    low = float((U @ U.T).min())
    assert a.min_cosine_bound <= low + 1e-12 and f">= {a.min_cosine_bound:.6f}" in text
    assert f"over {V} labels" in text


def test_equivalence_names_its_verdict_and_largest_difference(head: Head) -> None:
    rng = np.random.default_rng(1)
    H = rng.normal(size=(64, D))
    z1 = H @ head.W.T
    z2 = z1 + rng.normal(size=z1.shape) * 0.1

    def softmax(z: NDArray[np.float64]) -> NDArray[np.float64]:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    dp = float(np.abs(softmax(z1) - softmax(z2)).max())
    agree = 100 * float(np.mean(z1.argmax(1) == z2.argmax(1)))
    text = _short(u.compare_logits(z1, z2))
    assert text.startswith("Equivalence(NOT equivalent") and f"max |dp| {dp:.3g} >" in text
    assert f"on 64 inputs; argmax agreement {agree:.2f}%" in text


def test_keep_cosines_names_the_rows_it_rescaled(head: Head) -> None:
    from unembed.keep_cosines import unargmaxable_keeping_cosines

    b = head.b
    assert b is not None
    label = next(i for i in range(V) if _leads(head.W, b, [i], [j for j in range(V) if j != i]))
    r = unargmaxable_keeping_cosines(head, label)
    moved = int(np.sum(~np.isclose(np.linalg.norm(r.head.W, axis=1),
                                   np.linalg.norm(head.W, axis=1), rtol=0, atol=0)))
    assert f"yes -> no (changed); {moved} of {V} rows rescaled" in _short(r)


def test_symmetries_are_one_line_each(head: Head) -> None:
    for name, s in u.symmetries(head).items():
        assert _short(s).startswith(f"Symmetry({name}: ")


def test_export_result_is_one_line(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    m = u.load(LogisticRegression(max_iter=1000).fit(X, y))
    res = u.translation_for_cosine(m.head, "0", "1", -1.0)
    r = u.export_model(m, res.head, tmp_path / "est.pkl", inputs=X)
    text = _short(r)
    assert str(tmp_path / "est.pkl") in text and "Equivalence(equivalent" in text
    assert f"on {len(X)} inputs" in text
    assert pickle.loads((tmp_path / "est.pkl").read_bytes()) is not None


def test_heads_and_models_stay_short(head: Head) -> None:
    _short(head)
    _short(u.load(head))


def _centered_best(head: Head, i: int) -> tuple[int, float]:
    R = head.W - head.W.mean(axis=0)
    U = R / np.linalg.norm(R, axis=1, keepdims=True)
    c = U @ U[i]
    c[i] = -np.inf
    j = int(np.argmax(c))
    return j, float(c[j])


def test_neighbours_summary_table_and_frame(head: Head) -> None:
    nb = u.neighbours(head, k=10)
    assert isinstance(nb, dict) and len(nb) == V and nb.view == "centered" and nb.k == 10
    text = _short(nb)
    j, c = _centered_best(head, 0)
    assert f"centered view, k=10, {V} labels: 'w0' -> 'w{j}' {c:+.4f}" in text
    frame = nb.to_frame()
    assert list(frame.columns) == ["label", "rank", "neighbour", "index", "cosine"]
    assert len(frame) == sum(len(v) for v in nb.values()) == V * 10
    expect: list[tuple[Any, ...]] = [(lab, r, n.label, n.index, n.cosine)
                                     for lab, ns in nb.items() for r, n in enumerate(ns, 1)]
    assert list(frame.itertuples(index=False, name=None)) == expect
    assert str(frame["cosine"].dtype) == "float64" and str(frame["rank"].dtype) == "int64"


def test_neighbours_frame_without_pandas_names_the_extra(head: Head,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    nb = u.neighbours(head, ["w0"], k=3)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(u.UnembedError, match=r"unembed\[frame\]") as e:
        nb.to_frame()
    assert "\n" not in str(e.value)


def test_results_import_no_presentation_module() -> None:
    """The results' summaries live on them; their tables come through the registry, never
    by importing the presentation room."""
    src = Path(u.__file__).parent
    for rel in ("neighbours.py", "construct.py", "equivalence.py", "keep_cosines.py",
                "gauges.py", "export/_common.py", "feasibility/_core.py",
                "feasibility/vocabulary.py", "feasibility/enumerations.py"):
        tree = ast.parse((src / rel).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith(("unembed._reprs", "unembed.report")) for n in names), rel
