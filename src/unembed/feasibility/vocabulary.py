"""Which labels of a whole vocabulary are argmaxable: a fast pass, then exact LPs.

0. Wide heads (V - 1 <= d, ``radius=None``): when the rows are affinely independent every
   label is argmaxable, with a witness from one QR factorisation and no LP (the theorem and
   its proof are in :mod:`unembed.feasibility.span`); each witness is re-checked in float64
   and labels it does not settle go on to step 1.
1. Fast pass (no LP). For every label i the start h = u_i - m (the centered row) and up to
   ``steps`` reflections across the hyperplane (u_i - u_j) . h = 0 of whichever label j beats i.
   All starts of a block of labels are tested against all V labels with one float32 matrix
   product; a label is settled only when its float32 margin minus a rigorous bound on the
   rounding error of that product,

       |fl32(u_k . h) - u_k . h| <= (gamma_d + 2 eps32) |u_k|_2 |h|_2,
       gamma_d = d eps32 / (1 - d eps32),  eps32 = 2^-24,

   (the rounding of W and h to float32 included), still exceeds tol. So a settled label's
   margin is a proven lower bound on the float64 margin of its witness.
2. Exact LPs (see :mod:`unembed.feasibility._core`) for the labels left, with lazily
   generated rows (start from the strongest competitors at the fast-pass point, add violated
   labels, the witness checked against all labels), in parallel across processes.
3. The narrowest argmaxable labels: LPs to optimality on the smallest fast-pass bounds until
   the n narrowest exact margins lie below every remaining bound (so the list is exact), or a
   budget runs out (``narrowest_exact`` says which).

With a bias (``radius=None``): the fast pass works on directions and then picks s (the unit
form's bias weight) as large as the direction's margin allows; LPs use the exact formulation.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed._progress import Bars, progress_bars
from unembed.device import resolve_device
from unembed.feasibility._core import (
    Certificate,
    Feasibility,
    Radius,
    Realises,
    Space,
    certify,
    check_candidate,
    decide,
    make_problem,
    make_space,
    with_bound,
)
from unembed.feasibility.questions import identical_reason, scaled_starts
from unembed.feasibility.sketch import (
    Sketch,
    choose_rank,
    covariance32,
    down32,
    principal_basis,
    rank_ladder,
)
from unembed.feasibility.span import SpanWitnesses, span_note, span_witnesses
from unembed.head import Head, LabelRef, owned

if TYPE_CHECKING:  # pragma: no cover
    from unembed.engine import RayEngine

_EPS32 = 2.0**-24
#: At most this many bytes (and 1024 rows) of W are rounded to float32 at a time by the fast pass.
_W32_BLOCK_BYTES = 1 << 24



if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class SketchInfo:
    """How the fast pass bounded each label's rivals (:mod:`unembed.feasibility.sketch`).

    Attributes
    ----------
    rank : int
        The sketch's rank; 0 when every rival was computed (no sketch).
    chosen : str
        Why that rank: "given", "cheapest on a sample block", "no rank paid on a sample
        block", "head too small to need one", "off on this device", "off (sketch=0)".
    tried : dict rank -> float
        Per rank tried on a block of labels drawn across the vocabulary: the share of a
        sample of rows whose bound reached some label's cut (each such row is computed
        exactly).
    exact_share : float or None
        The share of all (label, rival) logits computed exactly in the fast pass (None when
        its blocks ran on Ray workers, which do not report it).
    """

    rank: int
    chosen: str
    tried: dict[int, float] = field(default_factory=dict)
    exact_share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "chosen": self.chosen,
                "tried": {str(k): v for k, v in self.tried.items()},
                "exact_share": self.exact_share}


@dataclass(frozen=True, eq=False)
class VocabularyResult:
    """Every label of a head, argmaxable or not.

    Attributes
    ----------
    labels : tuple of str, length V
    status : ndarray of str, shape (V,)
        "yes", "no" or "undecided" per label.
    margin : ndarray of float64, shape (V,)
        Unit-form margin: a proven lower bound (fast pass), the LP's value (LP), or the exact
        optimum (labels in ``narrowest`` and every "no").
    method : ndarray of str, shape (V,)
        "fast", "span" (V - 1 <= d and affinely independent rows: see
        :mod:`unembed.feasibility.span`), "lp" or "identical" (see ``reasons``).
    tol : float
        ``rtol`` times the largest value a row can take (see ``rtol``).
    formulation : str
    lp_results : dict label index -> Feasibility
        Every label decided by an LP, with its witness or certificate.
    narrowest : list of Feasibility
        The argmaxable labels with the smallest exact margins.
    narrowest_exact : bool
        True when no other label can have a smaller margin than the last one listed.
    hidden_bound : dict
        The bound on h used: "kind" ("unbounded" or "box"), "source" ("none", "caller" or
        "architecture"), "radius", "radii" (per-coordinate), "reason" and "meaning" (what a
        "yes" and a "no" then prove about the model).
    realises : {"W h + b", "W h"}
        The logits on which every witness makes its label the strict argmax (``"W h"`` only
        for ``bias=False`` on a head with a bias).
    reasons : dict label index -> str
        Labels decided without an LP, with why: a row identical to another label's whose bias
        is at least as large (method "identical"; such a label is never the strict argmax).
    notes : tuple of str
        What else the reader needs to know (e.g. labels settled by the span theorem).
    rtol : dict
        ``{"value": rtol, "from": "given" | "default for storage dtype D"}``: by default the
        relative tolerance follows the head's storage dtype (:mod:`unembed._tolerance`).
    sketch : SketchInfo
        How the fast pass bounded the rivals. With a sketch, the margin of a "fast" label is
        a proven lower bound that can lie well below its witness's own margin (a rival left
        out counts with its bound), so the narrowest list ranks labels by those bounds.
    """

    labels: tuple[str, ...]
    status: NDArray[np.str_]
    margin: NDArray[np.float64]
    method: NDArray[np.str_]
    tol: float
    formulation: str
    lp_results: dict[int, Feasibility]
    narrowest: list[Feasibility]
    narrowest_exact: bool
    hidden_bound: dict[str, Any] = field(default_factory=dict)
    realises: Realises = "W h + b"
    reasons: dict[int, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    _recipes: dict[int, tuple[NDArray[np.int64], NDArray[np.float64], float]] = field(
        repr=False, default_factory=dict)
    _span: SpanWitnesses | None = field(repr=False, default=None)
    _head: Head | None = field(repr=False, default=None)
    rtol: dict[str, Any] = field(default_factory=dict)
    sketch: SketchInfo = field(default_factory=lambda: SketchInfo(0, "not run"))

    @property
    def unargmaxable(self) -> list[str]:
        """Labels proven not argmaxable (margin at most tol for every hidden state)."""
        return [self.labels[i] for i in np.flatnonzero(self.status == "no")]

    @property
    def undecided(self) -> list[str]:
        return [self.labels[i] for i in np.flatnonzero(self.status == "undecided")]

    def witness(self, label: LabelRef) -> NDArray[np.float64] | None:
        """A hidden state (d,) that makes the label the strict argmax of the logits named by
        ``realises`` (None unless "yes"). ``label`` is resolved like :meth:`Head.index`: a
        label string, an integer (numpy integers too) or "#N"."""
        if self._head is None:
            raise UnembedError("This VocabularyResult holds no head to rebuild witnesses from.")
        i = self._head.index(label)
        if self.method[i] == "span" and self._span is not None:
            return self._span.witness(self._head.W, i)
        if i in self.lp_results:
            return self.lp_results[i].witness
        if i not in self._recipes:
            return None
        return _rebuild(self._head.W, self._head.stats.mean(), i, self._recipes[i])

    def to_frame(self) -> pd.DataFrame:
        """One row per label as a pandas DataFrame (:func:`unembed.tables.vocabulary_table`)."""
        from unembed.tables import vocabulary_table

        return vocabulary_table(self).to_frame()

    def to_dict(self) -> dict[str, Any]:
        counts = {k: int((self.status == k).sum()) for k in ("yes", "no", "undecided")}
        return {
            "n_labels": len(self.labels),
            "counts": counts,
            "unargmaxable": self.unargmaxable,
            "undecided": self.undecided,
            "tol": self.tol,
            "rtol": self.rtol,
            "formulation": self.formulation,
            "hidden_bound": self.hidden_bound,
            "realises": self.realises,
            "reasons": {self.labels[i]: why for i, why in self.reasons.items()},
            "notes": list(self.notes),
            "span": int((self.method == "span").sum()),
            "fast_pass": int((self.method == "fast").sum()),
            "lp": int((self.method == "lp").sum()),
            "narrowest": [{"label": r.labels[0], "margin": _optimum(r),
                           "witness_margin": r.margin} for r in self.narrowest],
            "narrowest_exact": self.narrowest_exact,
            "sketch": self.sketch.to_dict(),
            "certificates": {self.labels[i]: r.certificate.to_dict()
                             for i, r in self.lp_results.items()
                             if r.status == "no" and r.certificate is not None},
        }


# ---------------------------------------------------------------------------------- fast pass
class _Scores:
    """The fast pass's float32 scores Z = fl32(H W^T) (n, V) of a block of starts, with the
    bias and the rounding correction added in float32, in numpy or, on ``device``, in torch.

    The two do the same IEEE float32 operations (one product, then separate multiplies and
    adds), and the bound on the product's rounding, gamma_d |u_k| |h| with
    gamma_d = d eps32 / (1 - d eps32), holds for any order of summation (a GPU's split or
    fused sums included); torch's float32 products are kept at full float32 precision
    (``set_float32_matmul_precision("highest")``: no TF32) while they run.

    Memory: on the host (numpy, or torch on the CPU) no float32 copy of W is kept: each product
    rounds W to float32 in blocks of at most 1024 rows (and :data:`_W32_BLOCK_BYTES`) into one
    buffer and writes those columns of Z, so the fast pass adds O(n V + block) to the float64
    head, not half of it again. The values are the same fl32(u_k) as a whole float32 copy's.
    On another device (a GPU) a float32 copy of W is made there once, filled block by block.
    """

    def __init__(self, W: NDArray[np.float64], b32: NDArray[np.float32],
                 n32: NDArray[np.float32], device: Any = None,
                 sketch: Sketch | None = None) -> None:
        self.device = device
        self.W = W
        self.W32: Any = None  # the device-resident float32 rows (another device only)
        self.b32: Any
        self.n32: Any
        self.Z: Any = None
        self.rr: Any = None
        # with a sketch (host only): rivals bounded through it, exact products for the rest
        self.sketch = sketch if device is None else None
        self.J: NDArray[np.int64] | None = None  # the rows of Z (None: all V)
        self.Y: NDArray[np.float32] | None = None  # the bounds of the other rows
        self.add: NDArray[np.float64] | None = None
        self.nu: NDArray[np.float64] | None = None
        self.pairs = [0, 0]  # (rival logits computed exactly, rival logits in all)
        self._bmax = float(np.abs(b32).max(initial=0.0))
        V, d = W.shape
        self._step = max(1, min(1024, _W32_BLOCK_BYTES // (4 * max(d, 1))))
        self._ystep = 4 * self._step  # columns of the sketch's bounds per elementwise pass
        self._buf = np.empty((min(V, self._step), d), dtype=np.float32)
        if device is None:
            self.b32, self.n32 = b32, n32
            return
        import torch

        self.b32 = torch.from_numpy(b32).to(device)
        self.n32 = torch.from_numpy(n32).to(device)
        if device.type != "cpu":
            self.W32 = torch.empty((V, d), dtype=torch.float32, device=device)
            for s in range(0, V, self._step):
                e = min(V, s + self._step)
                blk = self._buf[: e - s]
                blk[...] = W[s:e]
                self.W32[s:e] = torch.from_numpy(blk).to(device)

    def _vec(self, x: NDArray[np.float64]) -> Any:
        x32 = x.astype(np.float32)
        if self.device is None:
            return x32
        import torch

        return torch.from_numpy(x32).to(self.device)

    def _host(self, t: Any) -> NDArray[np.float64]:
        if self.device is None:
            return np.asarray(t, dtype=np.float64)
        return np.asarray(t.cpu().numpy(), dtype=np.float64)

    def _product(self, H32: Any, J: NDArray[np.int64] | None = None) -> Any:
        """fl32(H32 fl32(W)^T), (n, V): W rounded to float32 one block of rows at a time
        (only the rows J, (n, len(J)), when given: host only)."""
        if self.W32 is not None:
            return H32 @ self.W32.T
        if J is not None:
            ZJ = np.empty((H32.shape[0], J.size), dtype=np.float32)
            for s in range(0, J.size, self._step):
                rows = J[s:s + self._step]
                blk = self._buf[: rows.size]
                blk[...] = self.W[rows]
                ZJ[:, s:s + rows.size] = (blk @ H32.T).T
            return ZJ
        V = self.W.shape[0]
        Z: Any
        if self.device is None:
            Z = np.empty((H32.shape[0], V), dtype=np.float32)
        else:
            import torch

            Z = torch.empty((H32.shape[0], V), dtype=torch.float32)
        T = np.empty((min(V, self._step), H32.shape[0]), dtype=np.float32)
        for s in range(0, V, self._step):
            e = min(V, s + self._step)
            blk = self._buf[: e - s]
            blk[...] = self.W[s:e]  # the same rounding as W.astype(np.float32)
            if self.device is None:
                # (rows, n) then transposed into Z: BLAS runs faster this way round than
                # writing the (n, rows) strided block of Z directly
                t = T[: e - s]
                np.matmul(blk, H32.T, out=t)
                Z[:, s:e] = t.T
            else:
                import torch

                Z[:, s:e] = H32 @ torch.from_numpy(blk).T
        return Z

    def own(self, Hs: NDArray[np.float64], lab: NDArray[np.int64]) -> NDArray[np.float64]:
        """fl32(u_lab . h) (n,): each label's own logit at its witness, in float32 (the fast
        pass's bound on the rounding holds for any order of summation)."""
        own32 = np.einsum("ij,ij->i", Hs.astype(np.float32), self.W[lab].astype(np.float32))
        return np.asarray(own32, dtype=np.float64)

    def first(self, Hs: NDArray[np.float64], r: NDArray[np.int64], lab: NDArray[np.int64],
              add_bias: bool, corr: NDArray[np.float64], cut: NDArray[np.float64],
              unit_b: NDArray[np.float64] | None
              ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """(the strongest rival j (n,), an upper bound on its logit (n,)): the corrected
        float32 score of j, or, with a sketch, the larger of that and the sketch's bound on
        every rival it left out. A rival is left out only when its proven bound lies below
        ``cut`` (and, for the unit form's bias, ``unit_b`` being the labels' own biases, when
        its bound plus s b_j lies below cut + s b_i for every s in [0, 1]): it cannot then
        make the label fail, and a failing label's strongest rival is always computed
        exactly."""
        self.Z = self.Y = self.J = self.add = self.nu = None  # the previous block's go first
        if self.sketch is not None:
            got = self._first_sketched(Hs, r, lab, add_bias, corr, cut, unit_b)
            if got is not None:
                return got
        self.pairs[0] += Hs.shape[0] * self.W.shape[0]
        self.pairs[1] += Hs.shape[0] * self.W.shape[0]
        if self.device is None:
            Z = self._product(Hs.astype(np.float32))  # (n, V)
        else:
            import torch

            old = torch.get_float32_matmul_precision()
            torch.set_float32_matmul_precision("highest")
            try:
                Z = self._product(self._vec(Hs))
            finally:
                torch.set_float32_matmul_precision(old)
        rr, ll = (r, lab) if self.device is None else (
            self._index(r), self._index(lab))
        if add_bias:
            Z += self.b32[None, :]
        c32 = self._vec(corr)[:, None]
        for s in range(0, Z.shape[1], self._step):  # no (n, V) temporary
            Z[:, s:s + self._step] += c32 * self.n32[None, s:s + self._step]
        Z[rr, ll] = -np.inf
        j = Z.argmax(1)
        zj = self._host(Z[rr, j])
        self.Z, self.rr = Z, rr
        return self._host(j).astype(np.int64), zj

    def _first_sketched(self, Hs: NDArray[np.float64], r: NDArray[np.int64],
                        lab: NDArray[np.int64], add_bias: bool, corr: NDArray[np.float64],
                        cut: NDArray[np.float64], unit_b: NDArray[np.float64] | None
                        ) -> tuple[NDArray[np.int64], NDArray[np.float64]] | None:
        """:meth:`first` through the sketch; None when it would leave out less than half of
        the rows (the direct product is then as cheap)."""
        assert self.sketch is not None
        V = self.W.shape[0]
        n = Hs.shape[0]
        Y, add, mag = self.sketch.bounds(Hs)  # u_j . h_i <= Y_ij + add_i
        if not np.all((mag > 2.0**-100) & (mag < 2.0**100)):
            return None  # far from float32's range: the direct product (its own bound)
        Y[r, lab] = -np.inf
        # float32 additions of the bias (s b_j, s in [0, 1]) to Y: at most this much rounding
        nu = 2.0**-22 * (mag + 2 * self._bmax) * (1 + 1e-6) + 2.0**-146
        step = self._ystep
        if add_bias:
            for s in range(0, V, step):
                Y[:, s:s + step] += self.b32[None, s:s + step]
            add = add + nu
        thr = down32(cut - add)
        thr1 = None if unit_b is None else down32(cut + unit_b - add - nu)
        keep = np.zeros(V, dtype=bool)
        for s in range(0, V, step):
            y = Y[:, s:s + step]
            k = (y >= thr[:, None]).any(axis=0)
            if thr1 is not None:
                k |= ((y + self.b32[None, s:s + step]) >= thr1[:, None]).any(axis=0)
            keep[s:s + step] = k
        keep[lab] = True
        J = np.flatnonzero(keep)
        if J.size > V // 2:
            return None
        ZJ = self._product(Hs.astype(np.float32), J)
        if add_bias:
            ZJ += self.b32[None, J]
        ZJ += corr.astype(np.float32)[:, None] * self.n32[None, J]
        ZJ[r, np.searchsorted(J, lab)] = -np.inf
        jJ = ZJ.argmax(1)
        zJ = ZJ[r, jJ].astype(np.float64)
        Y[:, J] = -np.inf  # the rows computed exactly need no bound
        zj = np.maximum(zJ, Y.max(axis=1).astype(np.float64) + add)
        self.Z, self.rr, self.J, self.Y, self.add, self.nu = ZJ, r, J, Y, add, nu
        self.pairs[0] += n * J.size
        self.pairs[1] += n * V
        return J[jJ].astype(np.int64), zj

    def with_bias(self, s: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """After :meth:`first`: add s_n b to each row; (the strongest rival, an upper bound on
        its score)."""
        Z = self.Z
        s32 = self._vec(s)[:, None]
        b = self.b32 if self.J is None else self.b32[self.J]
        for t in range(0, Z.shape[1], self._step):
            Z[:, t:t + self._step] += s32 * b[None, t:t + self._step]
        jb = Z.argmax(1)
        zjb = self._host(Z[self.rr, jb])
        if self.J is None:
            return self._host(jb).astype(np.int64), zjb
        assert self.Y is not None and self.add is not None and self.nu is not None
        Y, step = self.Y, self._ystep
        for t in range(0, Y.shape[1], step):
            Y[:, t:t + step] += s32 * self.b32[None, t:t + step]
        ub = Y.max(axis=1).astype(np.float64) + self.add + self.nu
        return self.J[jb].astype(np.int64), np.maximum(zjb, ub)

    def _index(self, a: NDArray[np.int64]) -> Any:
        import torch

        return torch.from_numpy(np.asarray(a, dtype=np.int64)).to(self.device)


def _fast_block(scores: _Scores, W: NDArray[np.float64], mean: NDArray[np.float64],
                norms: NDArray[np.float64], sp: Space, idx: NDArray[np.int64], steps: int
                ) -> tuple[NDArray[np.float64], list[list[tuple[int, float]]],
                           NDArray[np.float64], NDArray[np.int64]]:
    """Starts + reflections for a block of labels. Returns (margin lower bounds, reflection
    recipes, scale factors to the unit box, the strongest competitor of each). ``mean``: the
    rows' mean (the head's cached one; :func:`_rebuild` starts from the same)."""
    d = W.shape[1]
    gamma = d * _EPS32 / (1 - d * _EPS32) + 2 * _EPS32
    H = W[idx] - mean
    recipes: list[list[tuple[int, float]]] = [[] for _ in idx]
    lower = np.full(idx.size, -np.inf)
    scale = np.ones(idx.size)
    rival = np.zeros(idx.size, dtype=np.int64)
    todo = np.arange(idx.size)
    rows = np.arange(idx.size)
    biased = bool(np.any(sp.b != 0))
    bmax = float(np.abs(sp.b).max(initial=0.0))
    nmax = float(norms.max())
    for step in range(steps + 1):
        if todo.size == 0:
            break
        Hs = H[todo]
        inf = np.abs(Hs).max(axis=1)
        k = (1.0 / sp.box_factor(Hs)) if sp.radius is not None else (1.0 / inf)
        Hs = Hs * k[:, None]
        lab = idx[todo]
        r = rows[: todo.size]
        hn = np.linalg.norm(Hs, axis=1)
        # all in float32, in place; every rounding is covered by `slack` and `ei` below
        add_bias = sp.radius is not None and biased
        unit_bias = sp.radius is None and biased
        zi = scores.own(Hs, lab)
        ei = gamma * norms[lab] * hn
        # (+ underflow: a float32 product or rounding may lose up to 2^-150 besides its
        # relative error; 2 d + 8 of them enter a corrected score)
        slack = (2 * _EPS32 * (hn * nmax * (1 + gamma) + 2 * bmax) + 4 * _EPS32 * bmax
                 + (2 * d + 8) * 2.0**-149)
        if add_bias:
            zi = zi + sp.b[lab]
        # a rival whose score stays below the cut cannot make the label fail
        cut = (zi - ei) - slack - sp.tol
        j, zj = scores.first(Hs, r, lab, add_bias, gamma * (1 + 1e-5) * hn, cut,
                             sp.b[lab] if unit_bias else None)
        low = (zi - ei) - (zj + slack)
        if unit_bias:
            # unit form (Hs, s): pick s so that the bias costs at most a quarter of the
            # direction's margin per competitor, then recompute the bound with the bias in.
            s = np.clip(low / (4 * bmax), 0.0, 1.0)
            _, zjb = scores.with_bias(s)
            low = (zi - ei + s * sp.b[lab]) - (zjb + slack)
            k = k / np.where(s > 0, s, 1.0)
        lower[todo] = low
        scale[todo] = k
        rival[todo] = j
        left = low <= sp.tol
        if step == steps:
            break
        # reflect the ones still failing across the hyperplane of their strongest rival
        for t in np.flatnonzero(left):
            a = todo[t]
            i, jj = int(idx[a]), int(j[t])
            delta = W[i] - W[jj]
            dd = float(delta @ delta)
            if dd == 0:  # an identical row: no hyperplane to reflect across (LP decides)
                continue
            gap = float(delta @ H[a])
            beta = -2 * gap / dd if gap <= 0 else 1.0 / dd
            H[a] = H[a] + beta * delta
            recipes[a].append((jj, beta))
        todo = todo[left]
    return lower, recipes, scale, rival


# ---------------------------------------------------------------------------------- LP workers
_WORKER: dict[str, Any] = {}


def _init_worker(W: NDArray[np.float64], b: NDArray[np.float64], radius: float | None,
                 rtol: float, labels: tuple[str, ...], centered: bool,
                 box: NDArray[np.float64] | None = None,
                 bound: dict[str, Any] | None = None) -> None:
    # owned(W): the head shares the caller's read-only rows (in a forked worker, the parent's
    # pages), never a second copy of them.
    head = Head(owned(W), b=b if np.any(b != 0) else None, labels=labels, strict=False)
    _WORKER["head"] = head
    _WORKER["space"] = Space(head.W, b, radius, rtol, centered=centered, box=box,
                             bound=bound or {})


def _init_pool_worker(*initargs: Any) -> None:
    """Initializer of a pool worker process: SIGINT is ignored (the parent, which sees it
    too, stops the workers) and SIGTERM ends the worker at once, so that an interrupted run
    never prints a worker's traceback; then the head as in :func:`_init_worker`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform != "win32":  # blocked by the parent while it forked (_forking)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    _init_worker(*initargs)


_STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


@contextmanager
def _forking() -> Iterator[None]:
    """SIGINT and SIGTERM held back while the pool forks its workers: a handler that raises
    KeyboardInterrupt inside the interpreter's at-fork hooks would be printed and lost, and
    a worker inherits the mask, so that it sees no signal before its initializer has put its
    own handlers in place (:func:`_init_pool_worker`). A held signal arrives right after."""
    if sys.platform == "win32":
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _lp_label(task: tuple[int, NDArray[np.float64] | None, bool]) -> Feasibility:
    i, start, optimal = task
    head: Head = _WORKER["head"]
    sp: Space = _WORKER["space"]
    starts = [] if start is None else scaled_starts(start, sp)
    return decide(head, sp, make_problem(groups=[[i]]), question="argmaxable",
                  labels=(head.labels[i],), starts=starts, optimal=optimal)


def _fast_unit(shared: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64],
                              Space, int, Sketch | None], idx: NDArray[np.int64]
               ) -> tuple[NDArray[np.float64], list[list[tuple[int, float]]],
                          NDArray[np.float64], NDArray[np.int64]]:
    """One block of the fast pass as a unit of work for an engine (numpy, on the worker)."""
    W, mean, norms, sp, steps, sketch = shared
    scores = _Scores(W, sp.b.astype(np.float32), norms.astype(np.float32), sketch=sketch)
    return _fast_block(scores, W, mean, norms, sp, idx, steps)


_UNIT_KEY: list[str] = []


def _lp_unit(shared: tuple[Any, ...], task: tuple[int, NDArray[np.float64] | None, bool]
             ) -> Feasibility:
    """One label's LP as a unit of work for an engine (the worker builds the head once)."""
    key, *initargs = shared
    if _UNIT_KEY != [key]:
        _init_worker(*initargs)
        _UNIT_KEY[:] = [key]
    return _lp_label(task)


class _Runner:
    """Runs label LPs in this process, in one pool of worker processes (made on first use,
    each worker given the head once), or as units of an engine (every witness checked again
    here)."""

    def __init__(self, head: Head, sp: Space, workers: int,
                 engine: RayEngine | None = None) -> None:
        self.head, self.sp, self.workers = head, sp, workers
        self.ex: ProcessPoolExecutor | None = None
        self.local = False
        self.engine = engine
        self._shared: tuple[Any, ...] | None = None

    def _initargs(self) -> tuple[Any, ...]:
        return (self.head.W, self.sp.b, self.sp.radius, self.sp.rtol, self.head.labels,
                self.sp.centered, self.sp.box, self.sp.bound)

    def _run_engine(self, engine: RayEngine,
                    tasks: list[tuple[int, NDArray[np.float64] | None, bool]],
                    tick: Callable[[], None]) -> dict[int, Feasibility]:
        if self._shared is None:
            import hashlib

            key = hashlib.sha256(np.ascontiguousarray(self.head.W).tobytes()).hexdigest()
            self._shared = (key, *self._initargs())
        got = engine.map(_lp_unit, self._shared, tasks, tick)
        out: dict[int, Feasibility] = {}
        for t, r in zip(tasks, got):
            i = t[0]
            if r.status == "yes":
                ok = r.witness is not None and check_candidate(
                    self.sp, make_problem(groups=[[i]]), r.witness)[0]
                if not ok:  # never trusted unchecked: decide it here instead
                    r = self._local([t], lambda: None)[i]
            out[i] = r
        return out

    def _local(self, tasks: list[tuple[int, NDArray[np.float64] | None, bool]],
               tick: Callable[[], None]) -> dict[int, Feasibility]:
        if not self.local:
            _init_worker(*self._initargs())
            self.local = True
            _UNIT_KEY.clear()
        out: dict[int, Feasibility] = {}
        for t in tasks:
            out[t[0]] = _lp_label(t)
            tick()
        return out

    def run(self, tasks: list[tuple[int, NDArray[np.float64] | None, bool]],
            tick: Callable[[], None]) -> dict[int, Feasibility]:
        out: dict[int, Feasibility] = {}
        if not tasks:
            return out
        if self.engine is not None:
            return self._run_engine(self.engine, tasks, tick)
        if self.workers <= 1 or (len(tasks) == 1 and self.ex is None):
            return self._local(tasks, tick)
        if self.ex is None:
            self.ex = ProcessPoolExecutor(
                max_workers=self.workers, initializer=_init_pool_worker,
                initargs=self._initargs())
        with _forking():  # the workers are forked on the first submission (map submits all)
            results = self.ex.map(_lp_label, tasks, chunksize=1)
        for t, r in zip(tasks, results):
            out[t[0]] = r
            tick()
        return out

    def close(self) -> None:
        if self.ex is not None:
            self.ex.shutdown()
        _WORKER.clear()


# ---------------------------------------------------------------------------------- driver
def argmaxable_all(
    head: Head,
    *,
    bias: bool = True,
    radius: Radius = None,
    rtol: float | None = None,
    steps: int = 6,
    block: int = 256,
    workers: int | None = None,
    n_narrowest: int = 10,
    narrowest_budget: int = 20,
    progress: bool = False,
    engine: RayEngine | None = None,
    device: str | None = None,
    sketch: int | None = None,
) -> VocabularyResult:
    """Decide for every label of ``head`` whether it is argmaxable (see the module docstring).

    Parameters
    ----------
    head : Head
        Any link; (V, d) weights, bias used unless ``bias=False``.
    radius : None, float, array of shape (d,) or "architecture"
        None: some h in R^d (exact). A number R: |h|_inf <= R with the bias; an array r:
        |h_j| <= r_j; "architecture": the box recorded by the head's source in
        ``head.hidden_bound`` (a relaxation of what the model can reach: a "no" is
        proven for the model, a "yes" is a witness in the box). ``hidden_bound`` in the
        result says which.
    rtol : float, optional
        Margins below rtol times the largest row value count as no; default by the head's
        storage dtype (:func:`unembed.feasibility._core.default_rtol`), said in ``rtol``.
    steps : int
        Reflection steps of the fast pass.
    block : int
        Labels per float32 matrix product (memory: block x V x 12 bytes).
    workers : int, optional
        Processes for the LPs (default: the CPU count, at most 8).
    n_narrowest : int
        How many of the narrowest argmaxable labels to report with exact margins.
    progress : bool
        Show rich progress bars on stderr.
    engine : RayEngine, optional
        Run the fast pass's blocks and the LPs as units on Ray (:mod:`unembed.engine`):
        the same verdicts; every LP witness is checked again in this process.
    device : str, optional
        Run the fast pass's float32 products on this torch device ("cpu", "cuda", ...; see
        :mod:`unembed.device`) instead of numpy: the same float32 arithmetic and the same
        proven bound. The LPs run on the CPU.
    sketch : int, optional
        The fast pass on the host bounds rivals through a rank-k sketch of the rows
        (:mod:`unembed.feasibility.sketch`) and computes exactly only those whose bound
        reaches the label's cut. None: k chosen on a block of labels drawn across the
        vocabulary by measured cost
        among :func:`~unembed.feasibility.sketch.rank_ladder` (no sketch on small heads or
        when none pays); 0: no sketch (every rival computed, V^2 d work); k > 0: that rank.
        The verdicts are proven either way.

    Returns
    -------
    VocabularyResult
        ``unargmaxable`` lists the labels proven not argmaxable, each with a certificate in
        ``lp_results``; ``witness(label)`` rebuilds the hidden state of any "yes".
    """
    sp = make_space(head, bias=bias, radius=radius, rtol=rtol, func="argmaxable_all")
    V = head.n_labels
    W = head.W
    workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    # cached, computed in blocks; no float32 copy of W either (see _Scores)
    mean, norms = head.stats.mean(), head.stats.norms()
    lower = np.full(V, -np.inf)
    scale = np.ones(V)
    recipes: dict[int, tuple[NDArray[np.int64], NDArray[np.float64], float]] = {}
    span = span_witnesses(sp)
    by_span = span.settled if span is not None else np.zeros(V, dtype=bool)
    if span is not None:
        lower[by_span] = span.margin[by_span]
    fast = np.flatnonzero(~by_span)
    notes: list[str] = []
    scores: _Scores | None = None
    with progress_bars(progress, transient=False) as bar:
        blocks = [fast[start:start + block] for start in range(0, fast.size, block)]
        sk = None
        info = SketchInfo(0, "off on this device" if device is not None else
                          "off (sketch=0)" if sketch == 0 else "no fast pass")
        if device is None and blocks and sketch != 0:
            # the rank is measured on runs of labels drawn across the vocabulary: the first
            # rows of a real vocabulary are often special or unused tokens, unlike the rest
            probe = _probe(fast, block)
            sk, info = _choose_sketch(head, sp.tol, probe, block, sketch, bar)
        task = bar.add("fast pass (float32 blocks)", int(fast.size))
        done: Iterable[tuple[NDArray[np.float64], list[list[tuple[int, float]]],
                             NDArray[np.float64], NDArray[np.int64]]]
        if engine is not None:
            done = engine.map(_fast_unit, (W, mean, norms, sp, steps, sk), blocks)
        else:
            dev = None if device is None else resolve_device(device)
            scores = _Scores(W, sp.b.astype(np.float32), norms.astype(np.float32), dev, sk)
            done = (_fast_block(scores, W, mean, norms, sp, idx, steps) for idx in blocks)
        for idx, (low, rec, sc, _) in zip(blocks, done):
            lower[idx] = low
            scale[idx] = sc
            for a, i in enumerate(idx.tolist()):
                recipes[i] = (np.array([x[0] for x in rec[a]], dtype=np.int64),
                              np.array([x[1] for x in rec[a]]), float(sc[a]))
            bar.advance(task, idx.size)
        settled = (lower > sp.tol) | by_span  # span margins: proven > 0, any tolerance
        identical = _identical(head, sp)
        settled[list(identical)] = False
        left = np.setdiff1d(np.flatnonzero(~settled), list(identical))
        # the narrowest-margin LPs refine fast-pass labels only (labels settled by the span
        # theorem have V - 1 <= d: an LP in R^d for each would cost what the theorem saves)
        refine = settled & ~by_span
        if engine is not None:
            workers = engine.workers
        task = bar.add(f"exact LPs ({workers} workers)", int(left.size))
        tasks: list[tuple[int, NDArray[np.float64] | None, bool]] = [
            (int(i), _rebuild(W, mean, int(i), recipes[int(i)]), True) for i in left]
        runner = _Runner(head, sp, workers, engine)
        try:
            lp_results = runner.run(tasks, lambda: bar.advance(task, 1))
            exact, narrow_exact = _narrowest(runner, bar, W, mean, lower, refine, recipes,
                                             lp_results, n_narrowest, narrowest_budget)
        finally:
            runner.close()
    status = np.where(settled, "yes", "undecided").astype("<U9")
    method = np.where(settled, "fast", "lp").astype("<U9")
    method[by_span] = "span"
    if info.rank:
        share = (scores.pairs[0] / scores.pairs[1] if scores is not None and scores.pairs[1]
                 else None)
        info = SketchInfo(info.rank, info.chosen, info.tried, share)
        notes.append(
            f"fast pass: rivals bounded through a rank-{info.rank} sketch of the rows' top "
            "principal directions ("
            + (f"{100 * share:.3g}% of the rival logits computed exactly" if share is not None
               else "blocks on Ray workers") + "); a fast-pass margin is then a proven lower "
            "bound that may lie well below its witness's own margin, and the narrowest list "
            "ranks labels by those bounds (--sketch 0 for witnesses' own margins)")
    if by_span.any():
        narrow_exact = False
        assert span is not None
        notes.append(span_note(span, sp.tol))
    if narrow_exact and exact and sp.span is not None:
        narrow_exact = False
        notes.append("LPs solved in the rows' span (2 V <= d): their margins are the lifted "
                     "witnesses' margins in R^d, lower bounds on the R^d optima, so the "
                     "narrowest list is not called exact")
    margin = lower.copy()
    reasons: dict[int, str] = {}
    for i, r in identical.items():
        lp_results[i] = r
        method[i] = "identical"
        reasons[i] = str(r.extra["reason"])
    for i, r in lp_results.items():
        status[i] = r.status
        margin[i] = r.margin
        if not settled[i] and i not in identical:
            method[i] = "lp"
    narrow_idx = sorted(exact, key=lambda i: exact[i])[:n_narrowest]
    narrowest = [lp_results[i] for i in narrow_idx]
    keep = {i: rc for i, rc in recipes.items() if settled[i] and not by_span[i]}
    rtol_info = {"value": sp.rtol, "from": sp.rtol_from}
    for r in lp_results.values():  # LPs in worker processes knew the value, not its origin
        r.extra["rtol"] = rtol_info
    return VocabularyResult(head.labels, status, margin, method, sp.tol, sp.formulation,
                            lp_results, narrowest, narrow_exact, sp.bound, sp.realises,
                            reasons, tuple(notes), keep, span, head, rtol=rtol_info,
                            sketch=info)


_PROBE_RUNS = 4


def _probe(fast: NDArray[np.int64], block: int) -> NDArray[np.int64]:
    """:data:`_PROBE_RUNS` runs of block / 4 consecutive labels of ``fast`` at random places
    (seeded): what the sketch's rank is measured on (a block's cost is its run's union)."""
    run = max(1, block // _PROBE_RUNS)
    if fast.size <= run * _PROBE_RUNS:
        return fast
    starts = np.sort(np.random.default_rng(0x5C).choice(fast.size - run + 1, _PROBE_RUNS,
                                                        replace=False))
    return np.concatenate([fast[s:s + run] for s in starts])


def _choose_sketch(head: Head, tol: float, first: NDArray[np.int64], block: int,
                   rank: int | None, bar: Bars) -> tuple[Sketch | None, SketchInfo]:
    """The fast pass's sketch (:mod:`unembed.feasibility.sketch`): the rows' top principal
    directions (from the head's covariance when cached, else a float32 one), then the rank:
    ``rank`` when given, else the cheapest of the ladder, measured on one block of witnesses
    (``first``: labels drawn across the vocabulary) against a sample of the rows (no sketch
    when no rank pays, or on heads too small to need one); then the coefficients of every row
    at that rank."""
    V, d = head.W.shape
    ranks = rank_ladder(V, d, block) if rank is None else (int(rank),)
    if not ranks:
        return None, SketchInfo(0, "head too small to need one")
    task = bar.add("fast pass: sketch (covariance, basis, rank, coefficients)", 4)
    W, mean = head.W, head.stats.mean()
    cov = head.stats.cached_covariance()
    if cov is None:
        cov = covariance32(W, mean)
    bar.advance(task, 1)
    P = principal_basis(cov, max(ranks))
    bar.advance(task, 1)
    if rank is not None:
        q, info = P.shape[1], SketchInfo(P.shape[1], "given")
    else:
        H = W[first] - mean
        H /= np.maximum(np.abs(H).max(axis=1), 1e-300)[:, None]
        own = np.einsum("ij,ij->i", H, W[first])
        q, share = choose_rank(W, mean, P, ranks, H, own, first, tol, groups=_PROBE_RUNS)
        if not q:
            return None, SketchInfo(0, "no rank paid on a sample block", share)
        info = SketchInfo(q, "cheapest on a sample block", share)
    bar.advance(task, 1)
    sk = Sketch.build(W, mean, P[:, :q])
    bar.advance(task, 1)
    return sk, info


def _identical(head: Head, sp: Space) -> dict[int, Feasibility]:
    """Labels whose row equals another label's with a bias at least as large, each with its
    "no": the single row z_i - z_j (weight 1) certifies margin <= s (b_i - b_j) <= 0."""
    W = head.W
    key = W @ np.random.default_rng(0x1D).standard_normal(head.d)
    order = np.argsort(key, kind="stable")
    ks = key[order]
    out: dict[int, Feasibility] = {}
    for t in np.flatnonzero(ks[1:] == ks[:-1]):
        run = order[ks == ks[t]]
        for i in run.tolist():
            if i in out:
                continue
            same = run[np.all(W[run] == W[i], axis=1) & (run != i) & (sp.b[run] >= sp.b[i])]
            if not same.size:
                continue
            j = int(same[0])
            P, N = np.array([i]), np.array([j])
            E = np.zeros(0, dtype=np.int64)
            bound, resid, lam, nu = certify(sp, P, N, E, E, np.ones(1), np.zeros(0))
            cert = Certificate(((head.labels[i], head.labels[j]),), lam, (), nu, bound, resid)
            out[i] = with_bound(Feasibility(
                "argmaxable", (head.labels[i],), "no", float(sp.b[i] - sp.b[j]) if
                sp.radius is not None else min(0.0, float(sp.b[i] - sp.b[j])), sp.tol, None,
                cert, sp.formulation, "identical", 0,
                {"reason": identical_reason(head.labels[j])}), sp)
    return out


def _optimum(r: Feasibility) -> float:
    """The LP's optimum (the exact margin, a supremum when only reached as |h| -> inf)."""
    return float(r.extra.get("lp_optimum", r.margin))


def _narrowest(runner: _Runner, bar: Bars, W: NDArray[np.float64], mean: NDArray[np.float64],
               lower: NDArray[np.float64], settled: NDArray[np.bool_],
               recipes: dict[int, tuple[NDArray[np.int64], NDArray[np.float64], float]],
               lp_results: dict[int, Feasibility], n: int, budget: int
               ) -> tuple[dict[int, float], bool]:
    """Refine the smallest fast-pass bounds with LPs to optimality until the n smallest exact
    margins lie below every bound not refined (exact list), or the budget runs out."""
    exact = {i: _optimum(r) for i, r in lp_results.items() if r.status == "yes"}
    pool = [int(i) for i in np.flatnonzero(settled)[np.argsort(lower[settled])]]
    task = bar.add("narrowest margins", budget)
    spent = 0
    while True:
        kth = sorted(exact.values())[n - 1] if len(exact) >= n else np.inf
        if not pool or lower[pool[0]] >= kth:
            return exact, True
        if spent >= budget:
            return exact, False
        batch = pool[: max(1, runner.workers)]
        pool = pool[len(batch):]
        got = runner.run([(i, _rebuild(W, mean, i, recipes[i]), True) for i in batch],
                         lambda: bar.advance(task, 1))
        spent += len(batch)
        for i, r in got.items():
            if r.status == "yes":
                exact[i] = _optimum(r)
                lp_results[i] = r


def _rebuild(W: NDArray[np.float64], mean: NDArray[np.float64], i: int,
             recipe: tuple[NDArray[np.int64], NDArray[np.float64], float]
             ) -> NDArray[np.float64]:
    """The fast pass's witness for label i, with the same float64 operations as
    :func:`_fast_block` (so its proven margin holds for exactly this h)."""
    js, betas, sc = recipe
    h = W[i] - mean
    for j, beta in zip(js.tolist(), betas.tolist()):
        h = h + beta * (W[i] - W[j])
    return h * sc


__all__ = ["SketchInfo", "VocabularyResult", "argmaxable_all"]
