"""Input validation in the one error grammar of :mod:`unembed.errors`.

Every message names the argument (or file, or label) that failed, says what was expected and
what was got: ``The 'target' argument of translation_for_cosine must be in [-1, 1]. Got 1.5
instead.``
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed.errors import Setting, UnembedError

__all__ = ["UnembedError"]

_UNIQUE_LABELS = Setting("unique_labels=True", "--unique-labels")


def check_matrix_shape(x: Any, name: str, *, where: str = "") -> NDArray[Any]:
    """Check the dtype and shape of a weight matrix (V, d) without reading its values: 2-D,
    floating point, at least 2 rows and 1 column. Returns ``np.asarray(x)`` (a memory map
    stays a memory map)."""
    arr = np.asarray(x)
    check_matrix_dims("float" if arr.dtype.kind == "f" else str(arr.dtype), arr.shape, name,
                      where=where)
    return arr


def check_matrix_dims(dtype: str, shape: tuple[int, ...], name: str, *, where: str = "") -> None:
    """:func:`check_matrix_shape` for a matrix known by its dtype's name and its shape (rows
    still in a file): a floating-point dtype, 2-D, at least 2 rows and 1 column."""
    loc = f" of {where}" if where else ""
    if dtype not in ("float", "float64", "float32", "float16", "bfloat16"):
        raise UnembedError(f"The {name!r}{loc} must hold floating-point weights. Got dtype "
                           f"{dtype}.")
    if len(shape) != 2:
        raise UnembedError(f"The {name!r}{loc} must be a matrix of shape (n_labels, d). "
                           f"Got shape {shape} instead.")
    if shape[0] < 2:
        raise UnembedError(f"The {name!r}{loc} must have at least 2 label rows. Got "
                           f"{shape[0]}.")
    if shape[1] < 1:
        raise UnembedError(f"The {name!r}{loc} must have at least 1 column. Got shape {shape}.")


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
            raise UnembedError(f"The {self.name!r}{loc} contains NaN or Inf ({self.n_bad} entries; "
                               f"first at row {r}, column {c}).")
        if self.zero_rows and not self.allow_zero_rows:
            self.refuse_zero_rows(self.zero_rows)
        return self.zero_rows

    def refuse_zero_rows(self, zero_rows: Sequence[int]) -> None:
        """Raise: the matrix has these all-zero rows."""
        loc = f" of {self.where}" if self.where else ""
        raise UnembedError(f"The {self.name!r}{loc} has {len(zero_rows)} all-zero row(s) "
                           f"(first: row {zero_rows[0]}); a zero row has no direction, so its "
                           f"cosine is undefined.")


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


def check_vector(x: Any, name: str, length: int, *, where: str = "") -> NDArray[np.float64]:
    """Check a real, finite vector of the given length; returns float64."""
    loc = f" of {where}" if where else ""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise UnembedError(f"The {name!r}{loc} must be numeric. Got dtype {arr.dtype}.")
    if arr.shape != (length,):
        raise UnembedError(f"The {name!r}{loc} must have shape ({length},). Got shape {arr.shape} "
                           f"instead.")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise UnembedError(f"The {name!r}{loc} contains NaN or Inf.")
    return arr


def check_finite_rows(arr: Any, where: str, start: int = 0) -> None:
    """Refuse rows of ``arr`` (n, ...) holding NaN or Inf, naming ``where`` (a file) and the
    first such row (counted from ``start``)."""
    a = np.asarray(arr)
    if a.dtype.kind not in "fc" or a.ndim == 0:
        return
    bad = np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(axis=1))
    if bad.size:
        raise UnembedError(f"{where}: row {start + int(bad[0])} contains NaN or Inf "
                           f"({bad.size} such row(s) here); every input must be finite.")


def check_hidden(h: Any, d: int, name: str = "h") -> NDArray[np.float64]:
    """Hidden states: shape (d,) or (n, d); returned as float64 of shape (n, d)."""
    arr = np.asarray(h, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != d:
        raise UnembedError(f"must have shape (d,) or (n, d) with d = {d}. "
                           f"Got shape {np.shape(h)} instead.", argument=name)
    if not np.isfinite(arr).all():
        raise UnembedError("contains NaN or Inf.", argument=name)
    return arr


def check_in_range(value: float, name: str, func: str, lo: float, hi: float) -> float:
    """Closed-interval range check: ``The 'target' argument of f must be in [lo, hi]. Got x
    instead.``"""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UnembedError(f"must be a number in [{lo:g}, {hi:g}]", argument=name, function=func,
                           got=value) from None
    if not (lo <= v <= hi):
        raise UnembedError(f"must be in [{lo:g}, {hi:g}]", argument=name, function=func, got=value)
    return v


def check_labels(labels: Sequence[Any] | None, n: int, *, where: str = "") -> tuple[str, ...]:
    """Labels: n unique strings; default "0".."n-1"."""
    loc = f" of {where}" if where else ""
    if labels is None:
        return tuple(str(i) for i in range(n))
    out = tuple(str(x) for x in labels)
    if len(out) != n:
        raise UnembedError(f"The 'labels'{loc} must have {n} entries (one per row). Got "
                           f"{len(out)}.")
    if len(set(out)) != n:
        first: dict[str, int] = {}
        for i, x in enumerate(out):
            if x in first:
                raise UnembedError((f"The 'labels'{loc} must be unique. {x!r} appears more than "
                                    f"once "
                                    f"(rows {first[x]} and {i}); pass ", _UNIQUE_LABELS,
                                    f" to name repeats {x + '#2'!r}, ..."))
            first[x] = i
    return out


def unique_labels(labels: Sequence[Any]) -> tuple[str, ...]:
    """Labels made unique: the second 'sr' becomes 'sr#2', the third 'sr#3' (skipping any name
    already taken), the first keeps its name.

    >>> unique_labels(["sr", "hr", "sr", "sr"])
    ('sr', 'hr', 'sr#2', 'sr#3')
    """
    out = [str(x) for x in labels]
    taken = set(out)
    count: dict[str, int] = {}
    seen: set[str] = set()
    for i, x in enumerate(out):
        if x not in seen:
            seen.add(x)
            continue
        n = count.get(x, 1)
        while True:
            n += 1
            cand = f"{x}#{n}"
            if cand not in taken:
                break
        count[x] = n
        taken.add(cand)
        out[i] = cand
    return tuple(out)


# ------------------------------------------------------------------------------- reading files
#: The most bytes a JSON or text side file of a model (config, index, labels) may hold.
MAX_SIDE_FILE = 256 * 2**20


def regular_file(path: Any, what: str = "file") -> Any:
    """``path`` as a :class:`~pathlib.Path` to an existing regular file (not a device, FIFO or
    directory: those can be read without end), else an UnembedError naming it."""
    import stat
    from pathlib import Path

    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise UnembedError(f"no such {what}.", path=p) from None
    except OSError as e:
        raise UnembedError(f"cannot read it ({e.strerror or type(e).__name__}).", path=p) from None
    if stat.S_ISDIR(st.st_mode):
        raise UnembedError(f"is a directory; expected a {what}.", path=p)
    if not stat.S_ISREG(st.st_mode):
        raise UnembedError(f"is not a regular file (a device, pipe or socket); expected a "
                            f"{what}.", path=p)
    return p


def read_bytes_bounded(path: Any, limit: int = MAX_SIDE_FILE, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes."""
    p = regular_file(path, what)
    try:
        with open(p, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as e:
        raise UnembedError(f"cannot read it ({e.strerror or type(e).__name__}).", path=p) from None
    if len(data) > limit:
        raise UnembedError(f"larger than {limit} bytes; not a {what} unembed reads.", path=p)
    return data


def decode_utf8(data: bytes, path: Any) -> str:
    """``data`` decoded as UTF-8 (a leading BOM dropped), or an UnembedError naming the first
    bad byte and its line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UnembedError(f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset "
                               f"{e.start}, line {line}).", path=path) from None


def read_text(path: Any, what: str = "text file", limit: int = MAX_SIDE_FILE) -> str:
    """A UTF-8 text file of at most ``limit`` bytes."""
    return decode_utf8(read_bytes_bounded(path, limit, what), path)


def read_json(path: Any, what: str = "JSON file", limit: int = MAX_SIDE_FILE) -> Any:
    """A JSON file (UTF-8, at most ``limit`` bytes), parsed; invalid JSON is an UnembedError
    saying where: ``PATH: invalid JSON at line 3 column 5 (Expecting ',' delimiter).``
    NaN and Infinity, which JSON does not have, are refused too."""
    import json

    text = read_text(path, what, limit)

    def bad_constant(name: str) -> Any:
        raise ValueError(name)

    try:
        return json.loads(text, parse_constant=bad_constant)
    except json.JSONDecodeError as e:
        raise UnembedError(f"invalid JSON at line {e.lineno} column {e.colno} "
                               f"({e.msg}).", path=path) from None
    except ValueError as e:
        raise UnembedError(f"invalid JSON: {e} is not a JSON value.", path=path) from None
    except RecursionError:
        raise UnembedError("invalid JSON: nested too deeply.", path=path) from None
