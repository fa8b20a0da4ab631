"""How far a computation in a storage dtype may be from the same computation in float64.

One table, one row per dtype, two columns for the two different questions unembed asks
(see ``docs/feasibility.md``, "Tolerances"):

``probability`` (absolute, on ``max |p(x) - q(x)|`` over inputs and labels)
    The verdict of an equivalence check (:mod:`unembed.equivalence`): two heads or models are
    called the same classifier when their probabilities agree this closely. It is a *claim*, so
    it is tight: it allows only what rounding the weights to the dtype costs. (For softmax,
    ``|dp_i| <= max_j |dz_j| / 2``, since a row of the softmax Jacobian has absolute sum
    ``2 p_i (1 - p_i) <= 1/2``; a float32 head rounds each logit by about
    ``2**-24 * sum_k |W_ik h_k|``, far below 1e-4 for the scales of real models.)

``logits`` (relative, on ``max |z_model - z_head| <= logits * (1 + max |z_model|)``)
    The structural check of a source: the model's *own* logits, computed in its own precision
    through its own kernels, must equal ``head.logits(hidden state)`` computed in float64.
    It tells an architecture read correctly (errors of rounding size) from one read wrongly
    (errors of the size of the logits), so it allows the model's low-precision arithmetic
    (accumulation over d terms, bfloat16 outputs with 8 significant bits): looser. A final
    norm is checked the same way with ten times this bound (its output is normalised by a
    computed statistic, one more rounding).

``lp_rtol`` (relative, the default ``rtol`` of every feasibility LP, :mod:`unembed.feasibility`)
    A margin below ``rtol`` times the largest value a row can take in the unit box is not a
    "yes". Rounding the weights to the dtype (unit roundoff u) moves a row's value at any h in
    the unit box by at most u sum_j |u_kj|, at most u/2 of that scale, so a row that is a
    convex combination of others, then rounded, sticks out of their hull by up to u/2 of it:
    ``lp_rtol`` is 8 u for float16 and bfloat16 (16x that), and 1e-6 for float32 and float64
    (16x float32's u/2 = 3e-8; for float64 the LP solver's own tolerances, about 1e-9 after
    scaling, are the limit, not the storage).

The columns differ on purpose: the first decides a claim about probabilities, the second
refuses a model that is not what it was read as, the third says which margins the storage
dtype can tell from zero. A dtype not in the table is treated as
float32 (the precision in which every supported source computes by default).

Examples
--------
>>> tolerance("bfloat16").probability, tolerance("bfloat16").logits
(0.03, 0.08)
>>> coarsest("float32", "bfloat16", "float64")
'bfloat16'
>>> tolerance("int8") == tolerance("float32")
True
>>> tolerance("float16").lp_rtol == 8 * 2.0**-11
True
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TOLERANCES", "Tolerance", "coarsest", "tolerance"]


@dataclass(frozen=True)
class Tolerance:
    """The two tolerances of one dtype (see the module docstring)."""

    #: absolute bound on max |p - q| for a verdict of equivalence
    probability: float
    #: relative bound (times 1 + max |z|) on the model's logits against the float64 head's
    logits: float
    #: the default relative tolerance of the feasibility LPs for heads stored in this dtype
    lp_rtol: float = 1e-6


#: One row per storage dtype, finest first.
TOLERANCES: dict[str, Tolerance] = {
    "float64": Tolerance(probability=1e-12, logits=1e-9),
    "float32": Tolerance(probability=1e-4, logits=2e-4),
    "float16": Tolerance(probability=1e-2, logits=2e-2, lp_rtol=8 * 2.0**-11),
    "bfloat16": Tolerance(probability=3e-2, logits=8e-2, lp_rtol=8 * 2.0**-8),
}

_DEFAULT = "float32"


def tolerance(dtype: str) -> Tolerance:
    """The row of ``dtype`` (float32's for a dtype not in the table)."""
    return TOLERANCES.get(dtype, TOLERANCES[_DEFAULT])


def coarsest(*dtypes: str) -> str:
    """The coarsest of some dtypes by the table's order (float32 when none is in the table)."""
    order = list(TOLERANCES)
    known = [d for d in dtypes if d in TOLERANCES]
    return max(known, key=order.index) if known else _DEFAULT
