"""Enumerations over small label sets (every feasible ranking, top-k set or sigmoid on/off
pattern) and the co-top matrix of a label set, built on the single questions of
:mod:`unembed.feasibility.questions` and decided as in :mod:`unembed.feasibility._core`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed.feasibility._core import (
    Feasibility,
    Radius,
    Realises,
    Space,
    decide,
    make_problem,
    make_space,
    with_bound,
)
from unembed.feasibility.questions import decide_top_two, distinct_labels
from unembed.feasibility.result import SearchBound
from unembed.head import Head, LabelRef

_MAX_ENUM = 8


# ---------------------------------------------------------------------------------- co-top
@dataclass(frozen=True, eq=False)
class CoTopMatrix:
    """Per pair of a label set: can the pair be the top two of the whole head together?

    Attributes
    ----------
    labels : tuple of str, length n
    feasible : ndarray of bool, shape (n, n)
        Symmetric; the diagonal is False (a label with itself is not a pair).
    margin : ndarray of float64, shape (n, n)
        Unit-form margins (NaN on the diagonal).
    results : dict (i, j) -> Feasibility, for i < j
    hidden_bound : SearchBound or None
        The bound on h the pairs were decided under (see ``Feasibility.hidden_bound``).
    realises : {"W h + b", "W h"}
        The logits every witness realises (see ``Feasibility.realises``).
    """

    labels: tuple[str, ...]
    feasible: NDArray[np.bool_]
    margin: NDArray[np.float64]
    results: dict[tuple[int, int], Feasibility]
    hidden_bound: SearchBound | None = None
    realises: Realises = "W h + b"

    def __repr__(self) -> str:
        """One line: the labels and how many of their pairs can or cannot lead together."""
        st = [r.status for r in self.results.values()]
        shown = ", ".join(repr(x) for x in self.labels[:4])
        more = ", …" if len(self.labels) > 4 else ""
        return (f"CoTopMatrix({len(self.labels)} labels ({shown}{more}), {len(st)} pairs: "
                f"{st.count('yes')} can be the top two, {st.count('no')} cannot, "
                f"{st.count('undecided')} undecided)")

    def _repr_html_(self) -> str:
        from unembed._display import html

        return html("co_top", self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "feasible": self.feasible.tolist(),
            "margin": [[None if math.isnan(x) else float(x) for x in row]
                       for row in self.margin],
            "status": {f"{self.labels[i]}|{self.labels[j]}": r.status
                       for (i, j), r in self.results.items()},
            "hidden_bound": None if self.hidden_bound is None else self.hidden_bound.to_dict(),
            "realises": self.realises,
        }


def co_top_matrix(
    head: Head, labels: Sequence[LabelRef], *, bias: bool = True, radius: Radius = None,
    rtol: float | None = None,
) -> CoTopMatrix:
    """:func:`can_be_top_two` for every pair of ``labels`` (over the whole head).

    Each pair first tries cheap candidate hidden states (checked against every label); LPs with
    lazily generated rows decide the rest.

    Examples
    --------
    >>> import numpy as np
    >>> from unembed import Head
    >>> W = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.8], [-1.0, -1.0]])
    >>> co_top_matrix(Head(W), [0, 1, 2]).feasible.astype(int)   # row 2 sits between 0 and 1
    array([[0, 0, 1],
           [0, 0, 1],
           [1, 1, 0]])
    """
    idx = distinct_labels(head, labels, "labels", "co_top_matrix", 2)
    n = len(idx)
    feas = np.zeros((n, n), dtype=bool)
    marg = np.full((n, n), np.nan)
    results: dict[tuple[int, int], Feasibility] = {}
    sp = make_space(head, bias=bias, radius=radius, rtol=rtol, func="co_top_matrix")
    sp.tol  # noqa: B018  (computed once for all pairs)
    for a, b in itertools.combinations(range(n), 2):
        r = decide_top_two(head, sp, idx[a], idx[b])
        results[(a, b)] = r
        feas[a, b] = feas[b, a] = r.feasible
        marg[a, b] = marg[b, a] = r.margin
    return CoTopMatrix(tuple(head.labels[i] for i in idx), feas, marg, results, sp.bound,
                       sp.realises)


# ---------------------------------------------------------------------------------- enumerations
@dataclass(frozen=True, eq=False)
class Enumeration:
    """All feasible rankings / top-k sets / sign combinations of a small label set.

    Attributes
    ----------
    kind : {"ranking", "top_k_set", "combination"}
    labels : tuple of str
        The label set (the question is asked within it: other labels of the head are ignored).
    feasible : list of Feasibility
        One per feasible item, each with its witness.
    infeasible : list of Feasibility
        Certificates; for rankings a "no" may be a *prefix* ruling out every ranking that
        starts with it (``covers`` rankings).
    undecided : list of Feasibility
    total : int
        Number of items (m!, C(m, k) or 2^m).
    lp_solves, samples : int
        Work done: LPs solved, random hidden states tried first.
    hidden_bound : SearchBound or None
        The bound on h the items were decided under.
    realises : {"W h + b", "W h"}
        The logits every witness realises (see ``Feasibility.realises``).
    """

    kind: str
    labels: tuple[str, ...]
    feasible: list[Feasibility]
    infeasible: list[Feasibility]
    undecided: list[Feasibility]
    total: int
    lp_solves: int
    samples: int
    hidden_bound: SearchBound | None = None
    realises: Realises = "W h + b"

    @property
    def items(self) -> list[tuple[str, ...]]:
        """The feasible items (rankings, sets or "+a"/"-b" patterns)."""
        return [r.labels for r in self.feasible]

    @property
    def n_feasible(self) -> int:
        return len(self.feasible)

    @property
    def n_infeasible(self) -> int:
        return int(sum(r.covers or 1 for r in self.infeasible))

    def __repr__(self) -> str:
        """One line: what was enumerated and how many items are feasible, infeasible,
        undecided."""
        shown = ", ".join(repr(x) for x in self.labels[:6])
        more = ", …" if len(self.labels) > 6 else ""
        return (f"Enumeration({self.kind} of {len(self.labels)} labels ({shown}{more}): "
                f"{self.total} in all, {self.n_feasible} feasible, {self.n_infeasible} "
                f"infeasible, {len(self.undecided)} undecided; {self.lp_solves} LPs)")

    def _repr_html_(self) -> str:
        from unembed._display import html

        return html("enumeration", self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "labels": list(self.labels),
            "total": self.total,
            "n_feasible": self.n_feasible,
            "n_infeasible": self.n_infeasible,
            "n_undecided": len(self.undecided),
            "lp_solves": self.lp_solves,
            "samples": self.samples,
            "realises": self.realises,
            "feasible": [{"items": list(r.labels), "margin": r.margin, "method": r.method,
                          "witness": None if r.witness is None else r.witness.tolist()}
                         for r in self.feasible],
            "infeasible": [{"items": list(r.labels), "margin": r.margin,
                            "covers": r.covers or 1,
                            "certificate": None if r.certificate is None
                            else r.certificate.to_dict()} for r in self.infeasible],
            "undecided": [list(r.labels) for r in self.undecided],
            **({} if self.hidden_bound is None
               else {"hidden_bound": self.hidden_bound.to_dict()}),
        }


def _subhead(head: Head, labels: Sequence[LabelRef], func: str, least: int) -> Head:
    idx = distinct_labels(head, labels, "labels", func, least)
    if len(idx) > _MAX_ENUM:
        raise UnembedError(f"can name at most {_MAX_ENUM} labels "
                           f"(the count grows like m!). Got {len(idx)}.", argument="labels",
                           function=func)
    return head.subset(idx)


def sample_states(sp: Space, n: int, seed: int) -> NDArray[np.float64]:
    """Random hidden states (n, d) spread over the sizes that matter for this space."""
    rng = np.random.default_rng(seed)
    d = sp.W.shape[1]
    if n <= 0:
        return np.zeros((0, d))
    if sp.radius is not None:
        return rng.uniform(-1.0, 1.0, size=(n, d)) * sp.r[None, :]
    H = rng.standard_normal((n, d))
    if np.any(sp.b != 0):
        typical = float(np.abs(sp.b).max()) / max(float(np.linalg.norm(sp.W, axis=1).mean()),
                                                  1e-300)
        sizes = typical * 10.0 ** rng.uniform(-2, 3, size=n) / np.sqrt(d)
        H *= sizes[:, None]
    return H


def _unit_logits(sp: Space, H: NDArray[np.float64]
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Logits at the unit form of each sampled state: (n, V) and the scale factors s (n,)."""
    if sp.radius is not None:
        s = np.ones(H.shape[0])
    else:
        s = 1.0 / np.maximum(1.0, np.abs(H).max(axis=1))
    return (H * s[:, None]) @ sp.W.T + s[:, None] * sp.b, s


def _found(sp: Space, H: NDArray[np.float64], key: Any
           ) -> dict[Any, tuple[float, NDArray[np.float64]]]:
    """Items reached by sampled states with a margin above tol: item -> (margin, witness)."""
    if H.shape[0] == 0:
        return {}
    Z, _ = _unit_logits(sp, H)
    out: dict[Any, tuple[float, NDArray[np.float64]]] = {}
    tol = sp.tol
    for n in range(Z.shape[0]):
        item, m = key(Z[n])
        if m > tol and (item not in out or m > out[item][0]):
            out[item] = (m, H[n])
    return out


def _from_sample(kind: str, names: tuple[str, ...], m: float, h: NDArray[np.float64],
                 sp: Space) -> Feasibility:
    return with_bound(Feasibility(kind, names, "yes", m, sp.tol, np.asarray(h, np.float64),
                                  None, sp.formulation, "sample"), sp)


def enumerate_rankings(
    head: Head, labels: Sequence[LabelRef], *, bias: bool = True, radius: Radius = None,
    rtol: float | None = None, samples: int = 2000, seed: int = 0,
) -> Enumeration:
    """All feasible orderings of up to 8 labels (within the set: other labels ignored).

    Random hidden states find most feasible orderings cheaply (each kept only with a margin
    above tol); a depth-first search over prefixes decides the rest with LPs, and an
    infeasible prefix (with its certificate) rules out every ordering that starts with it.

    Examples
    --------
    >>> import numpy as np
    >>> from unembed import Head
    >>> W = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    >>> e = enumerate_rankings(Head(W), [0, 1, 2])   # three lines through 0: six regions
    >>> e.n_feasible, e.total
    (6, 6)
    """
    sub = _subhead(head, labels, "enumerate_rankings", 2)
    sp = make_space(sub, bias=bias, radius=radius, rtol=rtol, func="enumerate_rankings")
    m = sub.n_labels
    names = sub.labels

    def key(z: NDArray[np.float64]) -> tuple[tuple[int, ...], float]:
        o = np.argsort(-z, kind="stable")
        return tuple(int(x) for x in o), float(np.min(z[o[:-1]] - z[o[1:]]))

    H = sample_states(sp, samples, seed)
    solved = _solve_every_ranking(sp)
    if solved is not None:
        H = np.vstack([H, solved])
    found = _found(sp, H, key)
    hit: set[tuple[int, ...]] = {r[:k] for r in found for k in range(1, m + 1)}
    feasible: list[Feasibility] = []
    infeasible: list[Feasibility] = []
    undecided: list[Feasibility] = []
    solves = 0
    lp_witness: dict[tuple[int, ...], Feasibility] = {}

    def visit(prefix: tuple[int, ...]) -> None:
        nonlocal solves
        rest = [q for q in range(m) if q not in prefix]
        if len(rest) == 1:
            full = (*prefix, rest[0])
            item = tuple(names[q] for q in full)
            if full in found:
                mg, h = found[full]
                feasible.append(_from_sample("ranking", item, mg, h, sp))
            else:
                r = lp_witness[prefix]
                feasible.append(with_bound(replace(  # the prefix's LP, said of the item
                    r, labels=item, lp_optimum=None, lp_space=None, reason=None, covers=None,
                    span=None, lp=None), sp))
            return
        for q in rest:
            child = (*prefix, q)
            others = [x for x in range(m) if x not in child]
            if child not in hit:
                rows = list(itertools.pairwise(child)) + [(child[-1], x) for x in others]
                r = decide(sub, sp, make_problem(rows=rows), question="ranking",
                           labels=tuple(names[x] for x in child))
                solves += r.lp_solves
                if r.status != "yes":
                    covers = math.factorial(len(others))
                    r = replace(r, covers=covers)
                    (infeasible if r.status == "no" else undecided).append(r)
                    continue
                lp_witness[child] = r
            visit(child)

    visit(())
    return Enumeration("ranking", names, feasible, infeasible, undecided, math.factorial(m),
                       solves, samples, sp.bound, sp.realises)


def _solve_every_ranking(sp: Space) -> NDArray[np.float64] | None:
    """When the m rows are linearly independent (m <= d), W h = t - b has an exact solution
    for every target t: one candidate per ordering (t = m, m-1, ..., 1 in that order), each
    still checked like any sample. None when that does not apply."""
    W = sp.W
    m, d = W.shape
    if m > d or (sp.radius is not None and np.any(sp.b != 0)):
        return None
    sv = np.linalg.svd(W, compute_uv=False)
    if sv[-1] <= 1e-8 * sv[0]:
        return None
    perms = np.array(list(itertools.permutations(range(m))), dtype=np.int64)
    T = np.empty(perms.shape, dtype=np.float64)
    np.put_along_axis(T, perms, np.arange(m, 0, -1, dtype=np.float64)[None, :], axis=1)
    scale = float(np.abs(sp.b).max(initial=0.0)) + 1.0
    H = np.asarray(np.linalg.lstsq(W, (scale * T - sp.b[None, :]).T, rcond=None)[0].T,
                   dtype=np.float64)
    if sp.radius is not None:
        H = np.asarray(H / sp.box_factor(H)[:, None], dtype=np.float64)
    return H


def enumerate_top_k_sets(
    head: Head, labels: Sequence[LabelRef], k: int, *, bias: bool = True,
    radius: Radius = None, rtol: float | None = None, samples: int = 2000, seed: int = 0,
) -> Enumeration:
    """All k-subsets of up to 8 labels that are the top k within the set for some hidden
    state (other labels ignored)."""
    func = "enumerate_top_k_sets"
    sub = _subhead(head, labels, func, 2)
    m = sub.n_labels
    if not (isinstance(k, (int, np.integer)) and 1 <= k < m):
        raise UnembedError(f"must be an integer in [1, {m - 1}]. "
                           f"Got {k!r} instead.", argument="k", function=func)
    sp = make_space(sub, bias=bias, radius=radius, rtol=rtol, func=func)

    def key(z: NDArray[np.float64]) -> tuple[tuple[int, ...], float]:
        o = np.argsort(-z, kind="stable")
        return tuple(sorted(int(x) for x in o[:k])), float(z[o[k - 1]] - z[o[k]])

    found = _found(sp, sample_states(sp, samples, seed), key)
    return _enumerate_items(sub, sp, "top_k_set", list(itertools.combinations(range(m), k)),
                            found, lambda S: make_problem(groups=[list(S)]),
                            lambda S: tuple(sub.labels[x] for x in S), samples)


def enumerate_combinations(
    head: Head, labels: Sequence[LabelRef], *, bias: bool = True, radius: Radius = None,
    rtol: float | None = None, samples: int = 2000, seed: int = 0,
) -> Enumeration:
    """Sigmoid heads: all on/off patterns of up to 8 labels reachable by some hidden state."""
    func = "enumerate_combinations"
    if head.link != "sigmoid":
        raise UnembedError(f"{func} is about sigmoid heads; this head's link is {head.link!r}. "
                           f"Use enumerate_rankings or enumerate_top_k_sets.")
    sub = _subhead(head, labels, func, 1)
    sp = make_space(sub, bias=bias, radius=radius, rtol=rtol, func=func)
    m = sub.n_labels

    def key(z: NDArray[np.float64]) -> tuple[tuple[bool, ...], float]:
        return tuple(bool(x > 0) for x in z), float(np.abs(z).min())

    found = _found(sp, sample_states(sp, samples, seed), key)
    patterns = list(itertools.product((True, False), repeat=m))

    def problem(p: tuple[bool, ...]) -> Any:
        return make_problem(rows=[(q, -1) if on else (-1, q) for q, on in enumerate(p)])

    def name(p: tuple[bool, ...]) -> tuple[str, ...]:
        return tuple(("+" if on else "-") + sub.labels[q] for q, on in enumerate(p))

    return _enumerate_items(sub, sp, "combination", patterns, found, problem, name, samples)


def _enumerate_items(sub: Head, sp: Space, kind: str, items: list[Any],
                     found: dict[Any, tuple[float, NDArray[np.float64]]], problem: Any,
                     name: Any, samples: int) -> Enumeration:
    feasible: list[Feasibility] = []
    infeasible: list[Feasibility] = []
    undecided: list[Feasibility] = []
    solves = 0
    for it in items:
        if it in found:
            feasible.append(_from_sample(kind, name(it), *found[it], sp))
            continue
        r = decide(sub, sp, problem(it), question=kind, labels=name(it))
        solves += r.lp_solves
        {"yes": feasible, "no": infeasible, "undecided": undecided}[r.status].append(r)
    return Enumeration(kind, sub.labels, feasible, infeasible, undecided, len(items), solves,
                       samples, sp.bound, sp.realises)


__all__ = [
    "CoTopMatrix",
    "Enumeration",
    "co_top_matrix",
    "enumerate_combinations",
    "enumerate_rankings",
    "enumerate_top_k_sets",
    "sample_states",
]
