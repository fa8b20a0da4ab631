"""First two moments of hidden states, streamed and mergeable.

The ``logit`` view (docs: the inner product the model's behaviour defines) needs the covariance
S of the hidden states h over some data: for the centered logits l_i(h) = z_i(h) - mean_k z_k(h),
Cov(l_i, l_j) = (u_i - m)^T S (u_j - m), m the mean row. :class:`HiddenMoments` accumulates
n, the mean and the centered scatter matrix M2 = sum_t (h_t - mean)(h_t - mean)^T in float64,
batch by batch, with the pairwise update of Chan, Golub and LeVeque, so that shards of the data
can be processed apart and merged:

>>> import numpy as np
>>> H = np.random.default_rng(0).standard_normal((1000, 4)) + 5.0
>>> a = HiddenMoments.from_states(H[:300], source="x.npy")
>>> b = HiddenMoments.from_states(H[300:], source="x.npy")
>>> m = a.merge(b)
>>> bool(np.allclose(m.covariance(), np.cov(H.T, ddof=0), rtol=0, atol=1e-12))
True
>>> m.n
1000
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from unembed._checks import arg_error, fail

__all__ = ["HiddenMoments"]


@dataclass
class HiddenMoments:
    """Streaming count, mean (d,) and centered scatter (d, d) of hidden states, in float64.

    ``source`` names the data the moments came from (a file, "random", ...): a ``logit``
    cosine is a property of model *and* data, and every result that uses it says which data.
    """

    d: int
    source: str = ""
    n: int = 0
    mean: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    m2: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))

    def __post_init__(self) -> None:
        if self.d < 1:
            raise arg_error("HiddenMoments", "d", "must be a positive integer", got=self.d)
        if self.mean.shape != (self.d,):
            self.mean = np.zeros(self.d)
        if self.m2.shape != (self.d, self.d):
            self.m2 = np.zeros((self.d, self.d))

    @classmethod
    def from_states(cls, h: ArrayLike, *, source: str = "") -> HiddenMoments:
        """Moments of an (n, d) array of hidden states."""
        arr = np.asarray(h)
        if arr.ndim != 2:
            raise arg_error("HiddenMoments.from_states", "h", "must have shape (n, d)",
                            got=arr.shape)
        out = cls(d=int(arr.shape[1]), source=source)
        out.update(arr)
        return out

    def update(self, h: ArrayLike) -> HiddenMoments:
        """Add a batch (n, d) of hidden states (any float dtype; accumulated in float64)."""
        arr = np.asarray(h, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != self.d:
            raise arg_error("HiddenMoments.update", "h", f"must have shape (n, {self.d})",
                            got=arr.shape)
        if arr.shape[0] == 0:
            return self
        if not np.isfinite(arr).all():
            raise fail("The hidden states contain NaN or Inf; their moments are undefined.")
        nb = arr.shape[0]
        mb = arr.mean(axis=0)
        c = arr - mb
        self._combine(nb, mb, c.T @ c)
        return self

    def merge(self, other: HiddenMoments) -> HiddenMoments:
        """A new accumulator holding both (order does not matter up to rounding)."""
        if other.d != self.d:
            raise arg_error("HiddenMoments.merge", "other", f"must have d = {self.d}",
                            got=other.d)
        out = HiddenMoments(d=self.d, source=self.source or other.source, n=self.n,
                            mean=self.mean.copy(), m2=self.m2.copy())
        if self.source and other.source and self.source != other.source:
            out.source = f"{self.source} + {other.source}"
        out._combine(other.n, other.mean, other.m2)
        return out

    def _combine(self, nb: int, mb: NDArray[np.float64], m2b: NDArray[np.float64]) -> None:
        if nb == 0:
            return
        na = self.n
        n = na + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2b + np.outer(delta, delta) * (na * nb / n)
        self.n = n

    def covariance(self) -> NDArray[np.float64]:
        """The population covariance S = M2 / n (d, d); at least 2 states are needed."""
        if self.n < 2:
            raise fail(
                f"The hidden-state covariance needs at least 2 states; {self.n} were seen"
                + (f" in {self.source}." if self.source else ".")
            )
        s = self.m2 / self.n
        return (s + s.T) / 2.0
