"""The figures of an equivalence check, computed in one fused float64 pass per chunk of inputs.

For logits z1, z2 (n, V) of two heads on the same n inputs, with log-probabilities
lp = log p(z1), lq = log q(z2) (softmax: lp_k = z1_k - lse(z1); sigmoid: lp_k = log s(z1_k),
lp0_k = log s(-z1_k) = log(1 - p_k)):

* max |p - q| and max |lp - lq| over every input and label
* the sum over inputs of KL(p || q): softmax sum_k p_k (lp_k - lq_k); sigmoid
  sum_k p_k (lp_k - lq_k) + (1 - p_k)(lp0_k - lq0_k)
* how many inputs agree on the top label (softmax: argmax z1 = argmax z2, the first of tied
  maxima) or on the whole on/off pattern at 1/2 (sigmoid: z > 0)

:class:`Reference` holds what the first head's logits give once per chunk (softmax: the
normaliser lse(z1) = m + log sum_k exp(z1_k - m), m = max_k z1_k, the probabilities p and
the argmax), so that several second heads are compared with it without recomputing them;
:func:`compare_with` forms the figures of one second head in place in its logits' buffer
(softmax: one exp per entry; lp_k - lq_k = (z1_k - z2_k) + (lse(z2) - lse(z1)), the same
quantity as the difference of the two log-softmaxes, formed with one subtraction per entry).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed.head import Head, Link

__all__ = ["Reference", "Sums", "block_logits", "compare_with"]


@dataclass(frozen=True)
class Sums:
    """The figures over a set of inputs, before averaging: ``kl_sum`` is the sum over inputs of
    KL(p || q), ``agree`` the number of inputs that agree (see the module docstring)."""

    n: int
    max_abs_dp: float
    max_abs_dlogp: float
    kl_sum: float
    agree: int

    def __add__(self, other: Sums) -> Sums:
        """The figures over two disjoint sets of inputs."""
        return Sums(self.n + other.n, max(self.max_abs_dp, other.max_abs_dp),
                    max(self.max_abs_dlogp, other.max_abs_dlogp), self.kl_sum + other.kl_sum,
                    self.agree + other.agree)


EMPTY = Sums(0, 0.0, 0.0, 0.0, 0)


def _not_finite(which: str) -> UnembedError:
    return UnembedError("must be finite (it contains NaN or Inf)", argument=which,
                        function="compare_logits")


def _spread(a: NDArray[np.float64]) -> float:
    """max |a| without an |a| temporary (0 for an empty array)."""
    return float(max(a.max(), -a.min())) if a.size else 0.0


class Reference:
    """The first head's logits ``z`` (n, V) on a chunk of inputs, with what every comparison
    needs from them: softmax: the normaliser ``lse`` (n,), the probabilities ``p`` (n, V) and
    the argmax ``top`` (n,); sigmoid: ``lp`` = log s(z), ``lp0`` = log s(-z), ``p`` = s(z).
    ``z`` is kept (not copied); ``p_out`` (n, V), when given, receives p.

    Raises UnembedError (argument z1) when ``z`` holds NaN or Inf.
    """

    def __init__(self, z: NDArray[np.float64], link: Link,
                 p_out: NDArray[np.float64] | None = None) -> None:
        self.z, self.link = z, link
        n = z.shape[0]
        p = np.empty(z.shape) if p_out is None else p_out
        self.p = p
        if z.size == 0:
            self.lse = np.zeros(n)
            self.top = np.zeros(n, dtype=np.intp)
            return
        if link == "softmax":
            self.top = z.argmax(axis=1)
            m = z[np.arange(n), self.top]
            if not (np.isfinite(m).all() and np.isfinite(z.min())):
                raise _not_finite("z1")
            np.subtract(z, m[:, None], out=p)
            np.exp(p, out=p)
            s = p.sum(axis=1)
            self.lse = m + np.log(s)
            p *= (1.0 / s)[:, None]
            return
        if not (np.isfinite(z.max()) and np.isfinite(z.min())):
            raise _not_finite("z1")
        self.lp = -np.logaddexp(0.0, -z)
        self.lp0 = -np.logaddexp(0.0, z)
        np.exp(self.lp, out=p)


def compare_with(ref: Reference, z2: NDArray[np.float64],
                 scratch: NDArray[np.float64] | None = None) -> Sums:
    """The figures of the second head's logits ``z2`` (the shape of ``ref.z``) against the
    reference's. ``z2`` is overwritten (with lq - lp, for softmax); ``scratch`` (the same
    shape) is used as work space when given.

    Raises UnembedError (argument z2) when ``z2`` holds NaN or Inf.
    """
    n = z2.shape[0]
    if z2.size == 0:
        return Sums(n, 0.0, 0.0, 0.0, n)
    e = np.empty(z2.shape) if scratch is None else scratch
    if ref.link == "softmax":
        top = z2.argmax(axis=1)
        m = z2[np.arange(n), top]
        if not (np.isfinite(m).all() and np.isfinite(z2.min())):
            raise _not_finite("z2")
        np.subtract(z2, m[:, None], out=e)
        np.exp(e, out=e)
        s = e.sum(axis=1)
        lse = m + np.log(s)
        e *= (1.0 / s)[:, None]  # q
        e -= ref.p  # q - p
        dp = _spread(e)
        z2 -= ref.z
        z2 -= (lse - ref.lse)[:, None]  # (z2 - lse(z2)) - (z1 - lse(z1)) = lq - lp
        dlogp = _spread(z2)
        kl = -float(np.einsum("ij,ij->", ref.p, z2))
        return Sums(n, dp, dlogp, kl, int(np.count_nonzero(top == ref.top)))
    if not (np.isfinite(z2.max()) and np.isfinite(z2.min())):
        raise _not_finite("z2")
    agree = int(np.count_nonzero(np.all((ref.z > 0) == (z2 > 0), axis=1)))
    lq = -np.logaddexp(0.0, -z2)
    np.exp(lq, out=e)  # q
    e -= ref.p
    dp = _spread(e)
    lq0 = np.logaddexp(0.0, z2, out=z2)
    lq0 *= -1.0  # log(1 - q)
    lq -= ref.lp  # lq - lp
    dlogp = _spread(lq)
    lq0 -= ref.lp0  # lq0 - lp0
    kl = -float(np.einsum("ij,ij->", ref.p, lq) + np.einsum("ij,ij->", 1.0 - ref.p, lq0))
    return Sums(n, dp, dlogp, kl, agree)


#: Bytes of float64 per block of rows in :func:`block_logits` (32 MiB: 1024 rows of 4096).
_BLOCK_BYTES = 1 << 25


def block_logits(head: Head, H: NDArray[np.float64], out: NDArray[np.float64],
                 rows: Callable[[int, int], NDArray[Any]] | None = None,
                 pre_cap: NDArray[np.float64] | None = None,
                 pool: Executor | None = None) -> NDArray[np.float64]:
    """``head``'s logits z = s (H W^T + b) (soft-capped: cap tanh(z / cap)) for hidden states
    H (m, d), written into ``out`` (m, V) and returned, from its rows block by block
    (``head.row_block``, or ``rows(start, stop)`` in any float dtype for a second head with the
    same bias, scale and soft-cap): never the whole (V, d) matrix. Each block's product is
    formed as B H^T (the block's rows as BLAS's long side: two threads split it evenly, where
    H B^T with a few hundred inputs leaves them waiting on each other) and copied into its
    columns of ``out``. ``pre_cap`` (m, V), when given and the head is soft-capped, receives
    s (H W^T + b) before the cap. With a ``pool`` of threads, each block is read and widened
    to float64 in as many pieces at once (file reads and numpy's casts release the GIL)."""
    from unembed._blocks import row_blocks, rows_per_block

    take = head.row_block if rows is None else rows
    step = rows_per_block(head.d, _BLOCK_BYTES)
    T = np.empty((min(step, head.n_labels), H.shape[0]))
    pieces = 1 if pool is None else 2

    def widened(span: tuple[int, int]) -> NDArray[np.float64]:
        return np.asarray(take(*span), dtype=np.float64)

    for a, e in row_blocks(head.n_labels, head.d, _BLOCK_BYTES):
        spans = [(a + (e - a) * i // pieces, a + (e - a) * (i + 1) // pieces)
                 for i in range(pieces)]
        parts = map(widened, spans) if pool is None else pool.map(widened, spans)
        for (s, t), block in zip(spans, parts, strict=True):
            np.matmul(block, H.T, out=T[s - a: t - a])
        out[:, a:e] = T[: e - a].T
    if head.b is not None:
        out += head.b
    if head.logit_scale != 1.0:
        out *= head.logit_scale
    if head.softcap is not None:
        if pre_cap is not None:
            pre_cap[...] = out
        out /= head.softcap
        np.tanh(out, out=out)
        out *= head.softcap
    return out
