"""The Head: what a classifier's logits are made of.

A head maps a hidden state h in R^d to logits

    z(h) = cap * tanh(s * (W h + b) / cap)     (soft-capped heads)
    z(h) = s * (W h + b)                        (all others)

with ``W`` of shape (V, d) (row i is the unembedding of label i), ``b`` of shape (V,) or
absent, a logit scale ``s`` (1 unless the model multiplies its logits) and an optional
soft-cap. The ``link`` turns logits into probabilities: ``softmax`` (one label per input) or
``sigmoid`` (each label on its own). See docs/model.md.

Weights are held in float64 for every computation; ``dtype`` records how they were stored, so
that exports can write them back the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from unembed._checks import (
    check_hidden,
    check_labels,
    check_matrix,
    check_vector,
    fail,
    find_identical_rows,
)

Link = Literal["softmax", "sigmoid"]
LabelRef = int | str

__all__ = ["Head", "LabelRef", "Link"]


def _frozen(a: NDArray[Any]) -> NDArray[Any]:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Head:
    """A classifier's output layer, exactly: ``W`` (V, d), ``b`` (V,) or None, labels, link.

    Parameters
    ----------
    W : array of shape (n_labels, d)
        The unembedding matrix; row i belongs to ``labels[i]``. Stored as float64.
    b : array of shape (n_labels,), optional
        The bias; None when the head has none (treated as zero).
    labels : sequence of n_labels unique strings, optional
        Defaults to "0".."V-1".
    link : {"softmax", "sigmoid"}
        How logits become probabilities.
    softcap : float, optional
        Logits pass through ``cap * tanh(z / cap)`` (Gemma 2). Translation and bias shift are
        then no longer symmetries: a uniform shift of z does not survive the tanh.
    logit_scale : float
        A positive factor applied to ``W h + b`` before the soft-cap (a temperature's inverse).
    reparam : bool or None
        Whether the module producing h ends in an affine map that can absorb an invertible A
        (h -> A h): True, False, or None when unknown (a bare weight file).
    null_space : array of shape (d, k), optional
        An orthonormal basis of directions orthogonal to every reachable hidden state (after
        LayerNorm with gain g: the direction 1/g). Rows may move along it freely.
    dtype : str
        The dtype the weights were stored in ("float32", "bfloat16", ...).
    meta : dict
        Provenance: source, final norm, whether its gain is folded in ("view": "raw" or
        "folded"), whether the head is tied to the input embedding, ...
    strict : bool
        Refuse all-zero rows and identical rows (default). Real checkpoints with padding rows
        can pass ``strict=False``; ``degenerate`` then lists what was found.

    Examples
    --------
    >>> import numpy as np
    >>> head = Head(np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]), labels=["cat", "dog", "car"])
    >>> head
    Head(V=3, d=2, link='softmax', dtype=float64)
    >>> head.probs([[2.0, 0.0]]).round(3)
    array([[0.867, 0.117, 0.016]])
    >>> head.index("dog"), head.index("#2")
    (1, 2)
    """

    W: NDArray[np.float64]
    b: NDArray[np.float64] | None = None
    labels: tuple[str, ...] = ()
    link: Link = "softmax"
    softcap: float | None = None
    logit_scale: float = 1.0
    reparam: bool | None = None
    null_space: NDArray[np.float64] | None = None
    dtype: str = "float64"
    meta: dict[str, Any] = field(default_factory=dict)
    strict: bool = True
    degenerate: dict[str, list[Any]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        where = str(self.meta.get("source", "")) or ""
        raw = np.asarray(self.W)
        if raw.dtype.kind == "f" and self.dtype == "float64" and raw.dtype != np.float64:
            object.__setattr__(self, "dtype", str(raw.dtype))
        w = check_matrix(raw, "W", where=where, allow_zero_rows=not self.strict)
        # One float64 copy, owned and read-only (the caller's array is never aliased).
        w64 = np.array(w, dtype=np.float64, order="C", copy=True)
        w64.setflags(write=False)
        v, d = w64.shape
        object.__setattr__(self, "W", w64)
        if self.b is not None:
            object.__setattr__(self, "b", _frozen(check_vector(self.b, "b", v, where=where)))
        object.__setattr__(self, "labels", check_labels(self.labels or None, v, where=where))
        if self.link not in ("softmax", "sigmoid"):
            raise fail(f"The 'link' argument of Head must be 'softmax' or 'sigmoid'. "
                       f"Got {self.link!r} instead.")
        if self.softcap is not None and not (np.isfinite(self.softcap) and self.softcap > 0):
            raise fail(f"The 'softcap' argument of Head must be a positive number. "
                       f"Got {self.softcap!r} instead.")
        if not (np.isfinite(self.logit_scale) and self.logit_scale > 0):
            raise fail(f"The 'logit_scale' argument of Head must be a positive number. "
                       f"Got {self.logit_scale!r} instead.")
        if self.null_space is not None:
            ns = np.asarray(self.null_space, dtype=np.float64)
            if ns.ndim == 1:
                ns = ns[:, None]
            if ns.shape[0] != d:
                raise fail(f"The 'null_space' argument of Head must have shape (d, k) with "
                           f"d = {d}. Got shape {ns.shape} instead.")
            q, _ = np.linalg.qr(ns)
            object.__setattr__(self, "null_space", _frozen(q))
        degenerate: dict[str, list[Any]] = {}
        zero = np.flatnonzero(~np.any(w64 != 0, axis=1))
        if zero.size:
            degenerate["zero_rows"] = [self.labels[i] for i in zero]
        same = find_identical_rows(w64)
        if same is not None:
            i, j = same
            if self.strict:
                raise fail(
                    f"The 'W'{' of ' + where if where else ''} has identical rows for labels "
                    f"{self.labels[i]!r} and {self.labels[j]!r} (rows {i} and {j}): the model "
                    f"cannot tell them apart by any input, and their cosine is 1 in every "
                    f"equivalent model. Pass strict=False to load it anyway."
                )
            degenerate["identical_rows"] = [[self.labels[i], self.labels[j]]]
        object.__setattr__(self, "degenerate", degenerate)
        object.__setattr__(self, "meta", dict(self.meta))

    # ------------------------------------------------------------------ shape and labels
    @property
    def n_labels(self) -> int:
        """V, the number of labels (rows)."""
        return int(self.W.shape[0])

    @property
    def d(self) -> int:
        """d, the width of the hidden state (columns)."""
        return int(self.W.shape[1])

    @property
    def bias(self) -> NDArray[np.float64]:
        """The bias as a (V,) float64 vector (zeros when the head has none)."""
        return self.b if self.b is not None else np.zeros(self.n_labels)

    def index(self, label: LabelRef, *, argument: str = "label") -> int:
        """Row index of a label: a label string, an int index, or "#N" for index N.

        Raises UnembedError naming the unknown label (with close matches).
        """
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            i = int(label)
            if not (0 <= i < self.n_labels):
                raise fail(f"The {argument!r} index {i} is out of range for a head with "
                           f"{self.n_labels} labels.")
            return i
        s = str(label)
        lookup = self._lookup()
        if s in lookup:
            return lookup[s]
        if s.startswith("#") and s[1:].isdigit():
            return self.index(int(s[1:]), argument=argument)
        near = difflib.get_close_matches(s, self.labels[:20000], n=3)
        hint = f" Did you mean {', '.join(repr(x) for x in near)}?" if near else ""
        raise fail(f"Unknown {argument} {s!r}: not among the {self.n_labels} labels of this head "
                   f"(use '#N' for row N).{hint}")

    def indices(self, labels: Sequence[LabelRef], *, argument: str = "label") -> list[int]:
        """Row indices of several labels (see :meth:`index`)."""
        return [self.index(x, argument=argument) for x in labels]

    def _lookup(self) -> dict[str, int]:
        cached = self.__dict__.get("_label_index")
        if cached is None:
            cached = {s: i for i, s in enumerate(self.labels)}
            object.__setattr__(self, "_label_index", cached)
        return cached

    # ------------------------------------------------------------------ forward
    def logits(self, h: ArrayLike) -> NDArray[np.float64]:
        """Logits z of shape (n, V) for hidden states h of shape (n, d) or (d,), in float64."""
        hh = check_hidden(h, self.d)
        z = hh @ self.W.T
        if self.b is not None:
            z = z + self.b
        if self.logit_scale != 1.0:
            z = z * self.logit_scale
        if self.softcap is not None:
            z = self.softcap * np.tanh(z / self.softcap)
        return z

    def log_probs(self, h: ArrayLike) -> NDArray[np.float64]:
        """Log-probabilities (n, V) in float64: log-softmax over labels, or for a sigmoid head
        log p(label on) = -log(1 + exp(-z)) per label."""
        return logits_to_log_probs(self.logits(h), self.link)

    def probs(self, h: ArrayLike) -> NDArray[np.float64]:
        """Probabilities (n, V) in float64 (rows sum to 1 for softmax; independent for sigmoid)."""
        return np.exp(self.log_probs(h))

    # ------------------------------------------------------------------ new heads
    def with_weights(
        self, W: ArrayLike | None = None, b: ArrayLike | Literal["keep"] | None = "keep",
        meta: dict[str, Any] | None = None,
    ) -> Head:
        """A new head with other weights (and bias), the same labels, link and known
        structure; ``meta`` entries are added to a copy of this head's."""
        new_b = self.b if isinstance(b, str) else (None if b is None else np.asarray(b, float))
        return replace(
            self,
            W=np.asarray(self.W if W is None else W, dtype=np.float64),
            b=new_b,
            meta={**self.meta, **(meta or {})},
        )

    def subset(self, labels: Sequence[LabelRef]) -> Head:
        """The head restricted to some labels (rows), in the given order."""
        idx = self.indices(labels)
        return replace(
            self,
            W=self.W[idx],
            b=None if self.b is None else self.b[idx],
            labels=tuple(self.labels[i] for i in idx),
            meta={**self.meta, "subset_of": self.n_labels},
        )

    def translate(self, c: ArrayLike, *, force: bool = False) -> Head:
        """Rows u_i + c (see :func:`unembed.gauges.translate`)."""
        from unembed.gauges import translate

        return translate(self, c, force=force)

    def center(self, weights: ArrayLike | None = None, *, force: bool = False) -> Head:
        """Rows u_i - sum_k w_k u_k (see :func:`unembed.gauges.center`)."""
        from unembed.gauges import center

        return center(self, weights, force=force)

    def _repr_html_(self) -> str:
        """A table for notebooks: shape, link, dtype, rows, source, labels, row norms."""
        from unembed._reprs import head_html

        return head_html(self)

    def __repr__(self) -> str:
        extra = []
        if self.b is not None:
            extra.append("bias")
        if self.softcap is not None:
            extra.append(f"softcap={self.softcap:g}")
        if self.meta.get("view"):
            extra.append(f"view={self.meta['view']}")
        tail = (", " + ", ".join(extra)) if extra else ""
        return f"Head(V={self.n_labels}, d={self.d}, link={self.link!r}, dtype={self.dtype}{tail})"


def logits_to_log_probs(z: NDArray[np.float64], link: Link) -> NDArray[np.float64]:
    """Numerically stable log-probabilities from logits (n, V), float64."""
    z = np.asarray(z, dtype=np.float64)
    if link == "softmax":
        m = z.max(axis=-1, keepdims=True)
        out: NDArray[np.float64] = z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))
        return out
    return -np.logaddexp(0.0, -z)
