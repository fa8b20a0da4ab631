"""Proven upper bounds on every logit from a rank-k sketch: the fast pass without V^2 d work.

The fast pass of :mod:`unembed.feasibility.vocabulary` asks, for each label i and its
candidate hidden state h, whether u_i . h beats every other u_j . h. Done directly that is one
(V, d) x (d, V) product: V^2 d multiply-adds (6.7e13 for a 128256 x 4096 head). Most rivals are
nowhere near: it is enough to *bound* their logits and to compute exactly only the few whose
bound reaches the label's own.

The bound. Fix any vector m (the rows' mean), any (d, k) matrix P (here: an orthonormal basis
of the rows' top principal directions) and, per row, any coefficients s_j in R^k. Write
a_j = u_j - m and r_j = a_j - P s_j (real numbers, no rounding: a definition). For any h and
any g in R^k, with rho = h - P g,

    u_j . h = m . h + s_j . (P^T h) + r_j . h
            = m . h + s_j . g + s_j . (P^T h - g) + r_j . rho + (P^T r_j) . g,

so, by Cauchy-Schwarz,

    u_j . h <= m . h + s_j . g + |s_j| |P^T h - g| + |r_j| |rho| + |P^T r_j| |g|.    (*)

This holds for every choice of P, s_j and g; the choices only decide how tight it is. With
g = P^T h (rounded) and P orthonormal, |P^T h - g| and |P^T r_j| are rounding-sized, and the
bound is s_j . g + |r_j| |rho|: the part of the logit inside the sketch exactly, the rest by its
largest possible value. It is tight for rivals that share little with h outside the top k
directions' span, which is what a witness h = u_i - m of a well-separated label looks like.

Cost: the sketch coefficients S (V, k) once (V d k), then per block of n witnesses one float32
product S G^T (n V k instead of n V d) plus a rank-1 term; the rows whose bound reaches a
label's cut go through the exact float32 product of the fast pass (their own proven bound).

Rounding. Every term of (*) is evaluated with a proven bound on its rounding (eps64 = 2^-53,
eps32 = 2^-24, gamma_n = n eps / (1 - n eps), |P|_F^2 <= k (1 + eps_P) with
eps_P >= ||P^T P - I||_2 computed from the factor itself):

* m . h in float64: + gamma64_d |m| |h|;
* s_j . g + |r_j|^+ |rho|^+ as one float32 product of [g, |rho|^+] with [s_j, |r_j|^+]:
  + gamma32_{k+1} (|s_j| |g| + |r_j|^+ |rho|^+) (any order of summation);
* |P^T h - g|, g = fl32(fl64(P^T h)): <= sqrt(k) gamma64_d (1 + eps_P) |h| + eps32 |g|;
* |r_j|, from |r_j|^2 = |a_j|^2 - 2 s_j . (P^T a_j) + s_j^T P^T P s_j with float64 terms and an
  absolute error bound (see :meth:`Sketch.build`): never the subtraction of rounded norms
  trusted as such;
* |rho|: rho computed in float64 as h - P g, with the error of that product added;
* |P^T r_j| <= eps64 |a_j| + sqrt(k) gamma64_d (1 + eps_P) |a_j| + eps32 |c_j| + eps_P |s_j|
  (c_j = fl64(P^T a_j), s_j = fl32(c_j));
* later float32 additions (the bias): 2^-22 of their magnitude (in the fast pass);
* underflow: each float32 product or rounding may lose up to 2^-150 besides its relative
  error (gradual underflow), so (k + 4) 2^-149 more in all; an overflow gives an infinite
  bound, which is still a bound (the fast pass then computes those rows directly).

The per-pair rounding terms are bounded with the largest |s_j|, |r_j| and |P^T r_j| over the
rows, so each witness carries one additive constant. A pruned rival's logit is therefore at
most its float32 bound plus that constant, a proven upper bound on the float64 number
u_j . h + b_j of the witness h the fast pass reports; the exact rivals keep the fast pass's own
bound. Nothing is taken on trust from the basis: a poor P only makes the bound loose (more rows
computed exactly), never wrong.

Doctest: the bound holds, and is tight enough to leave most rows out, on a head whose rows
share a 16-dimensional structure:

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> W = rng.standard_normal((400, 16)) @ rng.standard_normal((16, 64)) \\
...     + 0.05 * rng.standard_normal((400, 64))
>>> m = W.mean(axis=0)
>>> sk = Sketch.build(W, m, principal_basis(np.cov(W.T, bias=True), 16))
>>> H = W[:8] - m
>>> Y, add, _ = sk.bounds(H)
>>> bool(np.all(W @ H.T <= Y.T + add))
True
>>> float(np.mean(Y + add[:, None] >= np.einsum("ij,ij->i", H, W[:8])[:, None])) < 0.1
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from unembed._blocks import centered_covariance, row_blocks

_EPS64 = 2.0**-53
_EPS32 = 2.0**-24
#: the most a float32 product, or a rounding to float32, can lose to underflow (half the
#: smallest subnormal): every float32 step carries eps32 relative error plus this much
_TINY32 = 2.0**-150
#: the bytes of bounds :meth:`Sketch.reach` computes and tests at a time (kept in the cache)
_CHUNK_BYTES = 1 << 21


def _gamma(n: int, eps: float) -> float:
    return n * eps / (1 - n * eps)


def rank_ladder(V: int, d: int, block: int) -> tuple[int, ...]:
    """The ranks k tried (see :func:`choose_rank`): () (no sketch) when the direct product is
    already cheap (d < 128, or fewer than 8 blocks of labels), else d/16, d/8, ... up to
    min(d/2, 1024), multiples of 32.

    >>> rank_ladder(128256, 4096, 256)
    (256, 512, 1024)
    >>> rank_ladder(30522, 384, 256)
    (32, 64, 128, 192)
    >>> rank_ladder(1000, 4096, 256)
    ()
    """
    if d < 128 or V < 8 * block:
        return ()
    top = max(32, min(1024, d // 2) // 32 * 32)
    k = max(32, d // 16 // 32 * 32)
    out = []
    while k < top:
        out.append(k)
        k *= 2
    out.append(top)
    return tuple(out)


def covariance32(W: NDArray[np.float64], mean: NDArray[np.float64]) -> NDArray[np.float64]:
    """The rows' covariance accumulated in float32 (SSYRK, half the time of the float64 one:
    :func:`unembed._blocks.centered_covariance`): only to *choose* the sketch's directions,
    which the bound (*) does not rely on."""
    return centered_covariance(W, mean, np.float32)


def principal_basis(cov: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """The top k eigenvectors of the rows' covariance (d, k), largest first: the directions
    the rows vary along most, so that a rival's residual outside them is as small as it can be
    for k directions. Only a choice: the bound (*) holds for any P.

    On a wide covariance (d >= 1024, k <= d / 8) they are computed by block Krylov iteration
    (:func:`krylov_basis`: a few products C Q instead of the reduction of the whole d x d
    matrix to tridiagonal form, 10 s for d = 4096 on two cores); else by LAPACK's eigensolver
    for the top k only."""
    d = cov.shape[0]
    k = int(min(k, d))
    if d >= 1024 and 8 * k <= d:
        return krylov_basis(cov, k)
    from scipy.linalg import eigh

    _, vec = eigh(cov, subset_by_index=[d - k, d - 1], driver="evr")
    return np.ascontiguousarray(vec[:, ::-1])


def krylov_basis(cov: NDArray[np.float64], k: int, blocks: int = 4,
                   seed: int = 0) -> NDArray[np.float64]:
    """Approximately the top k eigenvectors of the symmetric positive semidefinite ``cov``
    (d, d), largest first, with orthonormal columns to float64 rounding: randomized block
    Krylov iteration (Musco and Musco 2015) with blocks of l = k + max(16, k / 8) columns,
    Q_1 = orth(C Omega) from a seeded Gaussian Omega, Q_(j+1) = orth(C Q_j) (each block
    orthonormalised, in float32: directions only, precision is not what they need), then
    Rayleigh-Ritz on the span of all ``blocks`` blocks: P = K U, K an orthonormal basis of
    [Q_1 ... Q_b] (float64), U the top k eigenvectors of K^T C K (its products in float32,
    U orthogonal in float64, so P is orthonormal to float64 rounding). Its error, unlike that of
    the last block alone (subspace iteration), does not depend on a gap after the k-th
    eigenvalue: the slowly decaying spectra of LM heads are where that matters. Only a
    choice: the bound (*) holds for any P."""
    d = cov.shape[0]
    k = int(min(k, d))
    ell = min(d, k + max(16, k // 8))
    C32 = np.asarray(cov, dtype=np.float32)
    Q = np.random.default_rng(seed).standard_normal((d, ell)).astype(np.float32)
    got = []
    for _ in range(max(1, min(blocks, d // ell))):
        Q, _ = np.linalg.qr(C32 @ Q)
        got.append(Q)
    K, _ = np.linalg.qr(np.hstack(got).astype(np.float64))
    K32 = K.astype(np.float32)
    B = (K32.T @ (C32 @ K32)).astype(np.float64)
    _, U = np.linalg.eigh((B + B.T) / 2)
    return np.ascontiguousarray(K @ U[:, ::-1][:, :k])


@dataclass(frozen=True, eq=False)
class Sketch:
    """The rank-k sketch of a head's rows (or of some of them) and the constants of (*).

    Attributes
    ----------
    P : (d, k) float64, orthonormal columns up to rounding
    A : (n_rows, k + 1) float32: per row [s_j, |r_j|^+], the coefficients
        s_j = fl32(P^T (u_j - m)) and an upper bound on |r_j| rounded up to float32, so that
        one float32 product [g_i, |rho_i|^+] A^T gives s_j . g_i + |r_j|^+ |rho_i|^+
    rows : (n_rows,) int64 or None, the rows sketched (None: all V, in order)
    mean : (d,) float64, the m of (*)
    eps_P, s_max, r_max, beta_max : floats, see the module docstring
    """

    P: NDArray[np.float64]
    A: NDArray[np.float32]
    rows: NDArray[np.int64] | None
    mean: NDArray[np.float64]
    eps_P: float
    s_max: float
    r_max: float
    beta_max: float

    @property
    def k(self) -> int:
        return int(self.P.shape[1])

    @classmethod
    def build(cls, W: NDArray[np.float64], mean: NDArray[np.float64], P: NDArray[np.float64],
              rows: NDArray[np.int64] | None = None) -> Sketch:
        """One float64 pass over the rows (or over ``rows`` only): the coefficients and the
        bounds.

        |r_j|^2 = |a_j|^2 - 2 s_j . (P^T a_j) + s_j^T (P^T P) s_j exactly; computed as
        n_a - 2 s.c + |s|^2 with n_a = fl64(|fl64(a_j)|^2), c = fl64(P^T fl64(a_j)), plus the
        absolute bound 2 |s| e_c + eps_P |s|^2 + (gamma64_{d+2} + 4 eps64) (|a|^2 + 2 |s| |c| +
        |s|^2) + 2 gamma64_k |s| |c| on what the rounding can have taken away, where
        e_c = (sqrt(k) gamma64_d (1 + eps_P) + 2 eps64) |a| bounds |P^T a_j - c_j|.
        """
        d = W.shape[1]
        P = np.ascontiguousarray(P, dtype=np.float64)
        k = P.shape[1]
        E = P.T @ P
        E[np.diag_indices_from(E)] -= 1.0
        eps_P = float(np.linalg.norm(E)) * (1 + 1e-6) + 2 * k * _gamma(d, _EPS64)
        n_rows = W.shape[0] if rows is None else rows.size
        A = np.empty((n_rows, k + 1), dtype=np.float32)
        g_d, g_k = _gamma(d, _EPS64), _gamma(k, _EPS64)
        s_max = beta_max = 0.0
        for s, e in row_blocks(n_rows, d, 1 << 22):
            Aj = (W[s:e] if rows is None else W[rows[s:e]]) - mean  # fl64(a_j)
            c = Aj @ P  # fl64(P^T a_j), (rows, k)
            s32 = c.astype(np.float32)
            A[s:e, :k] = s32
            s64 = s32.astype(np.float64)
            na = np.einsum("ij,ij->i", Aj, Aj)
            a_n = np.sqrt(na) * (1 + 4 * _EPS64) / (1 - _EPS64)  # >= |a_j| (real)
            c_n = np.linalg.norm(c, axis=1) * (1 + 4 * _EPS64)
            s_n = np.linalg.norm(s64, axis=1) * (1 + 4 * _EPS64)
            e_c = (math.sqrt(k) * g_d * (1 + eps_P) + 2 * _EPS64) * a_n
            err = (2 * s_n * e_c + eps_P * s_n**2
                   + (_gamma(d + 2, _EPS64) + 4 * _EPS64) * (a_n**2 + 2 * s_n * c_n + s_n**2)
                   + 2 * g_k * s_n * c_n) * (1 + 1e-6)
            r2 = (na - 2 * np.einsum("ij,ij->i", s64, c) + np.einsum("ij,ij->i", s64, s64)
                  + err)
            A[s:e, k] = up32(np.sqrt(np.maximum(r2, 0.0)) * (1 + 4 * _EPS64))
            beta = ((_EPS64 * a_n + math.sqrt(k) * g_d * (1 + eps_P) * a_n
                     + _EPS32 * c_n + math.sqrt(k) * _TINY32 + eps_P * s_n) * (1 + 1e-6))
            s_max = max(s_max, float(s_n.max(initial=0.0)))
            beta_max = max(beta_max, float(beta.max(initial=0.0)))
        r_max = float(A[:, k].max(initial=0.0))
        return cls(P, A, rows, np.asarray(mean, dtype=np.float64), eps_P, s_max, r_max,
                   beta_max)

    def project(self, H: NDArray[np.float64]) -> Projection:
        """The float64 part of (*) for witnesses H (n, d): G = [g_i, |rho_i|^+] and the
        per-witness constants (see :class:`Projection`); the float32 product G A^T is left to
        :meth:`bounds` (the whole matrix) and :meth:`reach` (walked in chunks)."""
        n, d = H.shape
        k = self.k
        P = self.P
        g_d, g_k = _gamma(d, _EPS64), _gamma(k, _EPS64)
        g64 = H @ P  # fl64(P^T h), (n, k)
        h_n = np.linalg.norm(H, axis=1) * (1 + 4 * _EPS64)
        # witnesses whose products would leave float32's range get the bound +inf (true, and
        # no use): their float32 steps are skipped
        g_est = np.linalg.norm(g64, axis=1)
        with np.errstate(over="ignore", invalid="ignore"):
            est = self.s_max * g_est + self.r_max * (h_n + 2 * g_est)
        out = ~(est < 2.0**110)
        g64[out] = 0.0
        G = np.empty((n, k + 1), dtype=np.float32)
        G[:, :k] = g64  # g = fl32(fl64(P^T h))
        gg = G[:, :k].astype(np.float64)
        g_n = np.linalg.norm(gg, axis=1) * (1 + 4 * _EPS64)
        rho = H - gg @ P.T
        rho_n = (np.linalg.norm(rho, axis=1) * (1 + _gamma(d + 2, _EPS64))
                 + 2 * g_k * math.sqrt(k * (1 + self.eps_P)) * g_n) * (1 + 1e-6)
        rho_n[out] = 0.0
        G[:, k] = up32(rho_n)
        eta = (math.sqrt(k) * g_d * (1 + self.eps_P) * h_n + _EPS32 * g_n
               + math.sqrt(k) * _TINY32) * (1 + 1e-6)
        mag = (self.s_max * g_n + G[:, k].astype(np.float64) * self.r_max) * (1 + 2**-20)
        m_n = float(np.linalg.norm(self.mean)) * (1 + 4 * _EPS64)
        mh = H @ self.mean
        # the terms after mh are all >= 0: inflating them (and mh's own rounding) only raises
        # the bound
        add = mh + (np.abs(mh) * 4 * _EPS64 + g_d * m_n * h_n
                    + _gamma(k + 1, _EPS32) * mag
                    + self.s_max * eta + self.beta_max * g_n
                    + (k + 4) * 2 * _TINY32) * (1 + 1e-9)
        mag[out] = np.inf
        add[out] = np.inf
        return Projection(G, add, mag, out)

    def _product(self, proj: Projection, s: int, e: int, Y: NDArray[np.float32]) -> None:
        """Y (n, e - s) := the bounds' columns s..e: fl32(G A[s:e]^T), inf - inf (NaN) as
        +inf, the rows ``out`` +inf."""
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            # fl32(s_j . g_i + |r_j|^+ |rho_i|^+), one product
            np.matmul(proj.G, self.A[s:e].T, out=Y)
        if not (np.isfinite(self.r_max) and self.s_max < 2.0**100):
            Y[np.isnan(Y)] = np.inf  # inf - inf in float32: no bound, so +inf
        if proj.out.any():
            Y[proj.out] = np.inf

    def bounds(self, H: NDArray[np.float64], into: NDArray[np.float32] | None = None
               ) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.float64]]:
        """For witnesses H (n, d) in float64: (Y (n, n_rows) float32, add (n,), mag (n,)) with

            u_j . h_i <= Y[i, j] + add[i]    for every row j sketched (proven, see (*)),

        and mag[i] >= max_j |Y[i, j]| (to bound the rounding of further float32 additions).
        ``into``: a C-contiguous (n, n_rows) float32 array to write Y into (a caller's buffer
        kept from block to block: a fresh one of that size is mapped and faulted in anew each
        time)."""
        proj = self.project(H)
        R = self.A.shape[0]
        Y = np.empty((H.shape[0], R), dtype=np.float32) if into is None else into
        self._product(proj, 0, R, Y)
        return Y, proj.add, proj.mag

    def reach(self, proj: Projection, thr: NDArray[np.float32], kept: NDArray[np.int64],
              into: NDArray[np.float32], bias: NDArray[np.float32] | None = None,
              unit: tuple[NDArray[np.float32], NDArray[np.float32]] | None = None,
              chunk: int = _CHUNK_BYTES) -> tuple[NDArray[np.bool_], NDArray[np.float32]]:
        """The sketched rows whose bound reaches a witness's threshold, and the largest bound
        of the others, from the bounds Y = fl32(G A^T) of :meth:`bounds` (NaN and the rows
        ``out`` as there) walked once, in chunks of about ``chunk`` bytes of Y (all n
        witnesses, some rows j: columns of Y), each chunk tested while it is in the cache.
        With Y' = fl32(Y + bias) (``bias`` (n_rows,) given) or Y:

            keep_j = j in ``kept``, or Y'_ij >= thr_i for some i, or (``unit`` = (b1, thr1))
                     fl32(Y'_ij + b1_j) >= thr1_i for some i;
            top_i  = max of Y'_ij over the rows j not kept (-inf when every row is kept).

        A row j can only be kept by a witness i whose largest bound in the chunk reaches
        thr_i: the chunk's per-witness maxima are taken first and the rows tested on those
        witnesses alone (most witnesses reach none); the maxima are taken again, without the
        kept rows, only in a chunk that has some.

        Returns (keep (n_rows,) bool, top (n,) float32). ``into``: a C-contiguous
        (n, n_rows) float32 array that receives Y' with the kept rows' columns -inf (for a
        later pass over it; a caller's buffer kept from block to block), Y computed there by
        one product, the entries of :meth:`bounds` bit for bit. Products chunk by chunk (each
        chunk in the cache when tested) were measured on a 128256-row sketch of rank 256 and
        256 witnesses (two cores, two BLAS threads): at most 5% faster with one core busy
        elsewhere, 1.5 to 2 times as slow with both busy (the BLAS's threads meet once per
        chunk), so the product is whole and only the walk is in chunks.
        """
        n = proj.G.shape[0]
        R = self.A.shape[0]
        c = max(1, min(R, chunk // (4 * max(n, 1))))
        self._product(proj, 0, R, into)
        tmp = np.empty((n, c), dtype=np.float32) if unit is not None else None
        keep = np.zeros(R, dtype=bool)
        keep[kept] = True
        top = np.full(n, -np.inf, dtype=np.float32)
        for s in range(0, R, c):
            e = min(R, s + c)
            y = into[:, s:e]
            if bias is not None:
                y += bias[None, s:e]
            k = keep[s:e]
            m = y.max(axis=1)
            hit = np.flatnonzero(m >= thr)
            if hit.size:
                k |= (y[hit] >= thr[hit, None]).any(axis=0)
            if unit is not None:
                assert tmp is not None
                b1, thr1 = unit
                z = np.add(y, b1[None, s:e], out=tmp[:, : e - s])
                hit = np.flatnonzero(z.max(axis=1) >= thr1)
                if hit.size:
                    k |= (z[hit] >= thr1[hit, None]).any(axis=0)
            J = np.flatnonzero(k)
            if J.size:  # the kept rows leave the maximum
                y[:, J] = -np.inf
                m = y.max(axis=1)
            np.maximum(top, m, out=top)
        return keep, top


@dataclass(frozen=True, eq=False)
class Projection:
    """A block of witnesses H (n, d) through a sketch (:meth:`Sketch.project`): what the
    bound (*) needs of them besides the rows' coefficients.

    Attributes
    ----------
    G : (n, k + 1) float32, [g_i, |rho_i|^+] (zero on the rows ``out``), so that
        u_j . h_i <= fl32(G A^T)[i, j] + add[i]
    add : (n,) float64, the additive term of (*) with every rounding bound (inf on ``out``)
    mag : (n,) float64, >= max_j |fl32(G A^T)[i, j]| (inf on ``out``)
    out : (n,) bool, the witnesses whose products would leave float32's range: bound +inf
    """

    G: NDArray[np.float32]
    add: NDArray[np.float64]
    mag: NDArray[np.float64]
    out: NDArray[np.bool_]


def choose_rank(W: NDArray[np.float64], mean: NDArray[np.float64], P: NDArray[np.float64],
                ranks: tuple[int, ...], H: NDArray[np.float64], own: NDArray[np.float64],
                labels: NDArray[np.int64], tol: float = 0.0, sample: int = 8192,
                seed: int = 0, groups: int = 1,
                wider: Callable[[int], NDArray[np.float64]] | None = None
                ) -> tuple[int, dict[int, float]]:
    """The rank at which one block of witnesses H (their own logits ``own``, their labels
    ``labels``) costs least, measured on ``sample`` rows drawn at random (all rows when
    there are fewer): per rank q (the first q columns of P), the share u(q) of rows whose
    bound reaches some witness's cut, own logit - ``tol`` (the fast pass computes those
    exactly), and the cost q + 1.1 u(q) d per witness and row (the sketch's product, then the
    exact one). With ``groups`` > 1 the witnesses are that many runs of labels (H's rows cut
    into equal consecutive parts) and u(q) is the median of the runs' shares: a run of odd
    labels (a vocabulary's special tokens) costs its own block, not every block. Returns
    (q, {q: u(q)}), q = 0 when no rank beats the direct product (cost d).

    The ranks are measured in increasing order and the measuring stops at the first rank
    q' at or above the least cost so far: its cost, q' + 1.1 u(q') d >= q', cannot be less
    (so those ranks are not in the dict, and the choice is the one measuring all would
    make). ``wider(q)``, when given, returns a basis of at least q columns for a rank wider
    than P (computed only when such a rank is measured)."""
    V, d = W.shape
    rows = (np.arange(V) if V <= sample else
            np.sort(np.random.default_rng(seed).choice(V, sample, replace=False)))
    mine = np.searchsorted(rows, labels)
    mine_ok = (mine < rows.size) & (rows[np.minimum(mine, rows.size - 1)] == labels)
    share: dict[int, float] = {}
    best, best_cost = 0, float(d)
    for q in sorted(ranks):
        if q >= best_cost:
            break
        if q > P.shape[1]:
            if wider is None:
                raise ValueError(f"rank {q} is wider than the basis ({P.shape[1]} columns)")
            P = wider(q)
        Y, add, _ = Sketch.build(W, mean, P[:, :q], rows).bounds(H)
        Y[np.flatnonzero(mine_ok), mine[mine_ok]] = -np.inf
        hit = Y >= (own - tol - add)[:, None]
        share[q] = float(np.median([part.any(axis=0).mean()
                                    for part in np.array_split(hit, max(1, groups))]))
        cost = q + share[q] * d * 1.1
        if cost < best_cost:
            best, best_cost = q, cost
    return best, share


def up32(x: NDArray[np.float64]) -> NDArray[np.float32]:
    """x rounded to float32, upwards (every result >= its input; inf past float32's range)."""
    with np.errstate(over="ignore"):
        y = x.astype(np.float32)
    low = y.astype(np.float64) < x
    y[low] = np.nextafter(y[low], np.float32(np.inf))
    return y


def down32(x: NDArray[np.float64]) -> NDArray[np.float32]:
    """x (float64) rounded to float32 downwards, after a step down of 2^-50 |x| for the
    float64 rounding of x itself (every result <= x's exact value)."""
    x = x - np.abs(x) * 2.0**-50
    y = x.astype(np.float32)
    high = y.astype(np.float64) > x
    y[high] = np.nextafter(y[high], np.float32(-np.inf))
    return y


__all__ = [
    "Projection",
    "Sketch",
    "choose_rank",
    "covariance32",
    "down32",
    "krylov_basis",
    "principal_basis",
    "rank_ladder",
    "up32",
]
