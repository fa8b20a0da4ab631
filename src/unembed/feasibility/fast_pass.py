"""The fast pass of :func:`unembed.feasibility.vocabulary.argmaxable_all` (step 1 there): for
every label a start and a few reflections, each tested against every label with one float32
matrix product, a label settled only when its float32 margin minus a rigorous bound on that
product's rounding,

    |fl32(u_k . h) - u_k . h| <= (gamma_d + 2 eps32) |u_k|_2 |h|_2,
    gamma_d = d eps32 / (1 - d eps32),  eps32 = 2^-24,

(the rounding of W and h to float32 included) still exceeds tol: a settled label's margin is
a proven lower bound on the float64 margin of its witness (:func:`rebuild`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed.feasibility._core import Space
from unembed.feasibility.sketch import Sketch, down32

_EPS32 = 2.0**-24
#: At most this many bytes (and 1024 rows) of W are rounded to float32 at a time by the fast pass.
_W32_BLOCK_BYTES = 1 << 24


class Scores:
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
        self._ybuf: NDArray[np.float32] | None = None  # Y's memory, kept from block to block
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
        # u_j . h_i <= fl32(G A^T)_ij + add_i
        proj = self.sketch.project(Hs)
        add, mag = proj.add, proj.mag
        if not np.all((mag > 2.0**-100) & (mag < 2.0**100)):
            return None  # far from float32's range: the direct product (its own bound)
        # float32 additions of the bias (s b_j, s in [0, 1]) to Y: at most this much rounding
        nu = 2.0**-22 * (mag + 2 * self._bmax) * (1 + 1e-6) + 2.0**-146
        if add_bias:
            add = add + nu
        thr = down32(cut - add)
        # the bounds Y (n, V) as one product into the kept buffer (the unit form's bias reads
        # them again in with_bias), then walked once in cache-sized chunks (Sketch.reach:
        # products chunk by chunk, without this buffer, were at most 5% faster, and 1.5 to 2
        # times slower on shared cores)
        if self._ybuf is None or self._ybuf.size < n * V:
            self._ybuf = np.empty(n * V, dtype=np.float32)
        Y = self._ybuf[: n * V].reshape(n, V)
        keep, top = self.sketch.reach(
            proj, thr, lab, Y, self.b32 if add_bias else None,
            None if unit_b is None else (self.b32, down32(cut + unit_b - add - nu)))
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
        # the rows computed exactly need no bound (left out of top, -inf in Y)
        zj = np.maximum(zJ, top.astype(np.float64) + add)
        self.Z, self.rr, self.J, self.Y, self.add, self.nu = ZJ, r, J, Y, add, nu
        self.pairs[0] += n * J.size
        self.pairs[1] += n * V
        return J[jJ].astype(np.int64), zj

    def with_bias(self, s: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """After :meth:`first` (the unit form's bias: ``unit_b`` given there): add s_n b to
        each row; (the strongest rival, an upper bound on its score)."""
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
        top = np.full(Y.shape[0], -np.inf, dtype=np.float32)
        for t in range(0, Y.shape[1], step):  # each step's maximum while it is in the cache
            y = Y[:, t:t + step]
            y += s32 * self.b32[None, t:t + step]
            np.maximum(top, y.max(axis=1), out=top)
        ub = top.astype(np.float64) + self.add + self.nu
        return self.J[jb].astype(np.int64), np.maximum(zjb, ub)

    def _index(self, a: NDArray[np.int64]) -> Any:
        import torch

        return torch.from_numpy(np.asarray(a, dtype=np.int64)).to(self.device)


def fast_block(scores: Scores, W: NDArray[np.float64], mean: NDArray[np.float64],
                norms: NDArray[np.float64], sp: Space, idx: NDArray[np.int64], steps: int
                ) -> tuple[NDArray[np.float64], list[list[tuple[int, float]]],
                           NDArray[np.float64], NDArray[np.int64]]:
    """Starts + reflections for a block of labels. Returns (margin lower bounds, reflection
    recipes, scale factors to the unit box, the strongest competitor of each). ``mean``: the
    rows' mean (the head's cached one; :func:`rebuild` starts from the same)."""
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



def fast_unit(shared: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64],
                              Space, int, Sketch | None], idx: NDArray[np.int64]
               ) -> tuple[NDArray[np.float64], list[list[tuple[int, float]]],
                          NDArray[np.float64], NDArray[np.int64]]:
    """One block of the fast pass as a unit of work for an engine (numpy, on the worker)."""
    W, mean, norms, sp, steps, sketch = shared
    scores = Scores(W, sp.b.astype(np.float32), norms.astype(np.float32), sketch=sketch)
    return fast_block(scores, W, mean, norms, sp, idx, steps)



def rebuild(W: NDArray[np.float64], mean: NDArray[np.float64], i: int,
             recipe: tuple[NDArray[np.int64], NDArray[np.float64], float]
             ) -> NDArray[np.float64]:
    """The fast pass's witness for label i, with the same float64 operations as
    :func:`fast_block` (so its proven margin holds for exactly this h)."""
    js, betas, sc = recipe
    h = W[i] - mean
    for j, beta in zip(js.tolist(), betas.tolist()):
        h = h + beta * (W[i] - W[j])
    return h * sc


__all__ = ["Scores", "fast_block", "fast_unit", "rebuild"]
