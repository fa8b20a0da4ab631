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

__all__ = ["RankStatistic", "constant_reason", "merge_moments", "rounding_tolerance", "spearman"]


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
