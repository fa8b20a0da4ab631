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

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from unembed._checks import arg_error, fail
from unembed._stats import merge_moments

__all__ = ["HiddenMoments", "LogitRows", "ParkDistance", "logit_cosines", "logit_covariance",
           "logit_rows", "park_distance", "stream_moments"]


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
        self.n, self.mean, self.m2 = merge_moments(self.n, self.mean, self.m2, nb, mb, m2b)

    def covariance(self) -> NDArray[np.float64]:
        """The population covariance S = M2 / n (d, d); at least 2 states are needed."""
        if self.n < 2:
            raise fail(
                f"The hidden-state covariance needs at least 2 states; {self.n} were seen"
                + (f" in {self.source}." if self.source else ".")
            )
        s = self.m2 / self.n
        return (s + s.T) / 2.0


def stream_moments(batches: Iterable[ArrayLike], *, d: int, source: str,
                   tick: Callable[[int], None] | None = None) -> HiddenMoments:
    """Moments of batches (n_b, d) of hidden states, streamed: memory O(d^2 + one batch)
    whatever the data's length (what the audit accumulates in its pass). ``tick(n)`` is
    called after each batch with its number of states (progress)."""
    out = HiddenMoments(d=d, source=source)
    for batch in batches:
        h = np.asarray(batch)
        out.update(h)
        if tick is not None:
            tick(int(h.shape[0]))
    return out


def _tiny(v: NDArray[np.float64], d: int, n: int, top: float) -> NDArray[np.bool_]:
    """Variances of centered logits within float64 rounding of 0, relative to ``top``."""
    out: NDArray[np.bool_] = v <= 16 * (d + n) * np.finfo(np.float64).eps * max(top, 1e-300)
    return out


@dataclass(frozen=True, eq=False)
class LogitRows:
    """The ``logit`` view as a row view: rows r_i = F^T (u_i - m) with S = F F^T the data's
    hidden-state covariance (F from its eigendecomposition, eigenvalues <= 0 dropped) and m
    the mean row, so that r_i . r_j = (u_i - m)^T S (u_j - m) = Cov(l_i, l_j) and the cosine
    of two rows is the correlation over the data of the two labels' centered logits.

    ``tiny`` (V,) marks labels whose centered logit does not vary on the data (variance within
    float64 rounding of 0 relative to the largest over all V labels): their rows are NaN (no
    correlation). ``source`` and ``n`` name the data.
    """

    mean: NDArray[np.float64]
    F: NDArray[np.float64]
    tiny: NDArray[np.bool_]
    source: str
    n: int

    def rows(self, W: NDArray[np.floating], idx: NDArray[np.intp]) -> NDArray[np.float64]:
        """The rows (k, r) of labels ``idx`` (NaN for labels without variance)."""
        R = np.asarray((np.asarray(W[idx], dtype=np.float64) - self.mean) @ self.F)
        R[self.tiny[idx]] = np.nan
        return R

    def data(self) -> dict[str, object]:
        """What names the data in JSON: its source and number of hidden states."""
        return {"source": self.source, "n": self.n}


def logit_rows(W: NDArray[np.floating], moments: HiddenMoments, *,
               mean: NDArray[np.float64] | None = None, block: int = 4096) -> LogitRows:
    """:class:`LogitRows` of a head's rows ``W`` (V, d) over ``moments`` (one pass over W in
    row blocks; ``mean`` the rows' mean when already known).

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> W, H = rng.normal(size=(5, 3)), rng.normal(size=(200, 3))
    >>> lr = logit_rows(W, HiddenMoments.from_states(H, source="H"))
    >>> R = lr.rows(W, np.arange(5))
    >>> U = R / np.linalg.norm(R, axis=1, keepdims=True)
    >>> bool(np.allclose(U @ U.T, logit_cosines(W, HiddenMoments.from_states(H)), atol=1e-12))
    True
    """
    V, d = W.shape
    if d != moments.d:
        raise arg_error("logit_rows", "moments", f"must have d = {d} (the head's)",
                        got=moments.d)
    S = moments.covariance()
    ev, Q = np.linalg.eigh(S)
    keep = ev > 0
    F = Q[:, keep] * np.sqrt(ev[keep])
    m = np.asarray(W.mean(axis=0), dtype=np.float64) if mean is None else mean
    v = np.empty(V)
    for s in range(0, V, block):
        R = (np.asarray(W[s:s + block], dtype=np.float64) - m) @ F
        v[s:s + block] = np.einsum("ij,ij->i", R, R)
    tiny = _tiny(v, d, moments.n, float(v.max(initial=0.0)))
    return LogitRows(m, F, tiny, moments.source, moments.n)


def _centered_rows(W: ArrayLike) -> NDArray[np.float64]:
    w = np.asarray(W, dtype=np.float64)
    if w.ndim != 2:
        raise arg_error("logit_covariance", "W", "must have shape (V, d)", got=w.shape)
    out: NDArray[np.float64] = w - w.mean(axis=0)
    return out


def logit_covariance(W: ArrayLike, moments: HiddenMoments,
                     labels: Sequence[int] | None = None) -> NDArray[np.float64]:
    """Cov over the data of the centered logits of some labels, (k, k) float64.

    With l_i(h) = z_i(h) - mean_k z_k(h) over all V labels (the bias cancels from every
    covariance), Cov(l_i, l_j) = (u_i - m)^T S (u_j - m), m the mean of all V rows of ``W``
    (V, d) and S ``moments.covariance()``. ``labels`` are row indices (default: all V).

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> W, H = rng.normal(size=(5, 3)), rng.normal(size=(200, 3))
    >>> z = H @ W.T + rng.normal(size=5)             # any bias
    >>> l = z - z.mean(axis=1, keepdims=True)
    >>> K = logit_covariance(W, HiddenMoments.from_states(H), [0, 2, 4])
    >>> bool(np.allclose(K, np.cov(l[:, [0, 2, 4]].T, ddof=0), rtol=0, atol=1e-12))
    True
    """
    C = _centered_rows(W)
    if C.shape[1] != moments.d:
        raise arg_error("logit_covariance", "moments", f"must have d = {C.shape[1]}",
                        got=moments.d)
    sub = C if labels is None else C[np.asarray(labels, dtype=np.intp)]
    K: NDArray[np.float64] = sub @ moments.covariance() @ sub.T
    return (K + K.T) / 2.0


def logit_cosines(W: ArrayLike, moments: HiddenMoments,
                  labels: Sequence[int] | None = None) -> NDArray[np.float64]:
    """The ``logit`` view: the correlation over the data of the labels' centered logits,
    K_ij / sqrt(K_ii K_jj) with K = :func:`logit_covariance`; diagonal 1. A label whose centered
    logit does not vary on the data (K_ii within float64 rounding of 0, relative to the largest
    K_ii) has no correlation: its row and column are NaN.

    Unchanged by translation of the rows (m moves with them), a bias shift (no bias enters), a
    shift of rows in a null space of the hidden states (S has no variance there) and a
    reparametrisation W -> W A^{-1}, h -> A h (S -> A S A^T): every transformation that keeps
    the probabilities.
    """
    K = logit_covariance(W, moments, labels)
    v = np.diag(K).copy()
    tiny = _tiny(v, int(np.asarray(W).shape[1]), moments.n, float(v.max(initial=0)))
    sd = np.sqrt(np.where(tiny, 1.0, v))
    out = np.clip(K / np.outer(sd, sd), -1.0, 1.0)
    out[tiny, :] = np.nan
    out[:, tiny] = np.nan
    np.fill_diagonal(out, 1.0)
    return out


@dataclass(frozen=True)
class ParkDistance:
    """How far the data's hidden-state covariance S is from Park et al.'s assumption
    S ∝ Cov(rows)^{-1}, seen through the rows (see :func:`park_distance`)."""

    distance: float
    participation: float
    rank: int

    def to_dict(self) -> dict[str, float | int]:
        return {"distance": self.distance, "participation": self.participation,
                "rank": self.rank}


def park_distance(W: ArrayLike, moments: HiddenMoments, *,
                  rtol: float = 1e-10) -> ParkDistance:
    """Distance of the data from the causal inner product's assumption, in [0, sqrt(2)].

    C are the centered rows (V, d), K = C S C^T the covariance of the centered logits over the
    data (the ``logit`` view's Gram matrix over all labels), and P the orthogonal projection of
    R^V onto the range of C, of rank r. Under Park et al.'s assumption S = (C^T C / V)^+ (on
    the rows' span), K = C (C^T C / V)^+ C^T = V P: the ``causal`` view's Gram matrix. So

        distance = || K / |K|_F - P / |P|_F ||_F = sqrt(2 - 2 tr(K) / (sqrt(r) |K|_F))

    is 0 exactly when the data meet the assumption (the ``logit`` and ``causal`` views then
    agree) and grows to sqrt(2) as the centered logits' variance concentrates on one direction.
    It is unchanged by scaling S or W, by translation and by reparametrisation (K and range(C)
    are both invariant). ``participation`` = tr(K)^2 / |K|_F^2 / r in (0, 1] says the same as
    the share of the r directions the data's centered logits effectively use (1: all alike).
    Computed from (d, d) matrices, never (V, V).
    """
    C = _centered_rows(W)
    M = C.T @ C
    ev = np.linalg.eigvalsh((M + M.T) / 2.0)
    r = int(np.sum(ev > rtol * max(float(ev.max(initial=0.0)), 1e-300)))
    SM = moments.covariance() @ M
    tr = float(np.trace(SM))
    fro2 = float(np.sum(SM * SM.T))
    if r == 0 or tr <= 0 or fro2 <= 0:
        raise fail("The centered logits do not vary on the data (or all rows are equal); "
                   "the distance from the causal inner product's assumption is undefined.")
    cos = min(tr / (np.sqrt(r) * np.sqrt(fro2)), 1.0)
    return ParkDistance(float(np.sqrt(max(2.0 - 2.0 * cos, 0.0))),
                        float(tr * tr / fro2 / r), r)
