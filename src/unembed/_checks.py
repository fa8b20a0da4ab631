"""Input validation with one error grammar.

Every message names the argument (or file, or label) that failed, says what was expected and
what was got: ``The 'target' argument of translation_for_cosine must be in [-1, 1]. Got 1.5
instead.``
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray


class UnembedError(ValueError):
    """The one exception type of unembed: bad input, or a request the model does not allow.

    The message is a single line naming the argument, file or label at fault. Two grammars:

    * an argument of a function (:func:`arg_error`): ``The 'target' argument of
      translation_for_cosine must be in [-1, 1]. Got 1.5 instead.`` The exception keeps
      ``argument`` ("target"), ``function`` and ``requirement`` ("must be in [-1, 1]. Got 1.5
      instead.") so that the command line can name its own option instead (``--target must be
      in [-1, 1]. Got 1.5 instead.``);
    * a file (:func:`file_error`): ``PATH: what is wrong with it.`` (``path`` kept).

    Anything else (a label, a model that refuses a request) is one plain sentence (:func:`fail`).
    """

    argument: str | None = None
    function: str | None = None
    requirement: str | None = None
    path: str | None = None


def fail(msg: str) -> UnembedError:
    """Build an :class:`UnembedError` (to be raised by the caller)."""
    return UnembedError(" ".join(msg.split()))


_MISSING: Any = object()


def arg_error(function: str, argument: str, requirement: str, got: Any = _MISSING) -> UnembedError:
    """``The 'argument' argument of function <requirement>. Got <got> instead.``

    ``requirement`` starts with a verb ("must be in [-1, 1]"); ``got`` is shown with ``repr``
    when given.
    """
    req = " ".join(requirement.split()).rstrip(".") + "."
    if got is not _MISSING:
        req += f" Got {got!r} instead."
    e = UnembedError(f"The {argument!r} argument of {function} {req}")
    e.argument, e.function, e.requirement = argument, function, req
    return e


def file_error(path: Any, problem: str) -> UnembedError:
    """``PATH: problem`` for a file or directory the user named (``problem`` one sentence)."""
    e = UnembedError(f"{path}: " + " ".join(problem.split()))
    e.path = str(path)
    return e


def check_matrix_shape(x: Any, name: str, *, where: str = "") -> NDArray[Any]:
    """Check the dtype and shape of a weight matrix (V, d) without reading its values: 2-D,
    floating point, at least 2 rows and 1 column. Returns ``np.asarray(x)`` (a memory map
    stays a memory map)."""
    loc = f" of {where}" if where else ""
    arr = np.asarray(x)
    if arr.dtype.kind not in "f":
        raise fail(f"The {name!r}{loc} must hold floating-point weights. Got dtype {arr.dtype}.")
    if arr.ndim != 2:
        raise fail(
            f"The {name!r}{loc} must be a matrix of shape (n_labels, d). "
            f"Got shape {arr.shape} instead."
        )
    if arr.shape[0] < 2:
        raise fail(f"The {name!r}{loc} must have at least 2 label rows. Got {arr.shape[0]}.")
    if arr.shape[1] < 1:
        raise fail(f"The {name!r}{loc} must have at least 1 column. Got shape {arr.shape}.")
    return arr


class MatrixScan:
    """Validation of a weight matrix block by block (no (V, d) temporary): NaN/Inf entries
    (their count and the first one) and all-zero rows. Feed blocks in row order with
    :meth:`add`, then :meth:`finish` raises the first problem found."""

    def __init__(self, name: str, *, where: str = "", allow_zero_rows: bool = False) -> None:
        self.name, self.where, self.allow_zero_rows = name, where, allow_zero_rows
        self.n_bad = 0
        self.first_bad: tuple[int, int] | None = None
        self.zero_rows: list[int] = []

    def add(self, start: int, block: NDArray[np.floating]) -> None:
        finite = np.isfinite(block)
        if not finite.all():
            self.n_bad += int((~finite).sum())
            if self.first_bad is None:
                r, c = np.argwhere(~finite)[0]
                self.first_bad = (start + int(r), int(c))
        zero = np.flatnonzero(~np.any(block != 0, axis=1))
        if zero.size:
            self.zero_rows.extend((start + zero).tolist())

    def finish(self) -> list[int]:
        """Raise on NaN/Inf (and on zero rows unless allowed); return the zero rows."""
        loc = f" of {self.where}" if self.where else ""
        if self.first_bad is not None:
            r, c = self.first_bad
            raise fail(
                f"The {self.name!r}{loc} contains NaN or Inf ({self.n_bad} entries; "
                f"first at row {r}, column {c})."
            )
        if self.zero_rows and not self.allow_zero_rows:
            raise fail(
                f"The {self.name!r}{loc} has {len(self.zero_rows)} all-zero row(s) (first: row "
                f"{self.zero_rows[0]}); a zero row has no direction, so its cosine is undefined."
            )
        return self.zero_rows


def check_matrix(
    x: Any, name: str, *, where: str = "", allow_zero_rows: bool = False
) -> NDArray[np.floating]:
    """Check a weight matrix of shape (V, d): 2-D, real, finite, no zero rows (unless
    allowed). Returns it as a float array in its own dtype (float16 promoted to float32,
    integers refused). Values are scanned in row blocks."""
    from unembed._blocks import row_blocks

    arr = check_matrix_shape(x, name, where=where)
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    scan = MatrixScan(name, where=where, allow_zero_rows=allow_zero_rows)
    for s, e in row_blocks(arr.shape[0], arr.shape[1]):
        scan.add(s, arr[s:e])
    scan.finish()
    return arr


def find_identical_rows(w: NDArray[np.floating]) -> tuple[int, int] | None:
    """Return a pair (i, j), i < j, of identical rows of ``w``, or None.

    Identical rows have identical projections on any vector, so only rows whose projections
    on a fixed random vector tie are compared exactly: O(V d) time, O(V) extra memory.
    """
    r = np.random.default_rng(0x1D).standard_normal(w.shape[1])
    key = w @ r
    order = np.argsort(key, kind="stable")
    ks = key[order]
    ties = np.flatnonzero(ks[1:] == ks[:-1])
    for t in ties:
        i, j = int(order[t]), int(order[t + 1])
        if np.array_equal(w[i], w[j]):
            return (min(i, j), max(i, j))
        # several rows can share a key: compare the whole run of ties
        run = order[(ks == ks[t])]
        for a in range(run.size):
            same = np.flatnonzero(np.all(w[run[a + 1:]] == w[run[a]], axis=1))
            if same.size:
                x, y = int(run[a]), int(run[a + 1 + same[0]])
                return (min(x, y), max(x, y))
    return None


def check_vector(x: Any, name: str, length: int, *, where: str = "") -> NDArray[np.float64]:
    """Check a real, finite vector of the given length; returns float64."""
    loc = f" of {where}" if where else ""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise fail(f"The {name!r}{loc} must be numeric. Got dtype {arr.dtype}.")
    if arr.shape != (length,):
        raise fail(f"The {name!r}{loc} must have shape ({length},). Got shape {arr.shape} instead.")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise fail(f"The {name!r}{loc} contains NaN or Inf.")
    return arr


def check_hidden(h: Any, d: int, name: str = "h") -> NDArray[np.float64]:
    """Hidden states: shape (d,) or (n, d); returned as float64 of shape (n, d)."""
    arr = np.asarray(h, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != d:
        raise fail(
            f"The {name!r} argument must have shape (d,) or (n, d) with d = {d}. "
            f"Got shape {np.shape(h)} instead."
        )
    if not np.isfinite(arr).all():
        raise fail(f"The {name!r} argument contains NaN or Inf.")
    return arr


def check_in_range(value: float, name: str, func: str, lo: float, hi: float) -> float:
    """Closed-interval range check: ``The 'target' argument of f must be in [lo, hi]. Got x
    instead.``"""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise fail(
            f"The {name!r} argument of {func} must be a number in [{lo:g}, {hi:g}]. "
            f"Got {value!r} instead."
        ) from None
    if not (lo <= v <= hi):
        raise fail(
            f"The {name!r} argument of {func} must be in [{lo:g}, {hi:g}]. Got {value!r} instead."
        )
    return v


def check_labels(labels: Sequence[Any] | None, n: int, *, where: str = "") -> tuple[str, ...]:
    """Labels: n unique strings; default "0".."n-1"."""
    loc = f" of {where}" if where else ""
    if labels is None:
        return tuple(str(i) for i in range(n))
    out = tuple(str(x) for x in labels)
    if len(out) != n:
        raise fail(f"The 'labels'{loc} must have {n} entries (one per row). Got {len(out)}.")
    if len(set(out)) != n:
        seen: set[str] = set()
        for x in out:
            if x in seen:
                raise fail(f"The 'labels'{loc} must be unique. {x!r} appears more than once.")
            seen.add(x)
    return out
