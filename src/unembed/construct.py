"""Equivalent heads with chosen cosines (docs/symmetries.md, "Translation").

For a softmax head, translating every row by c changes no probability; these functions solve
for the c that gives chosen raw cosines, then check the result before returning it: the cosine
is recomputed in float64 from the new rows, and the probabilities of the old and new heads are
compared on the caller's hidden states (or on random ones).

Closed forms for one pair (i, j), with delta = u_i - u_j and e a unit vector orthogonal to
delta: every translation makes u_i + c = s delta + w and u_j + c = (s - 1) delta + w with
w orthogonal to delta, and

* target -1: s in (0, 1), w = 0;
* target +1: s > 1 or s < 0, w = 0;
* target tau in (-1, 1): s = 1/2, w = t e with t = (|delta| / 2) sqrt((1 + tau) / (1 - tau)),

then c = s delta + w - u_i. Among all translations reaching the target, the one of least norm
is found by minimising |c| over (s, |w|) on the target's level set (a one-dimensional search,
refined to machine precision). It is not always the answer: where no least-norm translation
exists (the infimum puts a row at zero, whose cosine is undefined), for targets in (-1, 1) where
the least-norm point would bring a row closer to zero than |u_a - u_b| / 20, and where the
search misses the target, a safe interior choice is made instead (the closed form with s in
(0, 1) or s = 2 / -1, the least norm under that floor, or s = 1/2); ``method`` says which.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from unembed._checks import UnembedError, check_in_range
from unembed.equivalence import Equivalence, compare_heads
from unembed.gauges import symmetries, translate
from unembed.head import Head, LabelRef
from unembed.views import cosine

__all__ = [
    "AllPairsConstruction",
    "CosineConstruction",
    "CosineTranslation",
    "MultiConstruction",
    "PairCosine",
    "cosine_translation",
    "row_cosine",
    "translation_for_all_pairs",
    "translation_for_cosine",
    "translation_for_cosines",
]

COSINE_TOL = 1e-9


def row_cosine(u: NDArray[np.float64], v: NDArray[np.float64]) -> float:
    """cos(u, v) = u.v / (|u| |v|) of two rows, float64, clipped to [-1, 1]."""
    return float(np.clip(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)), -1.0, 1.0))


def _require_translation(head: Head, func: str) -> None:
    sym = symmetries(head)["translation"]
    if not sym.holds:
        raise UnembedError(f"Translation is not a symmetry of this head ({sym.reason}); no "
                           f"translation "
                           f"gives an equivalent model.")


def _stored(head: Head) -> Head:
    """The head as it would be after writing its weights in its storage dtype (float16 and
    float32 rounded by numpy; bfloat16, which numpy lacks, by torch: such a head came from a
    torch checkpoint)."""
    if head.dtype in ("float64",):
        return head
    if head.dtype == "bfloat16":
        import torch

        t = torch.from_numpy(np.array(head.W)).to(torch.bfloat16)
        return head.with_weights(t.to(torch.float64).numpy())
    try:
        dt = np.dtype(head.dtype)
    except TypeError:
        return head
    return head.with_weights(head.W.astype(dt).astype(np.float64))


@dataclass(frozen=True)
class CosineConstruction:
    """An equivalent head in which one pair's raw cosine is a chosen target.

    ``c`` (d,) is the translation; ``head`` the translated head (float64 weights; ``head.dtype``
    is the storage dtype of the original). ``cosine_after`` is recomputed in float64 from the
    new rows; ``cosine_after_stored`` after rounding the new rows to the storage dtype.
    ``equivalence`` compares old and new heads on hidden states.
    """

    labels: tuple[str, str]
    target: float
    c: NDArray[np.float64]
    head: Head
    cosine_before: float
    cosine_after: float
    cosine_after_stored: float
    equivalence: Equivalence
    method: str

    @property
    def reached(self) -> bool:
        return abs(self.cosine_after - self.target) <= COSINE_TOL

    def __repr__(self) -> str:
        """One line: the pair, its cosine before and after, and the equivalence verdict."""
        a, b = self.labels
        return (f"CosineConstruction({a!r}, {b!r}: raw cosine {self.cosine_before:+.4f} -> "
                f"{self.cosine_after:+.4f}, target {self.target:+.4f} "
                f"({'reached' if self.reached else 'not reached'}); |c| = "
                f"{float(np.linalg.norm(self.c)):.3g}; {self.equivalence!r})")

    def _repr_html_(self) -> str:
        from unembed._display import html

        return html("construction", self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pair": list(self.labels),
            "target": self.target,
            "cosine_before": self.cosine_before,
            "cosine_after": self.cosine_after,
            "cosine_after_stored": self.cosine_after_stored,
            "stored_dtype": self.head.dtype,
            "reached": self.reached,
            "translation_norm": float(np.linalg.norm(self.c)),
            "method": self.method,
            "equivalence": self.equivalence.to_dict(),
        }


def _level_set_t2(s: float, D: float, tau: float) -> float | None:
    """|w|^2 = T >= 0 with cos(s delta + w, (s-1) delta + w) = tau, |delta|^2 = D; None if
    none. Squaring (P + T)^2 = tau^2 (A + T)(B + T) with A = s^2 D, B = (s-1)^2 D, P^2 = A B."""
    A, B, P = s * s * D, (s - 1) ** 2 * D, s * (s - 1) * D
    qa = 1 - tau * tau
    qb = 2 * P - tau * tau * (A + B)
    qc = qa * A * B
    disc = qb * qb - 4 * qa * qc
    if disc < 0:
        return None
    best = None
    for T in ((-qb + np.sqrt(disc)) / (2 * qa), (-qb - np.sqrt(disc)) / (2 * qa)):
        # The squared equation loses digits near a double root: polish on the cosine itself,
        # g(T) = (P + T) / sqrt((A + T)(B + T)), by Newton's method.
        T = max(float(T), 0.0)
        for _ in range(8):
            q = (A + T) * (B + T)
            if q <= 0:
                break
            g = (P + T) / np.sqrt(q) - tau
            with np.errstate(all="ignore"):
                dg = (q - (P + T) * (A + B + 2 * T) / 2) / q**1.5
            if not np.isfinite(dg) or dg == 0:
                break
            T = max(T - g / dg, 0.0)
        q = (A + T) * (B + T)
        if q <= 0 or abs((P + T) / np.sqrt(q) - tau) > 1e-14:
            continue
        if best is None or T < best:
            best = float(T)
    return best


def _solve_pair(ui: NDArray[np.float64], uj: NDArray[np.float64], tau: float
                ) -> tuple[NDArray[np.float64], str]:
    delta = ui - uj
    D = float(delta @ delta)
    nd = np.sqrt(D)
    dhat = delta / nd
    alpha = float(ui @ delta) / D  # u_i = alpha delta + p, p orthogonal to delta
    p = ui - alpha * delta
    pn = float(np.linalg.norm(p))
    if tau == -1.0:
        if 0.0 < alpha < 1.0:
            return alpha * delta - ui, "closed form, target -1: least-norm translation"
        s = min(max(alpha, 0.25), 0.75)
        return s * delta - ui, (f"closed form, target -1: s = {s:g} (no least-norm translation: "
                                f"the infimum puts a row at zero)")
    if tau == 1.0:
        if alpha > 1.0 or alpha < 0.0:
            return alpha * delta - ui, "closed form, target +1: least-norm translation"
        s = 2.0 if alpha >= 0.5 else -1.0
        return s * delta - ui, (f"closed form, target +1: s = {s:g} (no least-norm translation: "
                                f"the infimum puts a row at zero)")
    if ui.shape[0] < 2:
        raise UnembedError(f"must be -1 or +1 on this head: a target strictly inside (-1, 1) needs "
                           f"d >= 2, and this head has d = {ui.shape[0]}", argument="target",
                           function="translation_for_cosine", got=tau)
    if pn > 1e-12 * max(1.0, float(np.linalg.norm(ui))):
        e = p / pn
    else:  # any unit vector orthogonal to delta
        k = int(np.argmin(np.abs(dhat)))
        e = np.zeros_like(ui)
        e[k] = 1.0
        e -= (e @ dhat) * dhat
        e /= np.linalg.norm(e)

    # Keep both new rows at least |delta| / 20 long: near a zero row the cosine is ill-posed.
    floor2 = D / 400

    def norm2(s: float) -> float:
        T = _level_set_t2(s, D, tau)
        if T is None or min(s * s, (s - 1) ** 2) * D + T < floor2:
            return np.inf
        return (s - alpha) ** 2 * D + (np.sqrt(T) - pn) ** 2

    # s = 1/2 is always on the level set; search s for the least norm.
    grid = np.concatenate([np.linspace(-4, 5, 721), [0.5, alpha]])
    vals = np.array([norm2(s) for s in grid])
    s0 = float(grid[int(np.argmin(vals))])
    from scipy.optimize import minimize_scalar

    with np.errstate(invalid="ignore", over="ignore"):
        res = minimize_scalar(norm2, bounds=(s0 - 0.02, s0 + 0.02), method="bounded",
                              options={"xatol": 1e-13})
    s = float(res.x) if np.isfinite(res.fun) and res.fun <= norm2(s0) else s0
    T = _level_set_t2(s, D, tau)
    if T is None:  # pragma: no cover - s0 is on the level set by construction
        s, T = 0.5, (D / 4) * (1 + tau) / (1 - tau)
    c = s * delta + np.sqrt(T) * e - ui
    if abs(row_cosine(ui + c, uj + c) - tau) > COSINE_TOL:
        t = (nd / 2) * np.sqrt((1 + tau) / (1 - tau))
        return 0.5 * delta + t * e - ui, "closed form s = 1/2 (least-norm search missed)"
    if min(s * s, (s - 1) ** 2) * D + T < 1.001 * floor2:
        return c, ("least-norm translation keeping both rows at least |u_a - u_b| / 20 long "
                   "(without that floor the infimum puts a row at zero)")
    return c, "least-norm translation (closed form on the target's level set)"


def translation_for_cosine(
    head: Head, a: LabelRef, b: LabelRef, target: float, *,
    inputs: ArrayLike | None = None, n_random: int = 256, seed: int = 0,
) -> CosineConstruction:
    """A translation c (d,) that makes cos(u_a + c, u_b + c) = target exactly.

    The translation of least norm where one exists. Where none does (the infimum would put a
    row at zero, whose cosine is undefined) or the search for it misses, an interior choice is
    made instead; ``method`` of the result says which (see the module docstring).

    Parameters
    ----------
    head : Head
        A softmax head without soft-capping (translation must be a symmetry).
    a, b : label or index
        The pair; their rows must differ.
    target : float in [-1, 1]
    inputs : array of shape (n, d), optional
        Hidden states on which the probabilities of old and new heads are compared; random
        ones (:func:`unembed.equivalence.random_hidden`) when None.

    Returns
    -------
    CosineConstruction
        With the translated head, the cosine recomputed in float64 and the equivalence check.
        Raises UnembedError if the recomputed cosine misses the target by more than 1e-9.

    Examples
    --------
    >>> import numpy as np
    >>> from unembed import Head
    >>> head = Head(np.array([[1.0, 1.0], [-1.0, 1.0], [0.0, 3.0]]), labels=["cat", "dog", "car"])
    >>> res = translation_for_cosine(head, "cat", "dog", -1.0)
    >>> res.c, round(res.cosine_before, 6), res.cosine_after
    (array([ 0., -1.]), 0.0, -1.0)
    >>> res.equivalence.equivalent, res.equivalence.max_abs_dp < 1e-15
    (True, True)
    """
    t = cosine_translation(head, a, b, target)
    i, j = head.index(a, argument="label a"), head.index(b, argument="label b")
    new = translate(head, t.c)
    after = row_cosine(new.W[i], new.W[j])
    if abs(after - t.target) > COSINE_TOL:
        raise UnembedError(f"The recomputed cosine {after!r} misses the target {t.target!r} by "
                           f"more "
                           f"than {COSINE_TOL:g} (rows too ill-conditioned).")
    return CosineConstruction(
        labels=t.labels,
        target=t.target,
        c=t.c,
        head=new,
        cosine_before=t.cosine_before,
        cosine_after=after,
        cosine_after_stored=t.cosine_after_stored,
        equivalence=compare_heads(head, new, inputs, n_random=n_random, seed=seed),
        method=t.method,
    )


@dataclass(frozen=True)
class CosineTranslation:
    """The translation c (d,) that puts one pair's raw cosine at a target, without the
    translated head: O(d) memory (what a command on a large head writes block by block).
    ``cosine_after`` is recomputed in float64 from the two translated rows,
    ``cosine_after_stored`` after rounding them to the storage dtype."""

    labels: tuple[str, str]
    indices: tuple[int, int]
    target: float
    c: NDArray[np.float64]
    cosine_before: float
    cosine_after: float
    cosine_after_stored: float
    stored_dtype: str
    method: str

    @property
    def reached(self) -> bool:
        return abs(self.cosine_after - self.target) <= COSINE_TOL

    def __repr__(self) -> str:
        a, b = self.labels
        return (f"CosineTranslation({a!r}, {b!r}: raw cosine {self.cosine_before:+.4f} -> "
                f"{self.cosine_after:+.4f}, target {self.target:+.4f} "
                f"({'reached' if self.reached else 'not reached'}); |c| = "
                f"{float(np.linalg.norm(self.c)):.3g})")


def cosine_translation(head: Head, a: LabelRef, b: LabelRef, target: float) -> CosineTranslation:
    """The least-norm translation of :func:`translation_for_cosine`, checked on the pair's two
    rows only (O(d)); raises UnembedError when the recomputed cosine misses the target by more
    than 1e-9."""
    tau = check_in_range(target, "target", "translation_for_cosine", -1.0, 1.0)
    _require_translation(head, "translation_for_cosine")
    i, j = head.index(a, argument="label a"), head.index(b, argument="label b")
    if i == j:
        raise UnembedError("must name another label than 'a' (the pair must be two different "
                           "labels)", argument="b", function="translation_for_cosine",
                           got=head.labels[j])
    ui, uj = head.take_rows([i, j])  # two rows: a head read from a file stays there
    if np.array_equal(ui, uj):
        raise UnembedError(f"Labels {head.labels[i]!r} and {head.labels[j]!r} have identical "
                           f"rows; no "
                           f"translation changes their cosine (it stays 1).")
    c, method = _solve_pair(ui, uj, tau)
    after = row_cosine(ui + c, uj + c)
    if abs(after - tau) > COSINE_TOL:
        raise UnembedError(f"The recomputed cosine {after!r} misses the target {tau!r} by more "
                           f"than "
                           f"{COSINE_TOL:g} (rows too ill-conditioned).")
    pair = _round_to(np.stack([ui + c, uj + c]), head.dtype)
    return CosineTranslation((head.labels[i], head.labels[j]), (i, j), tau, c,
                             cosine(head, i, j, "raw"), after, row_cosine(pair[0], pair[1]),
                             head.dtype, method)


def stored_cosine(head: Head, pair: tuple[int, int], c: NDArray[np.float64], dtype: str
                  ) -> float:
    """The cosine of the pair's translated rows u + c as they are after being stored in
    ``dtype`` (each rounded to it, then compared in float64)."""
    i, j = pair
    rows = _round_to(head.take_rows([i, j]) + c, dtype)
    return row_cosine(rows[0], rows[1])


def _round_to(x: NDArray[np.float64], dtype: str) -> NDArray[np.float64]:
    """Values as they are after being stored in ``dtype`` (float64 again)."""
    if dtype == "float64":
        return x
    if dtype == "bfloat16":
        from unembed._storage import to_storage

        bits = to_storage(x, "bf16").astype(np.uint32) << np.uint32(16)
        return bits.view(np.float32).astype(np.float64)
    try:
        return x.astype(np.dtype(dtype)).astype(np.float64)
    except TypeError:
        return x


@dataclass(frozen=True)
class AllPairsConstruction:
    """One translation that puts every pair's raw cosine at or above ``1 - eps``.

    ``min_cosine_bound`` is a proven lower bound on every pairwise cosine of the new rows:
    with theta_i the angle between u_i + c and the direction of c, every pair has cosine
    >= cos(2 max_i theta_i). It is computed in O(V d), without forming all V^2 pairs.
    """

    eps: float
    c: NDArray[np.float64]
    head: Head
    min_cosine_bound: float
    equivalence: Equivalence

    def __repr__(self) -> str:
        """One line: the bound reached on every pair's cosine and the equivalence verdict."""
        ok = self.min_cosine_bound >= 1 - self.eps
        return (f"AllPairsConstruction(every raw cosine >= {self.min_cosine_bound:.6f} "
                f"(sought >= 1 - {self.eps:.2g}: {'reached' if ok else 'not reached'}) over "
                f"{self.head.n_labels} labels; {self.equivalence!r})")

    def _repr_html_(self) -> str:
        from unembed._display import html

        return html("construction", self)

    def to_dict(self) -> dict[str, Any]:
        return {"eps": self.eps, "min_cosine_bound": self.min_cosine_bound,
                "reached": self.min_cosine_bound >= 1 - self.eps,
                "translation_norm": float(np.linalg.norm(self.c)),
                "equivalence": self.equivalence.to_dict()}


def translation_for_all_pairs(
    head: Head, eps: float = 1e-3, *, inputs: ArrayLike | None = None, n_random: int = 256,
    seed: int = 0,
) -> AllPairsConstruction:
    """c = R e with R = 1.01 max_i |u_i| / sin(arccos(1 - eps) / 2), e the unit mean direction
    (or the first axis): every pairwise cosine of the translated rows is >= 1 - eps."""
    eps = check_in_range(eps, "eps", "translation_for_all_pairs", 0.0, 2.0)
    if eps <= 0:
        raise UnembedError("must be > 0", argument="eps", function="translation_for_all_pairs",
                           got=eps)
    _require_translation(head, "translation_for_all_pairs")
    m = head.W.mean(axis=0)
    e = m / np.linalg.norm(m) if np.linalg.norm(m) > 0 else np.eye(head.d)[0]
    half = np.arccos(max(1 - eps, -1.0)) / 2
    R = 1.01 * float(np.linalg.norm(head.W, axis=1).max()) / np.sin(half)
    c = R * e
    new = translate(head, c)
    rows = new.W
    cos_to_e = np.clip(rows @ e / np.linalg.norm(rows, axis=1), -1.0, 1.0)
    theta = float(np.arccos(cos_to_e).max())
    bound = float(np.cos(min(2 * theta, np.pi)))
    if bound < 1 - eps:
        raise UnembedError(f"The proven lower bound {bound!r} on every pairwise cosine misses "
                           f"1 - eps = {1 - eps!r}.")
    return AllPairsConstruction(eps, c, new, bound,
                                compare_heads(head, new, inputs, n_random=n_random, seed=seed))


@dataclass(frozen=True)
class PairCosine:
    """One pair of a multi-pair construction: its target, its raw cosine before, and the raw
    cosine ``cosine_after`` recomputed in float64 from the new rows. ``reached`` says whether
    that is within 1e-9 of the target (the same test as :attr:`CosineConstruction.reached`)."""

    labels: tuple[str, str]
    target: float
    cosine_before: float
    cosine_after: float

    @property
    def reached(self) -> bool:
        return abs(self.cosine_after - self.target) <= COSINE_TOL

    def to_dict(self) -> dict[str, Any]:
        return {"pair": list(self.labels), "target": self.target,
                "cosine_before": self.cosine_before, "cosine_after": self.cosine_after,
                "reached": self.reached}


@dataclass(frozen=True)
class MultiConstruction:
    """Several pairs' targets sought at once; what was reached is reported pair by pair."""

    c: NDArray[np.float64]
    A: NDArray[np.float64] | None
    head: Head
    pairs: tuple[PairCosine, ...] = ()
    equivalence: Equivalence | None = None

    @property
    def max_error(self) -> float:
        """max over pairs of |cosine_after - target|."""
        return max((abs(p.cosine_after - p.target) for p in self.pairs), default=0.0)

    def __repr__(self) -> str:
        """One line: how many pairs reached their targets, the largest miss, the verdict."""
        hit = sum(p.reached for p in self.pairs)
        eq = "not checked" if self.equivalence is None else repr(self.equivalence)
        return (f"MultiConstruction({len(self.pairs)} pairs, {hit} reached, max |cosine - "
                f"target| {self.max_error:.3g}; "
                f"{'translation and reparametrization' if self.A is not None else 'translation'}"
                f"; {eq})")

    def _repr_html_(self) -> str:
        from unembed._display import html

        return html("construction", self)

    def to_dict(self) -> dict[str, Any]:
        return {"pairs": [p.to_dict() for p in self.pairs], "max_error": self.max_error,
                "uses_reparametrization": self.A is not None,
                "translation_norm": float(np.linalg.norm(self.c)),
                "equivalence": None if self.equivalence is None else self.equivalence.to_dict()}


def translation_for_cosines(
    head: Head, targets: Mapping[tuple[LabelRef, LabelRef], float], *,
    reparametrize: bool = False, inputs: ArrayLike | None = None, n_random: int = 256,
    seed: int = 0, restarts: int = 8, maxiter: int = 2000,
) -> MultiConstruction:
    """Seek one translation (and, with ``reparametrize=True`` where the head allows it, an
    invertible A) so that several pairs reach their target raw cosines.

    Minimises sum over pairs of (cos(u_a' , u_b') - target)^2 with rows u' = (u + c) A^{-1}
    by L-BFGS-B in float64 (SciPy, with the exact gradient), from several starts. Not every
    set of targets is
    reachable by a translation (e.g. three labels pairwise at -1): the result reports target and
    reached value for every pair and never claims more. ``inputs`` / random hidden states check
    the probabilities; with A, the new head is compared on A h.
    """
    if not targets:
        raise UnembedError("must name at least one pair", argument="targets",
                           function="translation_for_cosines")
    _require_translation(head, "translation_for_cosines")
    if reparametrize and not symmetries(head)["reparametrization"].holds:
        raise UnembedError(f"must be False for this head: reparametrization is not known to be a "
                           f"symmetry of it ({symmetries(head)['reparametrization'].reason})",
                           argument="reparametrize", function="translation_for_cosines", got=True)
    pairs: list[tuple[int, int, float]] = []
    for (a, b), t in targets.items():
        i, j = head.index(a), head.index(b)
        if i == j:
            raise UnembedError("must name pairs of two different labels", argument="targets",
                               function="translation_for_cosines",
                               got=(head.labels[i], head.labels[j]))
        pairs.append((i, j, check_in_range(t, "target", "translation_for_cosines", -1, 1)))
    from scipy.optimize import minimize

    W = np.asarray(head.W, dtype=np.float64)
    I = np.array([p[0] for p in pairs])
    J = np.array([p[1] for p in pairs])
    T = np.array([p[2] for p in pairs], dtype=np.float64)
    d, q = head.d, len(pairs)
    rows0 = W[np.concatenate([I, J])]
    scale = float(np.linalg.norm(head.W, axis=1).mean())
    rng = np.random.default_rng(seed)
    eye = np.eye(d)

    def loss_grad(x: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        """L(c, M) = sum_p (cos(a_p, b_p) - t_p)^2 [+ 1e-4 |M^T M - I|_F^2] with a_p, b_p the
        rows (u + c) M of the pair, and its exact gradient: d cos / da = b / (|a| |b|)
        - cos a / |a|^2 (and the same for b), chained through a = (u + c) M."""
        c = x[:d]
        R0 = rows0 + c
        M = x[d:].reshape(d, d) if reparametrize else None
        R = R0 if M is None else R0 @ M
        a, b = R[:q], R[q:]
        na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
        cs = np.einsum("ij,ij->i", a, b) / (na * nb)
        g = 2.0 * (cs - T)
        ga = g[:, None] * (b / (na * nb)[:, None] - (cs / na**2)[:, None] * a)
        gb = g[:, None] * (a / (na * nb)[:, None] - (cs / nb**2)[:, None] * b)
        G = np.concatenate([ga, gb])  # dL/dR
        val = float(np.sum((cs - T) ** 2))
        if M is None:
            return val, G.sum(axis=0)
        E = M.T @ M - eye
        val += 1e-4 * float(np.sum(E * E))
        gM = R0.T @ G + 4e-4 * (M @ E)
        return val, np.concatenate([G.sum(axis=0) @ M.T, gM.ravel()])

    best: tuple[float, NDArray[np.float64], NDArray[np.float64] | None] | None = None
    for r in range(restarts):
        c0 = rng.standard_normal(d) * scale * (r > 0)
        x0 = c0
        if reparametrize:
            M0 = eye + 0.1 * (r > 0) * rng.standard_normal((d, d)) / np.sqrt(d)
            x0 = np.concatenate([c0, M0.ravel()])
        res = minimize(loss_grad, x0, jac=True, method="L-BFGS-B",
                       options={"maxiter": maxiter, "maxcor": 100, "ftol": 0.0, "gtol": 1e-14,
                                "maxls": 50})
        val = float(res.fun)
        x = np.asarray(res.x, dtype=np.float64)
        if best is None or val < best[0]:
            best = (val, x[:d].copy(), x[d:].reshape(d, d).copy() if reparametrize else None)
        if val < 1e-24:
            break
    assert best is not None
    _, c_np, M_np = best
    new = translate(head, c_np)
    A: NDArray[np.float64] | None = None
    h2 = None
    from unembed.equivalence import random_hidden

    H = random_hidden(head, n_random, seed=seed) if inputs is None else np.asarray(inputs, float)
    if M_np is not None:
        from unembed.gauges import reparametrize as _reparam

        A = np.asarray(np.linalg.inv(M_np), dtype=np.float64)
        new, _ = _reparam(new, A)
        h2 = H @ A.T
    report = tuple(PairCosine((head.labels[i], head.labels[j]), t, cosine(head, i, j, "raw"),
                              row_cosine(new.W[i], new.W[j])) for i, j, t in pairs)
    return MultiConstruction(c=c_np, A=A, head=new, pairs=report,
                             equivalence=compare_heads(head, new, H, h2=h2))
