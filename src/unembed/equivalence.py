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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from unembed._checks import UnembedError, check_hidden
from unembed._tolerance import TOLERANCES, coarsest
from unembed._tolerance import tolerance as tolerance_of
from unembed.head import Head, Link

if TYPE_CHECKING:
    from unembed._logit_figures import Sums
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
    """Compare two models' logits of shape (n, V) on the same inputs (computed in float64; the
    figures of :mod:`unembed._logit_figures`)."""
    from unembed._logit_figures import Reference, compare_with

    a = np.asarray(z1, dtype=np.float64)
    b = np.asarray(z2, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise UnembedError(f"must have the same shape (n, V) as 'z1'. Got "
                                                f"shapes {np.shape(z1)} and {np.shape(z2)} "
                           f"instead", argument="z2", function="compare_logits")
    sums = compare_with(Reference(a, link), np.array(b, copy=True))
    tol = tolerance_of(dtype).probability if tolerance is None else tolerance
    return _from_sums(sums, dtype, tol)


def _from_sums(sums: Sums, dtype: str, tol: float) -> Equivalence:
    """The Equivalence record of figures summed over inputs (the mean KL clamped at 0: KL is
    never negative, a negative sum is rounding)."""
    n = sums.n
    return Equivalence(
        n_inputs=n,
        max_abs_dp=sums.max_abs_dp,
        max_abs_dlogp=sums.max_abs_dlogp,
        mean_kl=max(sums.kl_sum / n, 0.0) if n else 0.0,
        argmax_agreement=sums.agree / n if n else 1.0,
        dtype=dtype,
        tolerance=tol,
        equivalent=bool(sums.max_abs_dp <= tol),
    )


#: How many of the random states set their scale (:func:`random_hidden`).
_SPREAD_STATES = 64


def random_hidden(head: Head, n: int = 256, *, seed: int = 0) -> NDArray[np.float64]:
    """n random hidden states (n, d), float64, scaled so that the logits of ``head`` spread
    over a few units (a quarter of them ten times larger, so that near one-hot predictions are
    tested too): drawn from N(0, I / d), then scaled by 3 / sigma, sigma the standard deviation
    over the n' V entries of z - rowmean(z), z = H' W^T, H' the first n' = min(n, 64) states
    (:func:`_logit_spread`). sigma only sets the states' scale (logits that spread over a few
    units, not an exact figure): 64 states measure it at 64 / n of the cost of all n (one
    n' x V x d product; all n would cost as much as a verification of one head)."""
    rng = np.random.default_rng([seed, 0x5EED])  # not the stream a user's seed 0 gives
    H = rng.standard_normal((n, head.d)) / np.sqrt(head.d)
    spread = _logit_spread(head, H[:_SPREAD_STATES])
    H *= 3.0 / spread if spread > 0 else 1.0
    H[: n // 4] *= 10.0
    return H


def _logit_spread(head: Head, H: NDArray[np.float64]) -> float:
    """The standard deviation over all n V entries of z - rowmean(z), z = H W^T (bias, scale
    and cap left out), from per-input sums over blocks of rows: sum_k (z_k - zbar)^2 =
    sum_k y_k^2 - (sum_k y_k)^2 / V with y_k = z_k - z_0 (the first label's logit as the
    shift, so that no digits cancel when the rows share a large mean). Every block of rows is
    read once and multiplied with all inputs (up to 2^22 / block at a time): the product runs
    at BLAS speed, and no (n, V) array is formed."""
    from unembed._blocks import row_blocks, rows_per_block

    n, V = H.shape[0], head.n_labels
    if n == 0 or V == 0:
        return 0.0
    z0 = H @ head.row_block(0, 1)[0]
    s1, s2 = np.zeros(n), np.zeros(n)
    step = max(1, 2**22 // rows_per_block(head.d))
    for a, e in row_blocks(V, head.d):
        B = head.row_block(a, e)
        for s in range(0, n, step):
            T = H[s:s + step] @ B.T
            T -= z0[s:s + step, None]
            s1[s:s + step] += T.sum(axis=1)
            s2[s:s + step] += np.einsum("ij,ij->i", T, T)
    total2 = float(np.sum(s2 - s1 * s1 / V))
    return float(np.sqrt(max(total2 / (n * V), 0.0)))


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


@dataclass(frozen=True)
class StoredRows:
    """A second head given by its rows, read block by block: ``rows(start, stop)`` returns
    rows start..stop (any float dtype) of a (V, d) matrix with the first head's bias, link,
    logit scale and soft-cap; ``dtype`` is its storage dtype (for the tolerance)."""

    rows: Callable[[int, int], NDArray[Any]]
    dtype: str


@dataclass(frozen=True)
class Translated:
    """The first head with every row moved by ``c`` (d,): rows u_k + c. Moving every row by c
    adds h.c to every label's W h, so its logits are formed from the first head's as
    s (W h + b + h.c) (then soft-capped, for a soft-capped head): exactly what the translation
    does to them, without forming the rows u_k + c. Comparing them checks what the construction
    claims (the same probabilities, in float64; not so for a sigmoid or soft-capped head, for
    which the translation is no symmetry), not the arithmetic of the moved rows: the rows as
    written are checked by their own products (:class:`StoredRows`). The tolerance follows the
    first head's dtype."""

    c: NDArray[np.float64]
    dtype: str = "float64"


def compare_head_rows(
    head: Head, rows: Callable[[int, int], NDArray[Any]], dtype: str, h: ArrayLike | None = None,
    *, n_random: int = 256, seed: int = 0,
) -> Equivalence:
    """Compare ``head`` with a second head given by its rows, read block by block
    (:class:`StoredRows`). Used to verify a head written to a file without reading it whole:
    memory is O(chunk x V + block), whatever V is.
    """
    return compare_head_rows_many(head, [StoredRows(rows, dtype)], h, n_random=n_random,
                                  seed=seed)[0]


def compare_head_rows_many(
    head: Head, others: Sequence[StoredRows | Translated], h: ArrayLike | None = None, *,
    n_random: int = 256, seed: int = 0,
) -> list[Equivalence]:
    """Compare ``head`` with several second heads on the same inputs ``h`` (n, d) (default:
    ``n_random`` of :func:`random_hidden`), in one pass over chunks of inputs: ``head``'s own
    logits, normaliser and probabilities are formed once per chunk from its rows block by block
    (``head.row_block``, never the whole matrix) and each other head's figures computed against
    them in place (:mod:`unembed._logit_figures`): the same figures as one
    :func:`compare_logits` per head on the whole logits."""
    from unembed._logit_figures import EMPTY, Reference, block_logits, compare_with

    H = random_hidden(head, n_random, seed=seed) if h is None else check_hidden(h, head.d)
    n, V = H.shape[0], head.n_labels
    capped = head.softcap is not None and any(isinstance(o, Translated) for o in others)
    m = _inputs_per_chunk(n, V, head.d, 5 if capped else 4)
    z1, p, z2, scratch = (np.empty((m, V)) for _ in range(4))
    pre = np.empty((m, V)) if capped else None
    sums = [EMPTY for _ in others]
    threads = _threads()
    with ThreadPoolExecutor(threads) as pool:
        for s in range(0, n, m):
            Hc = H[s:s + m]
            k = Hc.shape[0]
            pre_k = None if pre is None else pre[:k]
            block_logits(head, Hc, z1[:k], pre_cap=pre_k, pool=pool)
            # the entries' work (exp, sums, maxima) in row spans on every core: numpy releases
            # the GIL in its loops; BLAS already uses every core for the products
            spans = _spans(k, V, threads)
            refs = list(pool.map(lambda a: Reference(z1[a[0]:a[1]], head.link, p[a[0]:a[1]]),
                                 spans))
            for o, other in enumerate(others):
                if isinstance(other, StoredRows):
                    block_logits(head, Hc, z2[:k], rows=other.rows, pool=pool)
                elif pre_k is None:
                    np.add(z1[:k], head.logit_scale * (Hc @ other.c)[:, None], out=z2[:k])
                else:
                    assert head.softcap is not None
                    np.add(pre_k, head.logit_scale * (Hc @ other.c)[:, None], out=z2[:k])
                    z2[:k] /= head.softcap
                    np.tanh(z2[:k], out=z2[:k])
                    z2[:k] *= head.softcap
                for t in pool.map(lambda r, a: compare_with(r, z2[a[0]:a[1]],
                                                            scratch[a[0]:a[1]]), refs, spans):
                    sums[o] = sums[o] + t
    return [_from_sums(t, *tolerance_for(head.dtype, o.dtype)) for t, o in zip(sums, others)]


def _threads() -> int:
    """Threads for the entries' work: the machine's cores (at most 4)."""
    import os

    return max(1, min(4, os.cpu_count() or 1))


def _spans(k: int, V: int, threads: int) -> list[tuple[int, int]]:
    """Rows 0..k in ``threads`` spans of about equal size (one span below 2^20 entries, where
    a thread would cost more than it saves)."""
    parts = max(1, min(threads, k, k * V >> 20))
    from itertools import pairwise

    return list(pairwise(k * i // parts for i in range(parts + 1)))


def _inputs_per_chunk(n: int, V: int, d: int, arrays: int) -> int:
    """Inputs per chunk of :func:`compare_head_rows_many`, whose chunk holds ``arrays`` float64
    (chunk, V) arrays: as many as fit together in max(256 MiB, half the float64 head 8 V d)
    (so that the command stays within the memory one float64 copy of the head would take),
    spread evenly over the n inputs. Every chunk reads and widens each head's rows once more
    (a pass over the file per head and chunk), so fewer, larger chunks."""
    most = max(1, max(1 << 28, 4 * V * d) // (8 * max(V, 1) * arrays))
    chunks = max(1, -(-n // most))
    return max(1, -(-n // chunks))


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
