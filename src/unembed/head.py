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
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from unembed._blocks import _Owned, owned, row_blocks
from unembed._checks import (
    MatrixScan,
    UnembedError,
    check_hidden,
    check_labels,
    check_matrix_dims,
    check_matrix_shape,
    check_vector,
)
from unembed.bounds import HiddenBound, Rows
from unembed.errors import Setting
from unembed.row_stats import FirstPass, RowStats, Whitening, first_pass, identical_rows
from unembed.rows import InFile, InMemory, RowAccess, StoredMatrix

Link = Literal["softmax", "sigmoid"]
LabelRef = int | str

__all__ = ["Deferred", "Head", "LabelRef", "Link", "RowStats", "Whitening"]


def _as_float(W: ArrayLike) -> NDArray[Any]:
    """W as an array (kept as is when already floating: a handed-over array stays handed
    over); anything else converted to float64."""
    a = np.asanyarray(W)
    return a if a.dtype.kind == "f" else np.asarray(W, dtype=np.float64)


def _float64_rows(raw: NDArray[Any], handed: bool) -> NDArray[np.float64]:
    """One float64 C-contiguous copy of ``raw`` (any float dtype, a memory map included),
    made block by block: no full-size temporary of any other dtype. An array handed over
    with :func:`owned` is kept as it is."""
    if handed and raw.dtype == np.float64 and raw.flags.c_contiguous:
        return raw.view(np.ndarray)
    w64 = np.empty(raw.shape, dtype=np.float64)
    for s, e in row_blocks(*raw.shape):
        w64[s:e] = raw[s:e]
    return w64


@dataclass(frozen=True)
class Deferred:
    """Rows left in their file: ``Head(W=Deferred(stored))`` validates the rows of ``stored``
    (a :class:`unembed.rows.StoredMatrix`) in one pass, block by block, and keeps no copy of
    them. What needs a few rows or one pass reads them from the file again (``row_block``,
    ``take_rows``, ``stats``); ``head.W``, for what needs the whole matrix, reads one float64
    copy on first use. The figures are the same, to the last bit, as for the rows in memory."""

    stored: StoredMatrix


@dataclass(frozen=True)
class _Same:
    """Internal: the rows of an existing head, already validated (a new head with the same
    rows and other metadata does not read or check them again)."""

    rows: RowAccess
    scanned: FirstPass


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
        given: object = self.W
        scanned: FirstPass | None = None
        access: RowAccess
        if isinstance(given, _Same):
            access, scanned = given.rows, given.scanned
        elif isinstance(given, Deferred):
            stored = given.stored
            check_matrix_dims(stored.dtype, tuple(stored.shape), "W", where=where)
            if self.dtype == "float64":
                object.__setattr__(self, "dtype", stored.dtype)
            if self.file is None:
                object.__setattr__(self, "file", stored)
            access = InFile(stored)
        else:
            handed = type(given) is _Owned
            raw = check_matrix_shape(given, "W", where=where)
            if raw.dtype.kind == "f" and self.dtype == "float64" and raw.dtype != np.float64:
                object.__setattr__(self, "dtype", str(raw.dtype))
            # One float64 copy, owned and read-only (the caller's array is never aliased,
            # except one handed over with `owned`), converted block by block.
            w64 = _float64_rows(raw, handed)
            w64.setflags(write=False)
            access = InMemory(w64)
        v, d = access.shape
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
        if scanned is None:  # validated in one pass, block by block
            scanned = first_pass(access, MatrixScan("W", where=where,
                                                    allow_zero_rows=not self.strict))
        elif scanned.zero_rows and self.strict:
            MatrixScan("W", where=where).refuse_zero_rows(scanned.zero_rows)
        degenerate: dict[str, list[Any]] = {}
        if scanned.zero_rows:
            degenerate["zero_rows"] = [self.labels[i] for i in scanned.zero_rows]
        same = identical_rows(access, scanned.keys)
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
        object.__setattr__(self, "_access", access)
        object.__setattr__(self, "_scanned", scanned)
        if access.materialised is not None:
            object.__setattr__(self, "W", access.materialised)
        else:  # read on first use (__getattr__)
            object.__delattr__(self, "W")
        object.__setattr__(self, "stats", RowStats(access, scanned, self.null_space))

    if not TYPE_CHECKING:
        def __getattr__(self, name: str) -> Any:
            # Only reached for a name not set on the instance: ``W`` of a head whose rows are
            # still in their file (Deferred) is read whole here, once.
            access = self.__dict__.get("_access")
            if name != "W" or access is None:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            W = access.full()
            object.__setattr__(self, "W", W)
            return W

    @property
    def in_memory(self) -> bool:
        """Whether the whole (V, d) float64 matrix is in memory (False for a head whose rows
        are still in their file: :class:`Deferred`)."""
        return "W" in self.__dict__

    def _same_rows(self) -> _Same:
        access: RowAccess = self.__dict__["_access"]
        scanned: FirstPass = self.__dict__["_scanned"]
        return _Same(access, scanned)

    # ------------------------------------------------------------------ shape and labels
    @property
    def equivalent(self) -> bool:
        """False when the head was made by a transformation that is not a symmetry."""
        return self.not_equivalent_because is None

    @property
    def n_labels(self) -> int:
        """V, the number of labels (rows)."""
        return self.__dict__["_access"].shape[0]

    @property
    def d(self) -> int:
        """d, the width of the hidden state (columns)."""
        return self.__dict__["_access"].shape[1]

    @property
    def bias(self) -> NDArray[np.float64]:
        """The bias as a (V,) float64 vector (zeros when the head has none)."""
        return self.b if self.b is not None else np.zeros(self.n_labels)

    def row_block(self, start: int, stop: int) -> NDArray[np.float64]:
        """Rows ``start..stop`` in float64 (read-only): the way to walk a head in blocks
        without asking for the whole (V, d) matrix at once."""
        access: RowAccess = self.__dict__["_access"]
        return access[start:stop]

    @property
    def stored_dtype(self) -> np.dtype[np.floating]:
        """The dtype the rows are kept in (float16, float32 or float64; bfloat16 rows are
        kept widened to float32): that of :meth:`stored_block`."""
        return self.stored_block(0, 1).dtype

    def stored_block(self, start: int, stop: int) -> NDArray[np.floating]:
        """Rows ``start..stop`` in the precision they are kept in (float16, float32 or
        float64; read-only): exactly :meth:`row_block`'s values, not yet widened, for a pass
        whose first float64 operation widens them."""
        access: RowAccess = self.__dict__["_access"]
        return access.stored(start, stop)

    def take_rows(self, indices: Sequence[int] | NDArray[np.intp]) -> NDArray[np.float64]:
        """The float64 rows of the given row indices, in that order, shape (len(indices), d)."""
        access: RowAccess = self.__dict__["_access"]
        return access.take(np.asarray(indices, dtype=np.intp))

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
            W=cast(NDArray[np.float64], self._same_rows()) if W is None else _as_float(W),
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
        return replace(self, W=cast(NDArray[np.float64], self._same_rows()),
                       source=self.source if source is None else source, meta=new_meta)

    def with_labels(self, labels: Sequence[str], labels_from: str) -> Head:
        """The same head (same rows, not read or checked again) with other labels, and where
        they came from."""
        return replace(self, W=cast(NDArray[np.float64], self._same_rows()),
                       labels=tuple(labels), labels_from=labels_from)

    def subset(self, labels: Sequence[LabelRef]) -> Head:
        """The head restricted to some labels (rows), in the given order."""
        idx = self.indices(labels)
        return replace(
            self,
            W=owned(self.take_rows(idx)),
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
