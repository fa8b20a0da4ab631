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
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from unembed._blocks import (
    _Owned,
    block_gram,
    centered_covariance,
    owned,
    row_blocks,
)
from unembed._checks import (
    MatrixScan,
    UnembedError,
    check_hidden,
    check_labels,
    check_matrix_shape,
    check_vector,
    find_identical_rows,
)
from unembed.bounds import HiddenBound, Rows
from unembed.errors import Setting

if TYPE_CHECKING:
    from unembed.rows import StoredMatrix

Link = Literal["softmax", "sigmoid"]
LabelRef = int | str

__all__ = ["Head", "LabelRef", "Link", "RowStats", "Whitening"]


def _as_float(W: ArrayLike) -> NDArray[Any]:
    """W as an array (kept as is when already floating: a handed-over array stays handed
    over); anything else converted to float64."""
    a = np.asanyarray(W)
    return a if a.dtype.kind == "f" else np.asarray(W, dtype=np.float64)


def _float64_rows(raw: NDArray[Any], scan: MatrixScan, handed: bool) -> NDArray[np.float64]:
    """One float64 C-contiguous copy of ``raw`` (any float dtype, a memory map included),
    made and validated block by block: no full-size temporary of any other dtype. An array
    handed over with :func:`owned` is validated and kept as it is."""
    if handed and raw.dtype == np.float64 and raw.flags.c_contiguous:
        w64: NDArray[np.float64] = raw.view(np.ndarray)
        for s, e in row_blocks(*w64.shape):
            scan.add(s, w64[s:e])
        return w64
    w64 = np.empty(raw.shape, dtype=np.float64)
    for s, e in row_blocks(*raw.shape):
        blk = w64[s:e]
        blk[...] = raw[s:e]
        scan.add(s, blk)
    return w64


class RowStats:
    """Whole-head statistics of the rows u_1..u_V of a head, computed once, in row blocks, and
    kept with the head (a Head never changes, so neither do they).

    * ``mean()`` m = (1/V) sum_k u_k, shape (d,); ``norms()`` |u_k|, shape (V,) (rows as
      stored)
    * ``identify(X)``: X projected off the head's known null space N (d, k) (directions
      orthogonal to every reachable hidden state, along which rows move freely):
      X - (X N) N^T. The centered statistics below are of the *identified* centered rows
      c_k = P (u_k - m), P = I - N N^T, so that moving rows within the null space changes none
      of them (with no null space known, P = I):
    * ``centered_norms()`` |c_k|, shape (V,)
    * ``unit_mean()`` (1/V) sum_k c_k / |c_k|, shape (d,) (the ``normalized`` view)
    * ``covariance()`` Cov = (1/V) sum_k c_k c_k^T, shape (d, d)
    * ``centered_gram()`` c_i . c_j, shape (V, V), for heads with few labels

    Each pass walks the rows in blocks (:func:`unembed._blocks.row_blocks`): memory beyond the
    head is O(block + d^2 + V).
    """

    def __init__(self, W: NDArray[np.float64], null_space: NDArray[np.float64] | None = None
                 ) -> None:
        self._W = W
        self._N = null_space
        self._mean: NDArray[np.float64] | None = None
        self._norms: NDArray[np.float64] | None = None
        self._cnorms: NDArray[np.float64] | None = None
        self._unit_mean: NDArray[np.float64] | None = None
        self._cov: NDArray[np.float64] | None = None
        self._cgram: NDArray[np.float64] | None = None
        self._whitening: Whitening | None = None

    def mean(self) -> NDArray[np.float64]:
        if self._mean is None:
            W = self._W
            total = np.zeros(W.shape[1])
            for s, e in row_blocks(*W.shape):
                total += W[s:e].sum(axis=0)
            self._mean = _ro(total / W.shape[0])
        return self._mean

    def identify(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        """Rows X (..., d) projected off the known null space (X itself when none is known)."""
        if self._N is None:
            return X
        return np.asarray(X - (X @ self._N) @ self._N.T)

    def _norm_pass(self) -> None:
        W, m = self._W, self.mean()
        norms = np.empty(W.shape[0])
        cnorms = np.empty(W.shape[0])
        for s, e in row_blocks(*W.shape):
            B = W[s:e]
            norms[s:e] = np.sqrt(np.einsum("ij,ij->i", B, B))
            C = self.identify(B - m)
            cnorms[s:e] = np.sqrt(np.einsum("ij,ij->i", C, C))
        self._norms, self._cnorms = _ro(norms), _ro(cnorms)

    def norms(self) -> NDArray[np.float64]:
        if self._norms is None:
            self._norm_pass()
        assert self._norms is not None
        return self._norms

    def centered_norms(self) -> NDArray[np.float64]:
        if self._cnorms is None:
            self._norm_pass()
        assert self._cnorms is not None
        return self._cnorms

    def unit_mean(self) -> NDArray[np.float64]:
        """(1/V) sum_k (u_k - m) / |u_k - m|; raises naming the first label whose centered
        row is zero (its direction is undefined)."""
        if self._unit_mean is None:
            n = self.centered_norms()
            zero = np.flatnonzero(n <= 1e-300)
            if zero.size:
                raise _ZeroRow(int(zero[0]))
            inv = 1.0 / n
            # sum_k (u_k - m) / n_k = sum_k u_k / n_k - m sum_k 1 / n_k
            um = (inv @ self._W - self.mean() * inv.sum()) / n.size
            self._unit_mean = _ro(self.identify(um))  # P is linear: the mean of P-rows
        return self._unit_mean

    def covariance(self) -> NDArray[np.float64]:
        """Cov = (1/V) sum_k c_k c_k^T in float64, by blocked DSYRK
        (:func:`unembed._blocks.centered_covariance`: V d^2 / 2 multiply-adds in all)."""
        if self._cov is None:
            cov = centered_covariance(self._W, self.mean(), transform=self.identify)
            self._cov = _ro(np.ascontiguousarray(cov))
        return self._cov

    def cached_covariance(self) -> NDArray[np.float64] | None:
        """:meth:`covariance` if it was computed already, else None (computes nothing)."""
        return self._cov

    def centered_gram(self) -> NDArray[np.float64]:
        """(V, V) Gram matrix of the centered rows, in column blocks (no (V, d) temporary)."""
        if self._cgram is None:
            W, m = self._W, self.mean()
            G = block_gram(W, m)  # pairs of row blocks
            if self._N is not None:
                CN = np.empty((W.shape[0], self._N.shape[1]))
                for s, e in row_blocks(*W.shape):
                    CN[s:e] = (W[s:e] - m) @ self._N
                G -= CN @ CN.T  # (P c_i) . (P c_j) = c_i . c_j - (N^T c_i) . (N^T c_j)
            self._cgram = _ro((G + G.T) / 2)
        return self._cgram

    def whitening(self, rtol: float) -> Whitening:
        """Cov^{-1/2} on the eigenvectors with eigenvalue > rtol * the largest (see
        :class:`Whitening`)."""
        if self._whitening is not None and self._whitening.rtol == rtol:
            return self._whitening
        V, d = self._W.shape
        if V <= d:
            # C = U S Vt, Cov = Vt^T S^2 Vt / V, so C Cov^{-1/2} = sqrt(V) U Vt on the range:
            # in the basis Vt, the rows sqrt(V) U. C C^T = U S^2 U^T has eigenvalues V Cov's.
            ev, U = np.linalg.eigh(self.centered_gram())
            ev = ev / V
            keep = ev > rtol * (ev.max() if ev.size else 0.0)
            out = Whitening(None, _ro(np.sqrt(V) * U[:, keep]), int(keep.sum()), rtol)
        else:
            ev, vecs = np.linalg.eigh(self.covariance())
            keep = ev > rtol * (ev.max() if ev.size else 0.0)
            out = Whitening(_ro(vecs[:, keep] / np.sqrt(ev[keep])), None, int(keep.sum()), rtol)
        self._whitening = out
        return out


@dataclass(frozen=True)
class Whitening:
    """The whitening of the ``causal`` view (:mod:`unembed.views`): Cov^{-1/2} on its range.
    For V > d a map ``P`` (d, r) with causal rows (u_i - m) P; for V <= d the causal rows
    themselves (``rows``, (V, r)), from the centered Gram. ``rank`` r: the eigenvalues kept
    (those above ``rtol`` times the largest)."""

    P: NDArray[np.float64] | None
    rows: NDArray[np.float64] | None
    rank: int
    rtol: float


class _ZeroRow(Exception):
    """Internal: the centered row of label ``index`` is zero."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


def _ro(a: NDArray[np.float64]) -> NDArray[np.float64]:
    a.setflags(write=False)
    return a


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
    source : str, optional
        Where the head was read from (a file, a directory, a hub snapshot, a component), as
        errors and reports name it; also shown in ``meta["source"]``.
    meta : dict
        Descriptive provenance for people (source, family, final norm, tied, notes, ...); no
        module reads a contract from it: those are the typed fields.
    rows : {"stored", "folded"}
        The rows as stored in the checkpoint, or with the final norm's gain folded in.
    hidden_bound : HiddenBound, optional
        A box containing every hidden state the model can produce (recorded by sources that
        know a final norm; read by ``radius="architecture"``, :mod:`unembed.bounds`).
    reparam_reason, null_space_reason : str, optional
        Why ``reparam`` is False / where ``null_space`` comes from (said by ``symmetries``).
    not_equivalent_because : str, optional
        Set when the head was made by a transformation that is not a symmetry (``force=True``):
        why it is not the same classifier as the one it came from. ``equivalent`` is then False.
    file : StoredMatrix, optional
        The stored matrix (a tensor of a weight file) the rows were read from, so that an
        equivalent head can be written back in the same format and dtype
        (:class:`unembed.rows.StoredMatrix`).
    labels_from : str, optional
        Where the labels came from (a tokenizer, ``id2label``, a sidecar file, ...). Left out,
        it is "row numbers" when ``labels`` is not given (the labels are "0".."V-1") and
        "the caller" when it is. Exports write a labels sidecar unless it is "row numbers".
    masked_argmax : bool
        True when the model takes its argmax over a per-input subset of the labels (spaCy's
        parser and NER: the moves valid in each state), so that answers over all labels are
        answers about a different decision rule; said next to every feasibility answer.
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
    rows: Rows = "stored"
    hidden_bound: HiddenBound | None = None
    reparam_reason: str | None = None
    null_space_reason: str | None = None
    not_equivalent_because: str | None = None
    file: StoredMatrix | None = field(default=None, repr=False)
    labels_from: str | None = None
    masked_argmax: bool = False
    source: str | None = None
    degenerate: dict[str, list[Any]] = field(default_factory=dict, init=False)
    stats: RowStats = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = self.source or ""
        handed = type(self.W) is _Owned
        raw = check_matrix_shape(self.W, "W", where=where)
        if raw.dtype.kind == "f" and self.dtype == "float64" and raw.dtype != np.float64:
            object.__setattr__(self, "dtype", str(raw.dtype))
        # One float64 copy, owned and read-only (the caller's array is never aliased, except
        # one handed over with `owned`), converted and validated block by block.
        scan = MatrixScan("W", where=where, allow_zero_rows=not self.strict)
        w64 = _float64_rows(raw, scan, handed)
        zero_rows = scan.finish()
        w64.setflags(write=False)
        v, d = w64.shape
        object.__setattr__(self, "W", w64)
        if self.b is not None:
            object.__setattr__(self, "b", _frozen(check_vector(self.b, "b", v, where=where)))
        if self.labels_from is None:
            object.__setattr__(self, "labels_from", "the caller" if self.labels else "row numbers")
        object.__setattr__(self, "labels", check_labels(self.labels or None, v, where=where))
        if self.link not in ("softmax", "sigmoid"):
            raise UnembedError("must be 'softmax' or 'sigmoid'. "
                               f"Got {self.link!r} instead.", argument="link", function="Head")
        if self.rows not in ("stored", "folded"):
            raise UnembedError("must be 'stored' or 'folded'. "
                               f"Got {self.rows!r} instead.", argument="rows", function="Head")
        if self.softcap is not None and not (np.isfinite(self.softcap) and self.softcap > 0):
            raise UnembedError("must be a positive number. "
                               f"Got {self.softcap!r} instead.", argument="softcap",
                               function="Head")
        if not (np.isfinite(self.logit_scale) and self.logit_scale > 0):
            raise UnembedError("must be a positive number. "
                               f"Got {self.logit_scale!r} instead.", argument="logit_scale",
                               function="Head")
        if self.null_space is not None:
            ns = np.asarray(self.null_space, dtype=np.float64)
            if ns.ndim == 1:
                ns = ns[:, None]
            if ns.shape[0] != d:
                raise UnembedError("must have shape (d, k) with "
                                   f"d = {d}. Got shape {ns.shape} instead.",
                                   argument="null_space", function="Head")
            q, _ = np.linalg.qr(ns)
            object.__setattr__(self, "null_space", _frozen(q))
        degenerate: dict[str, list[Any]] = {}
        if zero_rows:
            degenerate["zero_rows"] = [self.labels[i] for i in zero_rows]
        same = find_identical_rows(w64)
        if same is not None:
            i, j = same
            if self.strict:
                raise UnembedError((
                                    f"The 'W'{' of ' + where if where else ''} has identical rows "
                                    f"for labels "
                                    f"{self.labels[i]!r} and {self.labels[j]!r} (rows {i} and "
                                    f"{j}): the model "
                                    f"cannot tell them apart by any input, and their cosine is 1 "
                                    f"in every "
                                    "equivalent model. Pass ", Setting("strict=False",
                                    "--allow-degenerate"),
                                    " to load it anyway."))
            degenerate["identical_rows"] = [[self.labels[i], self.labels[j]]]
        object.__setattr__(self, "degenerate", degenerate)
        meta = dict(self.meta)
        if self.source is not None:
            meta["source"] = self.source  # shown for people; read from the typed field
        object.__setattr__(self, "meta", meta)
        object.__setattr__(self, "stats", RowStats(w64, self.null_space))

    # ------------------------------------------------------------------ shape and labels
    @property
    def equivalent(self) -> bool:
        """False when the head was made by a transformation that is not a symmetry."""
        return self.not_equivalent_because is None

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

    def row_block(self, start: int, stop: int) -> NDArray[np.float64]:
        """Rows ``start..stop`` in float64 (read-only): the way to walk a head in blocks
        without asking for the whole (V, d) matrix at once."""
        return self.W[start:stop]

    def take_rows(self, indices: Sequence[int] | NDArray[np.intp]) -> NDArray[np.float64]:
        """The float64 rows of the given row indices, in that order, shape (len(indices), d)."""
        return np.asarray(self.W[np.asarray(indices, dtype=np.intp)])

    def index(self, label: LabelRef, *, argument: str = "label") -> int:
        """Row index of a label: a label string, an int index, or "#N" for index N.

        Raises UnembedError naming the unknown label and, unless ``argument`` is the default
        "label", the argument it was given as, in one wording everywhere: "Unknown label
        'cat' (argument b): not among the V labels of this head ..." (with close matches).
        """
        where = "" if argument == "label" else f" (argument {argument.removeprefix('label ')})"
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            i = int(label)
            if not (0 <= i < self.n_labels):
                raise UnembedError(f"Label index {i}{where} is out of range for a head with "
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
        raise UnembedError(f"Unknown label {s!r}{where}: not among the {self.n_labels} labels "
                           f"of this head (use '#N' for row N).{hint}", label=s)

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
        meta: dict[str, Any] | None = None, *, not_equivalent_because: str | None = None,
    ) -> Head:
        """A new head with other weights (and bias), the same labels, link and known
        structure; ``meta`` entries are added to a copy of this head's. A new head made by a
        transformation that is not a symmetry says why in ``not_equivalent_because``."""
        new_b = self.b if isinstance(b, str) else (None if b is None else np.asarray(b, float))
        return replace(
            self,
            W=owned(self.W) if W is None else _as_float(W),
            b=new_b,
            meta={**self.meta, **(meta or {})},
            not_equivalent_because=not_equivalent_because or self.not_equivalent_because,
        )

    def with_provenance(self, *, source: str | None = None, notes: Sequence[str] = (),
                        **meta: Any) -> Head:
        """The same head (same rows, labels and structure) with its provenance amended: a new
        ``source`` (when given), ``notes`` appended to ``meta["notes"]``, other ``meta``
        entries added. A new value: a head is never changed after construction."""
        new_meta = {**self.meta, **meta}
        if notes:
            new_meta["notes"] = [*self.meta.get("notes", []), *notes]
        return replace(self, W=owned(self.W), source=self.source if source is None else source,
                       meta=new_meta)

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

    def _repr_html_(self) -> str:
        """A table for notebooks: shape, link, dtype, rows, source, labels, row norms."""
        from unembed._display import html

        return html("head", self)

    def __repr__(self) -> str:
        extra = []
        if self.b is not None:
            extra.append("bias")
        if self.softcap is not None:
            extra.append(f"softcap={self.softcap:g}")
        if self.rows != "stored":
            extra.append(f"rows={self.rows}")
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


def max_probability_gap(z1: NDArray[np.float64], z2: NDArray[np.float64], link: Link) -> float:
    """max |p1 - p2| over every input and label of two logit arrays (n, V) of the same inputs,
    computed in float64 (0 for empty arrays): the figure an equivalence is judged by."""
    p = np.exp(logits_to_log_probs(np.asarray(z1, dtype=np.float64), link))
    q = np.exp(logits_to_log_probs(np.asarray(z2, dtype=np.float64), link))
    return float(np.max(np.abs(p - q))) if p.size else 0.0
