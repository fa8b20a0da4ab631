"""Whole-head statistics of a head's rows, computed in row blocks and kept with the head:
the first pass that validates the rows (:func:`first_pass`) and :class:`RowStats`.

Every pass walks the rows through a :class:`unembed.rows.RowAccess`, so a head whose rows
stay in their file (``Head(W=Deferred(stored))``) gets the same figures, to the last bit, as
the same rows in memory: the same blocks, summed in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from unembed._blocks import block_gram, centered_covariance, row_blocks
from unembed._checks import MatrixScan
from unembed.rows import RowAccess

__all__ = ["EPS32", "NARROW_PASS_BYTES", "PASS_BYTES", "FirstPass", "RowStats", "Whitening",
           "first_pass", "identical_rows", "norm_above", "reads_narrow"]

#: Bytes of float64 per block of the first pass (2 MiB): small enough that the block's
#: several reads (norms, sums, projections) stay in the cache.
PASS_BYTES = 1 << 21

#: Bytes of float64 per block (8 MiB: 256 rows of 4096, read as 4 MiB of float32) of the
#: passes that work on float32 rows without widening them (the few-neighbour selection, the
#: differences view's bounds): their per-block numpy steps cost more than the cache saves
#: (on a 128256 x 4096 head: 0.73-0.79 s in 8 MiB blocks, 0.87-0.92 s in 2 MiB, 0.85-1.08 s
#: in 16 MiB).
NARROW_PASS_BYTES = 1 << 23

#: float32's unit roundoff
EPS32 = 2.0**-24


def reads_narrow(stored: np.dtype, d: int, projected: bool) -> bool:
    """Can a pass that only selects read these rows in float32, unwidened, under a proven
    bound? Rows kept in float32 or float16, not projected off a null space, and d small
    enough that gamma32_{d+2} stays below 0.005 (the bounds' derivations assume it)."""
    return stored in (np.float32, np.float16) and not projected and (d + 2) * EPS32 < 0.005


def norm_above(x: NDArray[np.float64]) -> float:
    """An upper bound on |x|: its float64 norm, rounded up by that norm's own error bound."""
    return float(np.linalg.norm(x)) * (1 + (x.size + 2) * 2.0**-52)

#: The fixed direction rows are projected on to find identical rows (seeded: the same
#: projections on every run).
_KEY_SEED = 0x1D


@dataclass(frozen=True)
class FirstPass:
    """What one pass over the rows u_1..u_V finds, block by block (:func:`first_pass`):
    ``sums`` sum_k u_k (d,); ``keys`` u_k . r for a fixed random r (V,), equal for identical
    rows; ``zero_rows`` the all-zero rows."""

    sums: NDArray[np.float64]
    keys: NDArray[np.float64]
    zero_rows: tuple[int, ...]


def first_pass(rows: RowAccess, scan: MatrixScan) -> FirstPass:
    """One pass over the rows in blocks of :data:`PASS_BYTES`: the sums and projections of
    :class:`FirstPass`, and the validation of ``scan`` (NaN/Inf entries, all-zero rows), which
    :meth:`MatrixScan.finish` then raises. A block is scanned entry by entry only when its
    projections say it must be: a NaN or Inf entry makes its row's projection u_k . r NaN or
    Inf (no entry of r is 0), and an all-zero row projects to exactly 0 (a row that projects
    to 0 is then checked entry by entry: a nonzero row may, rarely, be orthogonal to r)."""
    V, d = rows.shape
    r = np.random.default_rng(_KEY_SEED).standard_normal(d)
    sums = np.zeros(d)
    keys = np.empty(V)
    for s, e in row_blocks(V, d, PASS_BYTES):
        B = rows[s:e]
        k = keys[s:e]
        np.matmul(B, r, out=k)
        if not np.isfinite(k).all() or not k.all():
            scan.add(s, B)
        sums += B.sum(axis=0)
    zero = scan.finish()
    for a in (sums, keys):
        a.setflags(write=False)
    return FirstPass(sums, keys, tuple(zero))


def identical_rows(rows: RowAccess, keys: NDArray[np.float64]) -> tuple[int, int] | None:
    """A pair (i, j), i < j, of identical rows, or None. Identical rows have equal ``keys``
    (projections on one vector), so only rows whose keys tie are compared, exactly: O(V log V)
    beyond the pass that made the keys."""
    order = np.argsort(keys, kind="stable")
    ks = keys[order]
    tie = np.flatnonzero(ks[1:] == ks[:-1])
    if not tie.size:
        return None
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    for t in np.unique(np.searchsorted(starts, tie, side="right") - 1):
        srun = np.sort(order[starts[t]:(starts[t + 1] if t + 1 < starts.size else order.size)])
        R = rows.take(srun)
        for a in range(srun.size - 1):
            same = np.flatnonzero(np.all(R[a + 1:] == R[a], axis=1))
            if same.size:
                return int(srun[a]), int(srun[a + 1 + same[0]])
    return None


class RowStats:
    """Whole-head statistics of the rows u_1..u_V of a head, computed once, in row blocks, and
    kept with the head (a Head never changes, so neither do they).

    * ``mean()`` m = (1/V) sum_k u_k, shape (d,); ``norms()`` |u_k|, shape (V,) (rows as
      stored)
    * ``identify(X)``: X projected off the head's known null space N (d, k) (directions
      orthogonal to every reachable hidden state, along which rows move freely):
      X - (X N) N^T. The centered statistics below are of the *identified* centered rows
      c_k = P (u_k - m), P = I - N N^T, so that moving rows within the null space changes none
      of them (with no null space known, P = I):
    * ``centered_norms()`` |c_k|, shape (V,)
    * ``unit_mean()`` (1/V) sum_k c_k / |c_k|, shape (d,) (the ``normalized`` view)
    * ``covariance()`` Cov = (1/V) sum_k c_k c_k^T, shape (d, d)
    * ``centered_gram()`` c_i . c_j, shape (V, V), for heads with few labels

    The mean comes from the head's :func:`first_pass`; every other pass walks the
    rows in blocks (:func:`unembed._blocks.row_blocks`) through the head's
    :class:`~unembed.rows.RowAccess` (from memory or from the file): memory beyond the rows is
    O(block + d^2 + V).
    """

    def __init__(self, rows: RowAccess, scanned: FirstPass,
                 null_space: NDArray[np.float64] | None = None) -> None:
        self._W = rows
        self._N = null_space
        self._mean = _ro(scanned.sums / rows.shape[0])
        self._norms: NDArray[np.float64] | None = None
        self._cnorms: NDArray[np.float64] | None = None
        self._unit_mean: NDArray[np.float64] | None = None
        self._unit_sum: NDArray[np.float64] | None = None
        self._cov: NDArray[np.float64] | None = None
        self._cgram: NDArray[np.float64] | None = None
        self._whitening: Whitening | None = None

    def mean(self) -> NDArray[np.float64]:
        return self._mean

    def identify(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        """Rows X (..., d) projected off the known null space (X itself when none is known)."""
        if self._N is None:
            return X
        return np.asarray(X - (X @ self._N) @ self._N.T)

    def norms(self) -> NDArray[np.float64]:
        if self._norms is None:
            W = self._W
            norms = np.empty(W.shape[0])
            for s, e in row_blocks(*W.shape, PASS_BYTES):
                B = W[s:e]
                norms[s:e] = np.sqrt(np.einsum("ij,ij->i", B, B))
            self._norms = _ro(norms)
        return self._norms

    def _centered_pass(self) -> None:
        """One pass over the centered rows c_k: their norms, and sum_k c_k / |c_k| over the
        rows whose c_k is not zero (the unit mean's sum, when no row is zero)."""
        W, m = self._W, self.mean()
        cnorms = np.empty(W.shape[0])
        unit_sum = np.zeros(W.shape[1])
        for s, e in row_blocks(*W.shape, PASS_BYTES):
            C = self.identify(np.subtract(W.stored(s, e), m))  # widened exactly
            n = np.sqrt(np.einsum("ij,ij->i", C, C))
            cnorms[s:e] = n
            inv = np.divide(1.0, n, out=np.zeros_like(n), where=n > 1e-300)
            unit_sum += inv @ C
        self._cnorms, self._unit_sum = _ro(cnorms), unit_sum

    def centered_norms(self) -> NDArray[np.float64]:
        if self._cnorms is None:
            self._centered_pass()
        assert self._cnorms is not None
        return self._cnorms

    def unit_mean(self) -> NDArray[np.float64]:
        """(1/V) sum_k c_k / |c_k| (from the same pass as the centered norms); raises naming
        the first label whose centered row is zero (its direction is undefined)."""
        if self._unit_mean is None:
            n = self.centered_norms()
            zero = np.flatnonzero(n <= 1e-300)
            if zero.size:
                raise _ZeroRow(int(zero[0]))
            assert self._unit_sum is not None
            self._unit_mean = _ro(self._unit_sum / n.size)
        return self._unit_mean

    def covariance(self) -> NDArray[np.float64]:
        """Cov = (1/V) sum_k c_k c_k^T in float64, by blocked DSYRK
        (:func:`unembed._blocks.centered_covariance`: V d^2 / 2 multiply-adds in all)."""
        if self._cov is None:
            cov = centered_covariance(self._W, self.mean(), transform=self.identify)
            self._cov = _ro(np.ascontiguousarray(cov))
        return self._cov

    def cached_covariance(self) -> NDArray[np.float64] | None:
        """:meth:`covariance` if it was computed already, else None (computes nothing)."""
        return self._cov

    def centered_gram(self) -> NDArray[np.float64]:
        """(V, V) Gram matrix of the centered rows, in column blocks (no (V, d) temporary)."""
        if self._cgram is None:
            W, m = self._W, self.mean()
            G = block_gram(W, m)  # pairs of row blocks
            if self._N is not None:
                CN = np.empty((W.shape[0], self._N.shape[1]))
                for s, e in row_blocks(*W.shape):
                    CN[s:e] = (W[s:e] - m) @ self._N
                G -= CN @ CN.T  # (P c_i) . (P c_j) = c_i . c_j - (N^T c_i) . (N^T c_j)
            self._cgram = _ro((G + G.T) / 2)
        return self._cgram

    def whitening(self, rtol: float) -> Whitening:
        """Cov^{-1/2} on the eigenvectors with eigenvalue > rtol * the largest (see
        :class:`Whitening`)."""
        if self._whitening is not None and self._whitening.rtol == rtol:
            return self._whitening
        V, d = self._W.shape
        if V <= d:
            # C = U S Vt, Cov = Vt^T S^2 Vt / V, so C Cov^{-1/2} = sqrt(V) U Vt on the range:
            # in the basis Vt, the rows sqrt(V) U. C C^T = U S^2 U^T has eigenvalues V Cov's.
            ev, U = np.linalg.eigh(self.centered_gram())
            ev = ev / V
            keep = ev > rtol * (ev.max() if ev.size else 0.0)
            out = Whitening(None, _ro(np.sqrt(V) * U[:, keep]), int(keep.sum()), rtol)
        else:
            ev, vecs = np.linalg.eigh(self.covariance())
            keep = ev > rtol * (ev.max() if ev.size else 0.0)
            out = Whitening(_ro(vecs[:, keep] / np.sqrt(ev[keep])), None, int(keep.sum()), rtol)
        self._whitening = out
        return out


@dataclass(frozen=True)
class Whitening:
    """The whitening of the ``causal`` view (:mod:`unembed.views`): Cov^{-1/2} on its range.
    For V > d a map ``P`` (d, r) with causal rows (u_i - m) P; for V <= d the causal rows
    themselves (``rows``, (V, r)), from the centered Gram. ``rank`` r: the eigenvalues kept
    (those above ``rtol`` times the largest)."""

    P: NDArray[np.float64] | None
    rows: NDArray[np.float64] | None
    rank: int
    rtol: float


class _ZeroRow(Exception):
    """Internal: the centered row of label ``index`` is zero."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


def _ro(a: NDArray[np.float64]) -> NDArray[np.float64]:
    a.setflags(write=False)
    return a


