"""When a statistic means something: constancy up to float64 rounding, and rank correlations
that refuse constant or too short inputs.

A number computed in float64 from ``terms`` rounded operations (the length of a dot product,
the size of a sum) carries an error of at most about ``terms * eps * scale``, eps = 2**-52 and
``scale`` the size of the quantity (1 for cosines, max |x| otherwise). Values whose spread is
within :func:`rounding_tolerance` of that are the same number: any ranking of them ranks
rounding noise. :func:`constant_reason` says so in words; every statistic of such a quantity is
then undefined (``None`` plus that reason), never a number.

>>> import numpy as np
>>> x = np.full(45, -1 / 9) + np.random.default_rng(0).normal(size=45) * 1e-16
>>> constant_reason(x, what="the causal cosines", terms=64, scale=1.0) is not None
True
>>> constant_reason(np.linspace(-0.5, 0.5, 45), what="the raw cosines", terms=64, scale=1.0)
>>> round(spearman(np.arange(5.0), np.arange(5.0) ** 2, what_x="x", what_y="y").rho, 12)
1.0
>>> spearman(np.arange(2.0), np.arange(2.0), what_x="x", what_y="y").reason
'undefined: 2 pairs; a rank correlation needs at least 3'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Carrying", "LabelBootstrap", "PermutationTest", "RankStatistic", "carrying",
           "constant_reason", "label_bootstrap", "label_permutation_test", "merge_moments",
           "rounding_tolerance", "spearman"]


def merge_moments(na: int, mean_a: NDArray[np.float64], m2_a: NDArray[np.float64], nb: int,
                  mean_b: NDArray[np.float64], m2_b: NDArray[np.float64]
                  ) -> tuple[int, NDArray[np.float64], NDArray[np.float64]]:
    """Count, mean and centered scatter (sum of outer products of centered rows) of two sets
    of rows together, from each set's own (Chan, Golub and LeVeque's pairwise update):
    with n = na + nb and delta = mean_b - mean_a,
    mean = mean_a + delta nb / n and M2 = M2_a + M2_b + delta delta^T na nb / n.

    >>> x = np.arange(12.0).reshape(6, 2) ** 1.5
    >>> a, b = x[:2], x[2:]
    >>> sa = (a - a.mean(0)).T @ (a - a.mean(0)); sb = (b - b.mean(0)).T @ (b - b.mean(0))
    >>> n, m, m2 = merge_moments(2, a.mean(0), sa, 4, b.mean(0), sb)
    >>> bool(np.allclose(m2, (x - x.mean(0)).T @ (x - x.mean(0)))), n
    (True, 6)
    """
    n = na + nb
    delta = mean_b - mean_a
    mean = mean_a + delta * (nb / n)
    m2 = m2_a + m2_b + np.outer(delta, delta) * (na * nb / n)
    return n, mean, m2

EPS = float(np.finfo(np.float64).eps)
#: Safety factor on the rounding bound terms * eps * scale.
ROUNDING_FACTOR = 16.0
#: Fewest pairs a rank correlation needs (two points always give +1 or -1).
MIN_PAIRS = 3


def rounding_tolerance(x: ArrayLike, *, terms: int = 1, scale: float | None = None) -> float:
    """``ROUNDING_FACTOR * terms * eps * scale``: how far apart two float64 values of a quantity
    computed with ``terms`` rounded operations may be from rounding alone. ``scale`` defaults to
    max |x| over the finite values (at least the smallest normal number)."""
    a = np.asarray(x, dtype=np.float64)
    if scale is None:
        fin = np.abs(a[np.isfinite(a)])
        scale = float(fin.max()) if fin.size else 0.0
    scale = max(float(scale), float(np.finfo(np.float64).tiny))
    return ROUNDING_FACTOR * max(int(terms), 1) * EPS * scale


def constant_reason(x: ArrayLike, *, what: str, terms: int = 1,
                    scale: float | None = None) -> str | None:
    """None when the finite values of ``x`` vary by more than :func:`rounding_tolerance`;
    otherwise the reason ("undefined: ...") that no statistic of ``x`` means anything."""
    a = np.asarray(x, dtype=np.float64).ravel()
    fin = a[np.isfinite(a)]
    if fin.size == 0:
        return f"undefined: {what} has no finite value"
    spread = float(np.ptp(fin))
    tol = rounding_tolerance(fin, terms=terms, scale=scale)
    if spread <= tol:
        return (f"undefined: {what} is constant ({float(np.median(fin)):+.6g} for every pair; "
                f"spread {spread:.1e} <= float64 rounding {tol:.1e})")
    return None


@dataclass(frozen=True)
class RankStatistic:
    """Spearman's rho and its p-value over ``n_pairs`` pairs, or None and ``reason``."""

    rho: float | None
    p_value: float | None
    n_pairs: int
    reason: str | None = None


def spearman(x: ArrayLike, y: ArrayLike, *, what_x: str, what_y: str, terms_x: int = 1,
             terms_y: int = 1, scale_x: float | None = None,
             scale_y: float | None = None) -> RankStatistic:
    """Spearman's rho of x and y over the entries where both are finite; undefined (None, with
    the reason) when fewer than :data:`MIN_PAIRS` remain or either side is constant up to
    rounding (:func:`constant_reason`)."""
    from scipy.stats import spearmanr

    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    n = int(ok.sum())
    if n < MIN_PAIRS:
        return RankStatistic(None, None, n, f"undefined: {n} pairs; a rank correlation needs "
                                            f"at least {MIN_PAIRS}")
    for v, what, terms, scale in ((a, what_x, terms_x, scale_x), (b, what_y, terms_y, scale_y)):
        why = constant_reason(v[ok], what=what, terms=terms, scale=scale)
        if why is not None:
            return RankStatistic(None, None, n, why)
    r = spearmanr(a[ok], b[ok])
    return RankStatistic(float(r.statistic), float(r.pvalue), n)


def percentile_ranks(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Ranks scaled to [0, 1] (ties share their mean rank); zeros for fewer than 2 values."""
    from scipy.stats import rankdata

    if x.size < 2:
        return np.zeros_like(x)
    out: NDArray[np.float64] = (rankdata(x) - 1) / (x.size - 1)
    return out


# ---------------------------------------------------------------------------- label permutations
#: Label sets of at most this many labels get the exact test: every one of the k! label
#: permutations (8! = 40320).
EXACT_MAX_LABELS = 8
#: Otherwise at most this many seeded random label permutations (Monte Carlo).
PERMUTATIONS = 9999
#: ... fewer for large label sets, so that one test gathers at most this many values.
PERMUTATION_BUDGET = 50_000_000
#: Above this many pairs no permutation test is run (the p-value is undefined, with why).
PERMUTATION_MAX_PAIRS = 200_000
#: The seed of every resampling of this module.
SEED = 0


@dataclass(frozen=True)
class PermutationTest:
    """Two-sided p-value of a rank correlation between two symmetric k x k matrices (over the
    pairs i < j) by permuting the labels of one of them (a Mantel test): p is the share of
    label permutations pi whose rho(S[pi, pi], M) is at least as large in absolute value as
    the observed one. ``exact``: all k! permutations were enumerated (the identity among
    them, so p >= 1/k!); otherwise ``n_permutations`` seeded random ones and
    p = (1 + count) / (1 + n_permutations) >= 1 / (1 + n_permutations). Never 0."""

    p_value: float | None
    exact: bool
    n_permutations: int
    method: str


def _rank_matrix(S: NDArray[np.float64], iu: tuple[NDArray[np.intp], NDArray[np.intp]]
                 ) -> NDArray[np.float64]:
    """The average ranks of S's pair values, placed back in a symmetric matrix."""
    from scipy.stats import rankdata

    k = S.shape[0]
    R = np.zeros((k, k))
    R[iu] = rankdata(S[iu])
    return R + R.T


def _label_permutations(k: int) -> tuple[NDArray[np.intp], bool]:
    import itertools
    import math

    if k <= EXACT_MAX_LABELS:
        return np.array(list(itertools.permutations(range(k))), dtype=np.intp), True
    n_pairs = k * (k - 1) // 2
    b = int(min(PERMUTATIONS, max(99, PERMUTATION_BUDGET // max(n_pairs, 1))))
    b = min(b, math.factorial(min(k, 20)))
    rng = np.random.default_rng([SEED, k])
    return np.argsort(rng.random((b, k)), axis=1).astype(np.intp), False


def label_permutation_test(S: ArrayLike, M: ArrayLike, rho: float) -> PermutationTest:
    """The p-value of Spearman's ``rho`` between the pairs i < j of the symmetric matrices S
    and M (every entry finite), by permuting the labels of S (:class:`PermutationTest`).

    Permuting labels, not pairs, keeps what pairs sharing a label have in common (the
    permutation null of "no association between the two matrices"; pairs are not
    independent). Since a label permutation only moves S's pair values, the ranks are
    computed once: rho(pi) is the Pearson correlation of the permuted rank vector with M's.

    >>> S = np.array([[1.0, 0.9, 0.1], [0.9, 1.0, 0.5], [0.1, 0.5, 1.0]])
    >>> M = np.array([[0.0, 0.1, 0.8], [0.1, 0.0, 0.4], [0.8, 0.4, 0.0]])
    >>> t = label_permutation_test(S, M, -1.0)
    >>> round(t.p_value, 6), t.exact, t.n_permutations     # 2 of the 3! permutations
    (0.333333, True, 6)
    """
    s = np.asarray(S, dtype=np.float64)
    m = np.asarray(M, dtype=np.float64)
    k = s.shape[0]
    iu = np.triu_indices(k, 1)
    n_pairs = int(iu[0].size)
    if n_pairs > PERMUTATION_MAX_PAIRS:
        return PermutationTest(None, False, 0,
                               f"undefined: no permutation test over {n_pairs} pairs (more "
                               f"than {PERMUTATION_MAX_PAIRS}); rho itself is exact")
    if not (np.isfinite(s[iu]).all() and np.isfinite(m[iu]).all()):
        return PermutationTest(None, False, 0, "undefined: some pairs have no value")
    from scipy.stats import rankdata

    rs = _rank_matrix(s, iu)
    rm = rankdata(m[iu])
    rm = rm - rm.mean()
    x = rs[iu]
    xc = x - x.mean()
    denom = float(np.sqrt((xc @ xc) * (rm @ rm)))
    perms, exact = _label_permutations(k)
    count = 0
    tol = 1e-12 * max(1.0, abs(rho))
    flat = rs.ravel()
    for start in range(0, len(perms), 4096):
        P = perms[start:start + 4096]
        vals = flat[P[:, iu[0]] * k + P[:, iu[1]]]  # (b, n_pairs): S's ranks, permuted pairs
        r = (vals @ rm) / denom  # the mean of vals is x's mean for every permutation
        count += int(np.sum(np.abs(r) >= abs(rho) - tol))
    n = len(perms)
    if exact:
        return PermutationTest(count / n, True, n,
                               f"exact: all {n} permutations of the {k} labels")
    return PermutationTest((1 + count) / (1 + n), False, n,
                           f"Monte Carlo: {n} seeded random permutations of the {k} labels, "
                           f"p = (1 + count) / (1 + {n}) >= {1 / (1 + n):.1e}")


# ---------------------------------------------------------------------------- bootstrap
#: Resamples of the label bootstrap.
BOOTSTRAP = 1000
#: Labels drawn per resample at most (an m-out-of-n bootstrap above: wider intervals).
BOOTSTRAP_MAX_LABELS = 100
#: The confidence level of every interval.
LEVEL = 0.95


@dataclass(frozen=True)
class LabelBootstrap:
    """Spearman's rho of several views against one measure on ``n_resamples`` resamples of
    the labels (``rhos``: (n_resamples, n_views), NaN where a resample leaves a side
    constant or fewer than 3 pairs)."""

    views: tuple[str, ...]
    rhos: NDArray[np.float64]
    n_labels_drawn: int
    method: str

    def difference(self, a: str, b: str, level: float = LEVEL
                   ) -> tuple[float, float, int]:
        """The percentile interval of rho_a - rho_b over the resamples where both are
        defined, and how many those are."""
        d = self.rhos[:, self.views.index(a)] - self.rhos[:, self.views.index(b)]
        d = d[np.isfinite(d)]
        if d.size == 0:
            return float("nan"), float("nan"), 0
        lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
        return float(lo), float(hi), int(d.size)


def average_ranks(X: NDArray[np.float64]) -> NDArray[np.float64]:
    """Ranks 1..n along the last axis, ties sharing their average rank (scipy's
    ``rankdata(method="average")``, without its per-call overhead on small arrays).

    >>> average_ranks(np.array([[3.0, 1.0, 3.0, 2.0]])).tolist()
    [[3.5, 1.0, 3.5, 2.0]]
    """
    n = X.shape[-1]
    order = np.argsort(X, axis=-1, kind="stable")
    xs = np.take_along_axis(X, order, axis=-1)
    pos = np.broadcast_to(np.arange(n), xs.shape)
    start = np.ones(xs.shape, dtype=bool)
    start[..., 1:] = xs[..., 1:] != xs[..., :-1]
    end = np.ones(xs.shape, dtype=bool)
    end[..., :-1] = start[..., 1:]
    first = np.maximum.accumulate(np.where(start, pos, 0), axis=-1)
    last = np.flip(np.minimum.accumulate(np.flip(np.where(end, pos, n - 1), axis=-1),
                                         axis=-1), axis=-1)
    out = np.empty(xs.shape)
    np.put_along_axis(out, order, (first + last) / 2.0 + 1.0, axis=-1)
    return out


def _masked_rho(X: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """Spearman's rho of X[..., v, :] with y[..., :] over the entries finite in both (NaN
    where fewer than :data:`MIN_PAIRS` remain or a side is constant). X (b, m, n), y (b, n)."""
    oy = np.isfinite(y)
    ok = np.isfinite(X) & oy[:, None, :]
    Xm = np.where(ok, X, np.nan)
    rx = average_ranks(Xm)  # NaN sort last: the valid entries' ranks are 1..n_ok
    if bool(np.all(ok == oy[:, None, :])):  # the same entries for every view: rank y once
        ry = np.broadcast_to(average_ranks(np.where(oy, y, np.nan))[:, None, :], X.shape)
    else:
        ry = average_ranks(np.where(ok, y[:, None, :], np.nan))
    cnt = ok.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.where(ok, rx, 0.0).sum(axis=-1) / cnt
        my = np.where(ok, ry, 0.0).sum(axis=-1) / cnt
        dx = np.where(ok, rx - mx[..., None], 0.0)
        dy = np.where(ok, ry - my[..., None], 0.0)
        den = np.sqrt((dx * dx).sum(axis=-1) * (dy * dy).sum(axis=-1))
        r = (dx * dy).sum(axis=-1) / den
    out: NDArray[np.float64] = np.where((cnt >= MIN_PAIRS) & (den > 0), r, np.nan)
    return out


def label_bootstrap(similarities: dict[str, NDArray[np.float64]], measure: ArrayLike, *,
                    n_resamples: int = BOOTSTRAP, seed: int = SEED) -> LabelBootstrap:
    """Resample the k labels with replacement (m = min(k, :data:`BOOTSTRAP_MAX_LABELS`) per
    resample) and recompute each view's Spearman rho with the measure over the pairs of
    distinct drawn labels (a label drawn twice is not paired with itself): the bootstrap that
    keeps the dependence of pairs sharing a label. Seeded: the same inputs give the same
    intervals.

    >>> S = np.add.outer(np.arange(6.0), np.arange(6.0))
    >>> bs = label_bootstrap({"a": S, "b": -S}, S, n_resamples=50)
    >>> bs.difference("a", "b")[:2]
    (2.0, 2.0)
    """
    views = tuple(similarities)
    m = np.asarray(measure, dtype=np.float64)
    k = m.shape[0]
    draw = min(k, BOOTSTRAP_MAX_LABELS)
    rng = np.random.default_rng([seed, k, draw])
    mats = np.stack([np.asarray(similarities[v], dtype=np.float64) for v in views])
    a_i, b_i = np.triu_indices(draw, 1)
    out = np.full((n_resamples, len(views)), np.nan)
    chunk = max(1, 2_000_000 // max(1, a_i.size * (len(views) + 1)))
    for t0 in range(0, n_resamples, chunk):
        S = rng.integers(0, k, size=(min(chunk, n_resamples - t0), draw))
        ia, ib = S[:, a_i], S[:, b_i]  # (b, n_pairs): the drawn labels of each pair
        same = ia == ib  # a label drawn twice is not paired with itself
        y = np.where(same, np.nan, m[ia, ib])
        X = np.where(same[:, None, :], np.nan, mats[:, ia, ib].transpose(1, 0, 2))
        out[t0:t0 + len(S)] = _masked_rho(X, y)
    what = (f"{n_resamples} seeded resamples of the {k} labels with replacement"
            if draw == k else
            f"{n_resamples} seeded resamples of {draw} of the {k} labels with replacement "
            f"(m-out-of-n: intervals wider than with all {k})")
    return LabelBootstrap(views, out, draw,
                          f"bootstrap over labels: {what}; pairs of distinct drawn labels; "
                          f"{100 * LEVEL:g}% percentile interval")


# ---------------------------------------------------------------------------- carrying pairs
@dataclass(frozen=True)
class Carrying:
    """How many of ``n_pairs`` pairs carry a measure: their value differs (beyond float64
    rounding) from the modal value, the value most pairs share."""

    n_pairs: int
    n_carrying: int
    modal_value: float

    @property
    def share(self) -> float:
        return self.n_carrying / self.n_pairs if self.n_pairs else 0.0


def carrying(x: ArrayLike, *, terms: int = 1) -> Carrying:
    """:class:`Carrying` of the finite values of x: the modal value is the most frequent
    float64 value; a value within :func:`rounding_tolerance` of it counts as modal. When no
    value repeats, every pair carries the measure (modal value NaN).

    >>> c = carrying(np.r_[np.zeros(770), np.arange(1.0, 11.0)])
    >>> c.n_pairs, c.n_carrying, c.modal_value
    (780, 10, 0.0)
    """
    a = np.asarray(x, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    if a.size == 0:
        return Carrying(0, 0, float("nan"))
    vals, counts = np.unique(a, return_counts=True)
    if counts.max() == 1:  # no value repeats: every pair carries the measure
        return Carrying(int(a.size), int(a.size), float("nan"))
    mode = float(vals[int(np.argmax(counts))])
    tol = rounding_tolerance(a, terms=terms)
    modal = int(np.sum(np.abs(a - mode) <= tol))
    return Carrying(int(a.size), int(a.size - modal), mode)
