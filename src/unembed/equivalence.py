"""Are two heads (or two models) the same classifier? Compare their probabilities on inputs.

Figures (all float64, over n inputs and all V labels):

* ``max_abs_dp``    max |p(x) - q(x)|
* ``max_abs_dlogp`` max |log p(x) - log q(x)|
* ``mean_kl``       mean over inputs of KL(p || q) (softmax: over labels; sigmoid: the sum of
  the per-label Bernoulli KLs)
* ``argmax_agreement`` share of inputs whose top label agrees (softmax), or whose on/off
  pattern at 1/2 agrees (sigmoid)

The verdict is "equivalent" when ``max_abs_dp`` is within a tolerance that follows the
coarsest storage dtype involved (:data:`TOLERANCE`; why these values: docs/feasibility.md,
"Tolerances").

Examples
--------
>>> import numpy as np
>>> from unembed import Head, translate
>>> head = Head(np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
>>> eq = compare_heads(head, translate(head, [3.0, -2.0]))     # same probabilities
>>> eq.equivalent, eq.max_abs_dp < 1e-12, eq.n_inputs
(True, True, 256)
>>> compare_heads(head, head.with_weights(head.W * 2.0)).equivalent   # a sharper model
False
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from unembed._checks import UnembedError, check_hidden
from unembed._tolerance import TOLERANCES, coarsest
from unembed._tolerance import tolerance as tolerance_of
from unembed.head import Head, Link, logits_to_log_probs

if TYPE_CHECKING:
    from unembed.model import LoadedModel

__all__ = [
    "TOLERANCE",
    "Equivalence",
    "compare_heads",
    "compare_logits",
    "compare_models",
    "compare_models_on",
    "describe_random_hidden",
    "merge_equivalences",
    "random_hidden",
]

#: Tolerance on max |delta p| for a claim of equivalence, by the coarsest weight dtype (the
#: ``probability`` column of :data:`unembed._tolerance.TOLERANCES`).
TOLERANCE: dict[str, float] = {k: t.probability for k, t in TOLERANCES.items()}


def tolerance_for(*dtypes: str) -> tuple[str, float]:
    """The coarsest of some dtypes and its tolerance on max |delta p|."""
    worst = coarsest(*dtypes)
    return worst, tolerance_of(worst).probability


@dataclass(frozen=True)
class Equivalence:
    """The figures of an equivalence check and its verdict (see module docstring)."""

    n_inputs: int
    max_abs_dp: float
    max_abs_dlogp: float
    mean_kl: float
    argmax_agreement: float
    dtype: str
    tolerance: float
    equivalent: bool

    @property
    def verdict(self) -> str:
        word = "EQUIVALENT" if self.equivalent else "NOT EQUIVALENT"
        rel = "<=" if self.equivalent else ">"
        return (f"{word}: max |dp| = {self.max_abs_dp:.3g} {rel} {self.tolerance:.0e} "
                f"({self.dtype} tolerance) on {self.n_inputs} inputs; max |dlog p| = "
                f"{self.max_abs_dlogp:.3g}, mean KL = {self.mean_kl:.3g}, argmax agreement "
                f"{100 * self.argmax_agreement:.2f}%")

    def __repr__(self) -> str:
        """One line: the verdict and the figure that decides it."""
        rel = "<=" if self.equivalent else ">"
        return (f"Equivalence({'equivalent' if self.equivalent else 'NOT equivalent'}: max |dp| "
                f"{self.max_abs_dp:.3g} {rel} {self.tolerance:.0e} ({self.dtype}) on "
                f"{self.n_inputs} inputs; argmax agreement {100 * self.argmax_agreement:.2f}%)")

    def _repr_html_(self) -> str:
        from unembed._display import html

        return html("equivalence", self)

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = asdict(self)
        d["verdict"] = self.verdict
        return d


def compare_logits(
    z1: ArrayLike, z2: ArrayLike, link: Link = "softmax", *, dtype: str = "float64",
    tolerance: float | None = None,
) -> Equivalence:
    """Compare two models' logits of shape (n, V) on the same inputs (computed in float64)."""
    a = np.asarray(z1, dtype=np.float64)
    b = np.asarray(z2, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise UnembedError(f"must have the same shape (n, V) as 'z1'. Got "
                                                f"shapes {np.shape(z1)} and {np.shape(z2)} "
                           f"instead", argument="z2", function="compare_logits")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        which = "z1" if not np.isfinite(a).all() else "z2"
        raise UnembedError("must be finite (it contains NaN or Inf)", argument=which,
                           function="compare_logits")
    lp, lq = logits_to_log_probs(a, link), logits_to_log_probs(b, link)
    p, q = np.exp(lp), np.exp(lq)
    if link == "softmax":
        kl = np.sum(p * (lp - lq), axis=1)
        agree = np.mean(a.argmax(axis=1) == b.argmax(axis=1))
    else:
        lp0, lq0 = logits_to_log_probs(-a, link), logits_to_log_probs(-b, link)
        kl = np.sum(p * (lp - lq) + (1 - p) * (lp0 - lq0), axis=1)
        agree = np.mean(np.all((a > 0) == (b > 0), axis=1))
    tol = tolerance_of(dtype).probability if tolerance is None else tolerance
    dt = dtype
    dp = float(np.max(np.abs(p - q))) if p.size else 0.0
    return Equivalence(
        n_inputs=int(a.shape[0]),
        max_abs_dp=dp,
        max_abs_dlogp=float(np.max(np.abs(lp - lq))) if p.size else 0.0,
        mean_kl=float(max(np.mean(kl), 0.0)) if p.size else 0.0,
        argmax_agreement=float(agree) if p.size else 1.0,
        dtype=dt,
        tolerance=tol,
        equivalent=bool(dp <= tol),
    )


def random_hidden(head: Head, n: int = 256, *, seed: int = 0) -> NDArray[np.float64]:
    """n random hidden states (n, d), float64, scaled so that the logits of ``head`` spread
    over a few units (a quarter of them ten times larger, so that near one-hot predictions are
    tested too)."""
    rng = np.random.default_rng([seed, 0x5EED])  # not the stream a user's seed 0 gives
    H = rng.standard_normal((n, head.d)) / np.sqrt(head.d)
    # spread = std over all entries of z - rowmean(z), z = H W^T, in chunks of inputs (never
    # an (n, V) matrix): Welford-free since each chunk's sums are exact enough in float64.
    total, total2, count = 0.0, 0.0, 0
    for s in range(0, n, _chunk(head.n_labels)):
        z = H[s:s + _chunk(head.n_labels)] @ head.W.T
        z -= z.mean(axis=1, keepdims=True)
        total += float(z.sum())
        total2 += float(np.einsum("ij,ij->", z, z))
        count += z.size
    mean = total / max(count, 1)
    spread = float(np.sqrt(max(total2 / max(count, 1) - mean * mean, 0.0)))
    H *= 3.0 / spread if spread > 0 else 1.0
    H[: n // 4] *= 10.0
    return H


def _chunk(V: int) -> int:
    """Inputs per chunk so that one (chunk, V) float64 array is about 16 MiB."""
    return max(1, int(2**21 // max(V, 1)))


def compare_heads(
    head1: Head, head2: Head, h: ArrayLike | None = None, *, n_random: int = 256, seed: int = 0,
    h2: ArrayLike | None = None,
) -> Equivalence:
    """Compare two heads on the same hidden states h (n, d) (random ones when None).

    ``h2`` gives the second head its own hidden states (after a reparametrisation, A h).
    The tolerance follows the coarser storage dtype of the two heads.
    """
    if head1.n_labels != head2.n_labels:
        raise UnembedError(f"must have as many labels as 'head1'. Got "
                                                  f"{head1.n_labels} and {head2.n_labels} labels",
                           argument="head2", function="compare_heads")
    if head1.link != head2.link:
        raise UnembedError(f"must have the link of 'head1'. Got links "
                                                  f"{head1.link!r} and {head2.link!r}",
                           argument="head2", function="compare_heads")
    H = random_hidden(head1, n_random, seed=seed) if h is None else check_hidden(h, head1.d)
    H2 = H if h2 is None else check_hidden(h2, head2.d, "h2")
    if H2.shape[1] != head2.d:
        raise UnembedError(f"must be given when the heads' d differ (hidden "
                                               f"states of d = {H2.shape[1]}, 'head2' has d = "
                                               f"{head2.d})", argument="h2",
                           function="compare_heads")
    dt, tol = tolerance_for(head1.dtype, head2.dtype)
    # In chunks of inputs, so memory stays at chunk x V whatever n is.
    chunk = _chunk(head1.n_labels)
    parts = [
        compare_logits(head1.logits(H[s:s + chunk]), head2.logits(H2[s:s + chunk]), head1.link,
                       dtype=dt, tolerance=tol)
        for s in range(0, H.shape[0], chunk)
    ]
    return merge_equivalences(parts)


def compare_head_rows(
    head: Head, rows: Callable[[int, int], NDArray[Any]], dtype: str, h: ArrayLike | None = None,
    *, n_random: int = 256, seed: int = 0, b: NDArray[np.float64] | None = None,
) -> Equivalence:
    """Compare ``head`` with a second head given by its rows, read block by block:
    ``rows(start, stop)`` returns rows start..stop (any float dtype) of a (V, d) matrix that
    has ``head``'s bias (or ``b``), link, logit scale and soft-cap. Used to verify a head
    written to a file without reading it whole: memory is O(chunk x V + block), whatever V is.
    ``dtype`` is the second head's storage dtype (for the tolerance).
    """
    return compare_head_rows_many(head, [(rows, dtype)], h, n_random=n_random, seed=seed,
                                  b=b)[0]


def compare_head_rows_many(
    head: Head, others: Sequence[tuple[Callable[[int, int], NDArray[Any]], str]],
    h: ArrayLike | None = None, *, n_random: int = 256, seed: int = 0,
    b: NDArray[np.float64] | None = None,
) -> list[Equivalence]:
    """:func:`compare_head_rows` for several second heads ``(rows, dtype)`` on the same
    inputs, in one pass: ``head``'s own logits are computed once per chunk of inputs and
    compared with each of the others' (the same figures as one call per head)."""
    from unembed._blocks import row_blocks

    H = random_hidden(head, n_random, seed=seed) if h is None else check_hidden(h, head.d)
    tols = [tolerance_for(head.dtype, dtype) for _, dtype in others]
    bias = head.b if b is None else b
    # (chunk, V) arrays of about V d / 32 entries (at least 2^22, 32 MiB): a dozen of them
    # live at once in compare_logits, so they stay a fraction of the head (or of a few hundred
    # MiB); each chunk reads every `rows` once, so fewer, larger chunks read the heads fewer
    # times and multiply at BLAS speed (a chunk of a few dozen inputs is bandwidth-bound).
    chunk = max(1, max(2**22, head.n_labels * head.d // 32) // max(head.n_labels, 1))
    parts: list[list[Equivalence]] = [[] for _ in others]
    for s in range(0, H.shape[0], chunk):
        Hc = H[s:s + chunk]
        z1 = head.logits(Hc)
        for o, (rows, _) in enumerate(others):
            z2 = np.empty((Hc.shape[0], head.n_labels))
            for a, e in row_blocks(head.n_labels, head.d):
                z2[:, a:e] = Hc @ np.asarray(rows(a, e), dtype=np.float64).T
            if bias is not None:
                z2 += bias
            if head.logit_scale != 1.0:
                z2 *= head.logit_scale
            if head.softcap is not None:
                z2 = head.softcap * np.tanh(z2 / head.softcap)
            dt, tol = tols[o]
            parts[o].append(compare_logits(z1, z2, head.link, dtype=dt, tolerance=tol))
    return [merge_equivalences(p) for p in parts]


def merge_equivalences(parts: list[Equivalence]) -> Equivalence:
    """Combine the figures of checks on disjoint sets of inputs (max of maxima, weighted
    means); the tolerance and dtype of the first part are kept."""
    if not parts:
        raise UnembedError("must hold at least one check", argument="parts",
                           function="merge_equivalences", got=parts)
    n = sum(p.n_inputs for p in parts)
    dp = max(p.max_abs_dp for p in parts)
    return Equivalence(
        n_inputs=n,
        max_abs_dp=dp,
        max_abs_dlogp=max(p.max_abs_dlogp for p in parts),
        mean_kl=sum(p.mean_kl * p.n_inputs for p in parts) / max(n, 1),
        argmax_agreement=sum(p.argmax_agreement * p.n_inputs for p in parts) / max(n, 1),
        dtype=parts[0].dtype,
        tolerance=parts[0].tolerance,
        equivalent=bool(dp <= parts[0].tolerance),
    )


def describe_random_hidden(H: NDArray[np.float64], seed: int | None = None) -> str:
    """What :func:`random_hidden` drew, in words: how many hidden states and their norms (the
    first quarter ten times larger than the rest), and the seed when given."""
    n = H.shape[0]
    norms = np.linalg.norm(H, axis=1)
    big, rest = norms[: n // 4], norms[n // 4:]
    text = f"{n} random hidden states of norm about {np.median(rest):.3g}"
    parts = [f"{big.size} of them ten times larger, about {np.median(big):.3g}"] if big.size else []
    parts += [] if seed is None else [f"seed {seed}"]
    return text + (f" ({'; '.join(parts)})" if parts else "")


def compare_models_on(model1: LoadedModel, model2: LoadedModel,
                      batches: Iterable[Any]) -> Equivalence:
    """Compare two loaded models end to end on batches of inputs both take (each model's own
    ``model_logits``), merged over the batches; the tolerance follows the coarser storage
    dtype of the two heads. Refused in one line when the models differ in labels or link."""
    from unembed.model import require_loaded

    h1 = require_loaded(model1, "compare_models").head
    h2 = require_loaded(model2, "compare_models").head
    _check_models(h1, h2)
    dt, tol = tolerance_for(h1.dtype, h2.dtype)
    parts = [compare_logits(model1.model_logits(b), model2.model_logits(b), h1.link, dtype=dt,
                            tolerance=tol) for b in batches]
    if not parts:
        raise UnembedError("must hold at least one batch of inputs (the data are empty)",
                           argument="batches", function="compare_models_on")
    return merge_equivalences(parts)


def _check_models(h1: Head, h2: Head) -> None:
    if h1.n_labels != h2.n_labels:
        raise UnembedError(f"must have as many labels as 'model1'. Got {h1.n_labels} and "
                           f"{h2.n_labels} labels", argument="model2", function="compare_models")
    if h1.link != h2.link:
        raise UnembedError(f"must have the link of 'model1'. Got links {h1.link!r} and "
                           f"{h2.link!r}", argument="model2", function="compare_models")


def compare_models(
    model1: LoadedModel, model2: LoadedModel, inputs: Any = None, *, n: int = 8,
    length: int = 16,
    seed: int = 0,
) -> Equivalence:
    """Compare two loaded models (:func:`unembed.load`) on the same inputs, end to end: each
    model's own forward pass (``model_logits``), not only their heads.

    ``inputs`` are what the models take (token ids (n, T) for language models, pixel arrays for
    image classifiers, feature matrices for scikit-learn); by default ``n`` random ones from
    ``model1.random_inputs`` (sequences of ``length`` tokens for language models). The
    tolerance follows the coarser storage dtype of the two heads.
    """
    from unembed.model import require_loaded

    h1 = require_loaded(model1, "compare_models").head
    h2 = require_loaded(model2, "compare_models").head
    _check_models(h1, h2)
    if inputs is None:
        inputs = model1.random_inputs(n, length, seed=seed)
    dt, tol = tolerance_for(h1.dtype, h2.dtype)
    return compare_logits(model1.model_logits(inputs), model2.model_logits(inputs), h1.link,
                          dtype=dt, tolerance=tol)
