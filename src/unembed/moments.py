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

For a head with fewer labels than hidden dimensions (V < d) the logit view needs only the
V x V covariance K = C S C^T of the centered logits, C = W - m the centered rows (m the mean
row): :class:`LogitMoments` accumulates the moments of g(h) = C h (V,) instead of those of h
(d,), V^2 numbers instead of d^2, and gives K directly (Cov over the data of C h is C S C^T).
:func:`moments_for` picks whichever of the two is smaller; every function below takes either.
A (d, d) or (V, V) accumulator that cannot fit in the memory available is refused with what it
needed (:func:`unembed._memory.needs_memory`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from unembed._checks import UnembedError
from unembed._memory import needs_memory
from unembed._stats import merge_moments

__all__ = ["HiddenMoments", "LogitMoments", "LogitRows", "Moments", "ParkDistance",
           "logit_cosines", "logit_covariance", "logit_rows", "merged", "moments_for",
           "park_distance", "stream_moments"]


class _Running:
    """What both accumulators share: a count, a mean and a centered scatter, merged pairwise
    (:func:`unembed.accumulators.merge_moments`, Chan et al.), and the name of their data."""

    source: str
    n: int
    mean: NDArray[np.float64]
    m2: NDArray[np.float64]

    def _combine(self, nb: int, mb: NDArray[np.float64], m2b: NDArray[np.float64]) -> None:
        if nb == 0:
            return
        self.n, self.mean, self.m2 = merge_moments(self.n, self.mean, self.m2, nb, mb, m2b)

    def _fold_in(self, other: _Running) -> None:
        """Add another accumulator's data, and its name, to this one (in place)."""
        if self.source and other.source and self.source != other.source:
            self.source = f"{self.source} + {other.source}"
        else:
            self.source = self.source or other.source
        self._combine(other.n, other.mean, other.m2)


@dataclass
class HiddenMoments(_Running):
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
            raise UnembedError("must be a positive integer", argument="d",
                               function="HiddenMoments", got=self.d)
        if self.mean.shape != (self.d,):
            self.mean = np.zeros(self.d)
        if self.m2.shape != (self.d, self.d):
            needs_memory(3 * 8.0 * self.d * self.d,
                         what=f"the hidden states' covariance ({self.d} x {self.d} float64, "
                              f"with its merge and eigendecomposition)",
                         advice="For a head with fewer labels than dimensions accumulate the "
                                "V x V moments of its centered logits instead (LogitMoments, "
                                "moments_for(W, ...)); otherwise use a machine with more "
                                "memory.")
            self.m2 = np.zeros((self.d, self.d))

    @classmethod
    def from_states(cls, h: ArrayLike, *, source: str = "") -> HiddenMoments:
        """Moments of an (n, d) array of hidden states."""
        arr = np.asarray(h)
        if arr.ndim != 2:
            raise UnembedError("must have shape (n, d)", argument="h",
                               function="HiddenMoments.from_states", got=arr.shape)
        out = cls(d=int(arr.shape[1]), source=source)
        out.update(arr)
        return out

    def update(self, h: ArrayLike) -> HiddenMoments:
        """Add a batch (n, d) of hidden states (any float dtype; accumulated in float64)."""
        arr = np.asarray(h, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != self.d:
            raise UnembedError(f"must have shape (n, {self.d})", argument="h",
                               function="HiddenMoments.update", got=arr.shape)
        if arr.shape[0] == 0:
            return self
        if not np.isfinite(arr).all():
            raise UnembedError("The hidden states contain NaN or Inf; their moments are undefined.")
        nb = arr.shape[0]
        mb = arr.mean(axis=0)
        c = arr - mb
        self._combine(nb, mb, c.T @ c)
        return self

    def merge(self, other: HiddenMoments) -> HiddenMoments:
        """A new accumulator holding both (order does not matter up to rounding)."""
        if other.d != self.d:
            raise UnembedError(f"must have d = {self.d}", argument="other",
                               function="HiddenMoments.merge", got=other.d)
        out = HiddenMoments(d=self.d, source=self.source, n=self.n, mean=self.mean.copy(),
                            m2=self.m2.copy())
        out._fold_in(other)
        return out

    def covariance(self) -> NDArray[np.float64]:
        """The population covariance S = M2 / n (d, d); at least 2 states are needed."""
        if self.n < 2:
            raise UnembedError(f"The hidden-state covariance needs at least 2 states; {self.n} "
                               f"were seen"
                               + (f" in {self.source}." if self.source else "."))
        s = self.m2 / self.n
        return (s + s.T) / 2.0


_PROBE_SEED = 0x10617


def _states(h: ArrayLike, d: int, where: str) -> NDArray[np.float64]:
    arr = np.asarray(h, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != d:
        raise UnembedError(f"must have shape (n, {d})", argument="h", function=where, got=arr.shape)
    if arr.shape[0] and not np.isfinite(arr).all():
        raise UnembedError("The hidden states contain NaN or Inf; their moments are undefined.")
    return arr


def _centered_logits(W: NDArray[np.floating], center: NDArray[np.float64],
                     H: NDArray[np.float64]) -> NDArray[np.float64]:
    """g = (W - m) h for every state of H (n, d): (n, V) float64, the centered rows formed
    in row blocks (never a (V, d) copy)."""
    from unembed._blocks import row_blocks

    V, d = W.shape
    out = np.empty((H.shape[0], V))
    for s, e in row_blocks(V, d):
        out[:, s:e] = H @ (np.asarray(W[s:e], dtype=np.float64) - center).T
    return out


def _probe(W: NDArray[np.floating], center: NDArray[np.float64]) -> NDArray[np.float64]:
    """(W - m) v for a fixed seeded Gaussian v (d,): what ties moments to their rows."""
    v = np.random.default_rng(_PROBE_SEED).standard_normal((1, W.shape[1]))
    out: NDArray[np.float64] = _centered_logits(W, center, v)[0]
    return out


@dataclass
class LogitMoments(_Running):
    """Streaming count, mean (V,) and centered scatter (V, V) of one head's centered logits
    g(h) = (W - m) h over hidden states h, in float64 (m the mean row of W; the bias cancels
    from every covariance). Their covariance is Cov(g) = C S C^T = K, the ``logit`` view's
    covariance, without the (d, d) covariance S of h: for V < d the smaller accumulator.

    The moments belong to the rows they were accumulated with: ``probe`` = C v for a fixed
    seeded v, compared with another head's (:meth:`fits`) before any use. A head whose
    centered rows agree (a translated copy) has the same centered logits, so the same K.
    ``rows`` (the head's W) is what :meth:`update` multiplies with; it is not pickled (shards
    send their moments to a driver, which merges them): such moments merge and answer, but do
    not update.
    """

    n_labels: int
    d: int
    center: NDArray[np.float64]
    probe: NDArray[np.float64]
    source: str = ""
    n: int = 0
    mean: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    m2: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))
    rows: NDArray[np.floating] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        V = self.n_labels
        if self.mean.shape != (V,):
            self.mean = np.zeros(V)
        if self.m2.shape != (V, V):
            needs_memory(3 * 8.0 * V * V,
                         what=f"the centered logits' covariance ({V} x {V} float64, with its "
                              f"merge and eigendecomposition)",
                         advice="Use a machine with more memory (for a head with more "
                                "dimensions than labels accumulate the hidden states' (d, d) "
                                "moments instead: HiddenMoments).")
            self.m2 = np.zeros((V, V))

    @classmethod
    def of_rows(cls, W: NDArray[np.floating], *, source: str = "",
                mean: NDArray[np.float64] | None = None) -> LogitMoments:
        """Empty moments for the head with rows ``W`` (V, d); ``mean`` its mean row when
        already known."""
        if W.ndim != 2 or W.shape[0] < 1:
            raise UnembedError("must have shape (V, d)", argument="W",
                               function="LogitMoments.of_rows", got=W.shape)
        m = (np.asarray(W.mean(axis=0), dtype=np.float64) if mean is None
             else np.asarray(mean, dtype=np.float64))
        return cls(int(W.shape[0]), int(W.shape[1]), m, _probe(W, m), source=source, rows=W)

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["rows"] = None
        return state

    def fits(self, W: NDArray[np.floating]) -> bool:
        """Do the centered rows of ``W`` agree with those the moments were accumulated with
        (up to float64 rounding)?"""
        if W.shape != (self.n_labels, self.d):
            return False
        if W is self.rows:
            return True
        p = _probe(W, np.asarray(W.mean(axis=0), dtype=np.float64))
        scale = float(np.abs(self.probe).max(initial=0.0))
        return bool(np.abs(p - self.probe).max(initial=0.0) <= 1e-9 * max(scale, 1e-300))

    def update(self, h: ArrayLike) -> LogitMoments:
        """Add a batch (n, d) of hidden states: their centered logits (n, V), in float64."""
        arr = _states(h, self.d, "LogitMoments.update")
        if arr.shape[0] == 0:
            return self
        if self.rows is None:
            raise UnembedError("These logit moments were sent without their head's rows (merged "
                               "from shards); they can be merged and read, not updated.")
        g = _centered_logits(self.rows, self.center, arr)
        mb = g.mean(axis=0)
        c = g - mb
        self._combine(g.shape[0], mb, c.T @ c)
        return self

    def merge(self, other: LogitMoments) -> LogitMoments:
        """A new accumulator holding both (the same head's; order does not matter up to
        rounding)."""
        if other.n_labels != self.n_labels or other.d != self.d or not np.array_equal(
                other.probe, self.probe):
            raise UnembedError("must hold the same head's "
                               "centered logits", argument="other", function="LogitMoments.merge")
        out = LogitMoments(self.n_labels, self.d, self.center, self.probe, self.source,
                           self.n, self.mean.copy(), self.m2.copy(),
                           self.rows if self.rows is not None else other.rows)
        out._fold_in(other)
        return out

    def covariance(self) -> NDArray[np.float64]:
        """K = Cov(g) = C S C^T (V, V) over the data (population); at least 2 states."""
        if self.n < 2:
            where = f" in {self.source}." if self.source else "."
            raise UnembedError(f"The covariance of the centered logits needs at least 2 hidden "
                               f"states; {self.n} were seen{where}")
        s = self.m2 / self.n
        return (s + s.T) / 2.0


#: What the ``logit`` view is computed from: the hidden states' moments or the logits'.
Moments = HiddenMoments | LogitMoments


def moments_for(W: NDArray[np.floating], *, source: str,
                mean: NDArray[np.float64] | None = None) -> Moments:
    """The smaller accumulator for the head with rows ``W`` (V, d): :class:`LogitMoments`
    (V x V) when V < d, else :class:`HiddenMoments` (d x d)."""
    V, d = W.shape
    if V < d:
        return LogitMoments.of_rows(W, source=source, mean=mean)
    return HiddenMoments(d=d, source=source)


def merged(a: Moments, b: Moments) -> Moments:
    """Two accumulators of the same kind merged (shards of one pass)."""
    if isinstance(a, LogitMoments) and isinstance(b, LogitMoments):
        return a.merge(b)
    if isinstance(a, HiddenMoments) and isinstance(b, HiddenMoments):
        return a.merge(b)
    raise UnembedError("Hidden-state moments and centered-logit moments cannot be merged: the "
                       "shards "
                       "of one pass must accumulate the same kind.")


def _fitting(W: ArrayLike, moments: LogitMoments, func: str) -> NDArray[np.float64]:
    """The covariance of ``moments`` after checking they belong to the rows ``W``."""
    w = np.asarray(W)
    if not moments.fits(w):
        raise UnembedError(f"must be the centered logits' moments of this head "
                           f"({w.shape[0]} x {w.shape[1]}); they were accumulated for another "
                           f"head's rows", argument="moments", function=func)
    return moments.covariance()


def stream_moments(batches: Iterable[ArrayLike], *, d: int, source: str,
                   tick: Callable[[int], None] | None = None,
                   rows: NDArray[np.floating] | None = None) -> Moments:
    """Moments of batches (n_b, d) of hidden states, streamed: memory O(d^2 + one batch)
    whatever the data's length (what the audit accumulates in its pass); with the head's
    ``rows`` (V, d) whichever of the hidden states' and the centered logits' moments is
    smaller (:func:`moments_for`). ``tick(n)`` is called after each batch with its number of
    states (progress)."""
    out: Moments = (HiddenMoments(d=d, source=source) if rows is None
                    else moments_for(rows, source=source))
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

    From :class:`LogitMoments` (V < d) the rows come from K itself, K = Q diag(ev) Q^T: the
    rows of Q diag(ev)^{1/2} (``coords``, (V, r)), the same Gram matrix K; ``F`` is then None.
    """

    mean: NDArray[np.float64]
    F: NDArray[np.float64] | None
    tiny: NDArray[np.bool_]
    source: str
    n: int
    coords: NDArray[np.float64] | None = None

    def fits(self, n_labels: int, d: int) -> bool:
        """Were these rows prepared for a head of this shape?"""
        if self.tiny.shape != (n_labels,) or self.mean.shape != (d,):
            return False
        return self.coords is not None or (self.F is not None and self.F.shape[0] == d)

    def rows(self, W: NDArray[np.floating], idx: NDArray[np.intp]) -> NDArray[np.float64]:
        """The rows (k, r) of labels ``idx`` (NaN for labels without variance)."""
        if self.coords is not None:
            R = np.array(self.coords[idx], dtype=np.float64)
        else:
            assert self.F is not None
            R = np.asarray((np.asarray(W[idx], dtype=np.float64) - self.mean) @ self.F)
        R[self.tiny[idx]] = np.nan
        return R

    def data(self) -> dict[str, object]:
        """What names the data in JSON: its source and number of hidden states."""
        return {"source": self.source, "n": self.n}


def logit_rows(W: NDArray[np.floating], moments: Moments, *,
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
        raise UnembedError(f"must have d = {d} (the head's)", argument="moments",
                           function="logit_rows", got=moments.d)
    if isinstance(moments, LogitMoments):
        K = _fitting(W, moments, "logit_rows")
        ev, Q = np.linalg.eigh(K)
        keep = ev > 0
        coords = np.ascontiguousarray(Q[:, keep] * np.sqrt(ev[keep]))
        v = np.diag(K).copy()
        tiny = _tiny(v, d, moments.n, float(v.max(initial=0.0)))
        return LogitRows(moments.center, None, tiny, moments.source, moments.n, coords)
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
        raise UnembedError("must have shape (V, d)", argument="W", function="logit_covariance",
                           got=w.shape)
    out: NDArray[np.float64] = w - w.mean(axis=0)
    return out


def logit_covariance(W: ArrayLike, moments: Moments,
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
    if isinstance(moments, LogitMoments):
        full = _fitting(W, moments, "logit_covariance")
        ix = np.arange(full.shape[0]) if labels is None else np.asarray(labels, dtype=np.intp)
        out: NDArray[np.float64] = full[np.ix_(ix, ix)]
        return out
    C = _centered_rows(W)
    if C.shape[1] != moments.d:
        raise UnembedError(f"must have d = {C.shape[1]}", argument="moments",
                           function="logit_covariance", got=moments.d)
    sub = C if labels is None else C[np.asarray(labels, dtype=np.intp)]
    K: NDArray[np.float64] = sub @ moments.covariance() @ sub.T
    return (K + K.T) / 2.0


def logit_cosines(W: ArrayLike, moments: Moments,
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


def park_distance(W: ArrayLike, moments: Moments, *,
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
    Computed from (d, d) matrices, never (V, V), from :class:`HiddenMoments`; from (V, V)
    ones (K itself and C C^T, whose nonzero eigenvalues are C^T C's) from
    :class:`LogitMoments`: tr(S C^T C) = tr(K) and tr((S C^T C)^2) = |K|_F^2.
    """
    if isinstance(moments, LogitMoments):
        K = _fitting(W, moments, "park_distance")
        w = np.asarray(W)
        G = np.zeros((w.shape[0], w.shape[0]))
        for j in range(0, w.shape[1], 4096):  # C C^T in column blocks: no (V, d) copy
            Cj = np.asarray(w[:, j:j + 4096], dtype=np.float64) - moments.center[j:j + 4096]
            G += Cj @ Cj.T
        ev = np.linalg.eigvalsh((G + G.T) / 2.0)
        tr, fro2 = float(np.trace(K)), float(np.sum(K * K))
    else:
        C = _centered_rows(W)
        M = C.T @ C
        ev = np.linalg.eigvalsh((M + M.T) / 2.0)
        SM = moments.covariance() @ M
        tr = float(np.trace(SM))
        fro2 = float(np.sum(SM * SM.T))
    r = int(np.sum(ev > rtol * max(float(ev.max(initial=0.0)), 1e-300)))
    if r == 0 or tr <= 0 or fro2 <= 0:
        raise UnembedError("The centered logits do not vary on the data (or all rows are equal); "
                           "the distance from the causal inner product's assumption is undefined.")
    cos = min(tr / (np.sqrt(r) * np.sqrt(fro2)), 1.0)
    return ParkDistance(float(np.sqrt(max(2.0 - 2.0 * cos, 0.0))),
                        float(tr * tr / fro2 / r), r)
