"""The logits z = W h + s b of every label at a few points (the columns of H), exact in
float64 where it matters and found in float32: for each point, its own label's logit and
those of the ``keep`` strongest other labels, and -inf for every label that a proven bound
shows cannot be among them.

The narrowest-margin LPs (:mod:`unembed.feasibility.narrowest`) read, at each LP point, only
the label's own logit, the largest other logit (the margin) and the strongest violators (the
rows added next). One float64 product W H over the (V, d) rows is a pass over 8 V d bytes;
the float32 product over a float32 copy of the rows reads half that, and the float64 logits
are then formed for the few rows whose float32 logit can reach the strongest ones.

The bound (as the fast pass's, :mod:`unembed.feasibility.fast_pass`): with eps = 2^-24 and
gamma_d = d eps / (1 - d eps), the float32 product of fl32(u_k) and fl32(h) is within

    e_k = (gamma_d + 2 eps) |u_k| |h| + (2 d + 8) 2^-149

of u_k . h (the two roundings to float32, the product in any order of summation, gradual
underflow). The bias is added in float64 (at most 2^-52 of the sum more). So the float32
logit of label k lies in [lo_k, hi_k] = z32_k -/+ e_k around its float64 one's exact value,
and a label whose hi_k stays below the keep-th largest lo over the other labels cannot be
among the keep strongest: its logit is reported as -inf. The float64 logits of the rest are
the rows' float64 product with H, as the whole product gives them (to a rounding of the
float64 sum, well inside every tolerance these logits are compared with).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from unembed._blocks import row_blocks
from unembed._memory import available_bytes, populated_empty32
from unembed.feasibility._core import Space

__all__ = ["Rows32", "logits", "top_logits"]

_EPS32 = 2.0**-24


@dataclass(frozen=True)
class Rows32:
    """The rows W (V, d) rounded to float32 and their float64 norms |u_k| (V,)."""

    W32: NDArray[np.float32]
    norms: NDArray[np.float64]

    @classmethod
    def of(cls, W: NDArray[np.float64], norms: NDArray[np.float64] | None = None
           ) -> Rows32 | None:
        """One pass over W in row blocks (``norms``: the rows' norms when known); None when
        the float32 copy would leave less than its own size of memory free."""
        V, d = W.shape
        free = available_bytes()
        if free is not None and free < 8 * V * d:
            return None
        W32 = populated_empty32((V, d))
        out = np.empty(V) if norms is None else norms
        for s, e in row_blocks(V, d):
            B = W[s:e]
            with np.errstate(over="ignore"):  # beyond float32's range: inf (then float64)
                W32[s:e] = B
            if norms is None:
                out[s:e] = np.sqrt(np.einsum("ij,ij->i", B, B))
        return cls(W32, out)


def logits(sp: Space, H: NDArray[np.float64], s: NDArray[np.float64]) -> NDArray[np.float64]:
    """z = W h + s b for every column of H (d, n): (V, n), in float64, one pass over the
    rows."""
    Z = np.asarray(sp.W @ H, dtype=np.float64)
    if np.any(sp.b != 0):
        Z += sp.b[:, None] * s[None, :]
    return Z


def top_logits(sp: Space, rows: Rows32, H: NDArray[np.float64], s: NDArray[np.float64],
               own: NDArray[np.int64], keep: int) -> NDArray[np.float64]:
    """:func:`logits`, exact (float64) on column c's own label ``own[c]`` and on every label
    that can be among the ``keep`` largest logits of the others at that column, -inf on the
    labels the float32 bound rules out (module docstring). Falls back to :func:`logits`
    when a float32 value is not finite."""
    V, d = sp.W.shape
    n = H.shape[1]
    cols = np.arange(n)
    g = (d * _EPS32 / (1 - d * _EPS32) + 2 * _EPS32) * (1 + 1e-6)
    with np.errstate(over="ignore", invalid="ignore"):
        Z32 = np.asarray(rows.W32 @ H.astype(np.float32), dtype=np.float64)  # (V, n)
    if not np.isfinite(Z32).all():
        return logits(sp, H, s)
    hn = np.sqrt(np.einsum("ij,ij->j", H, H)) * (1 + 1e-12)
    e = g * rows.norms[:, None] * hn[None, :] + (2 * d + 8) * 2.0**-149
    if np.any(sp.b != 0):
        bs = sp.b[:, None] * s[None, :]
        Z32 += bs
        e += 2.0**-52 * (np.abs(Z32) + np.abs(bs))
    lo = Z32 - e
    lo[own, cols] = -np.inf
    hi = Z32 + e
    if not (np.isfinite(hi).all() and not np.isnan(lo).any()):
        return logits(sp, H, s)
    k = min(keep, V - 1)
    T = -np.partition(-lo, k - 1, axis=0)[k - 1]  # the keep-th largest lo of each column
    near = (hi >= T[None, :]).any(axis=1)
    near[own] = True
    U = np.flatnonzero(near)
    Z = np.full((V, n), -np.inf)
    Z[U] = sp.W[U] @ H
    if np.any(sp.b != 0):
        Z[U] += sp.b[U, None] * s[None, :]
    return Z
