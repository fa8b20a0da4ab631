"""A labelled table value: columns of float64 or category codes, written as CSV or Parquet and
turned into a pandas DataFrame on request (pandas imported only then).

The pair table of an audit or of a head is one of these: one row per unordered pair of labels
(a, b) with a before b, and per view: ``label_a, label_b, view, cosine`` plus a column per
behavioural measure (the long, tidy layout that pandas, polars, R and spreadsheets group and
plot directly). Results build their tables here; the presentation room
(:mod:`unembed.tables`, :mod:`unembed._reprs`) reads them, never the reverse.

>>> import numpy as np
>>> S = np.array([[1.0, 0.5], [0.5, 1.0]])
>>> t = pairs_from_matrices(["cat", "dog"], {"raw": S})
>>> t.records()
[{'label_a': 'cat', 'label_b': 'dog', 'view': 'raw', 'cosine': 0.5}]
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed._display import html

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PairTable", "pairs_from_matrices", "pandas_module", "table_of_rows"]


def pandas_module() -> Any:
    try:
        import pandas
    except ImportError:
        raise UnembedError("pandas is needed for data frames: pip install 'unembed[frame]' "
                           "(or use .records() / .to_csv()).") from None
    return pandas


@dataclass(frozen=True)
class PairTable:
    """Rows (label_a, label_b, view, cosine, measures...) as parallel columns.

    Attributes
    ----------
    columns : tuple of str
        Column names, in order.
    data : dict of column -> 1-D array
        float64 values (NaN where undefined), or, for the text columns named in
        ``categories``, int32 codes into them.
    categories : dict of column -> tuple of str
        The strings of the coded columns (label_a, label_b: the labels; view: the views).
    """

    columns: tuple[str, ...]
    data: Mapping[str, NDArray[Any]]
    categories: Mapping[str, tuple[str, ...]]

    def __len__(self) -> int:
        return int(self.data[self.columns[0]].shape[0]) if self.columns else 0

    def column(self, name: str, limit: int | None = None) -> list[Any]:
        """One column (its first ``limit`` values) as Python values (strings for the coded
        columns)."""
        values = self.data[name][:limit].tolist()
        cats = self.categories.get(name)
        return values if cats is None else [cats[i] for i in values]

    def records(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The rows (the first ``limit``) as dicts of Python values (JSON-ready except NaN)."""
        cols = [self.column(c, limit) for c in self.columns]
        return [dict(zip(self.columns, row)) for row in zip(*cols)]

    def to_frame(self) -> pd.DataFrame:
        """A pandas DataFrame with these columns, the text ones categorical (pandas imported
        here, not before)."""
        pd = pandas_module()
        out = {}
        for c in self.columns:
            cats = self.categories.get(c)
            out[c] = (self.data[c] if cats is None else
                      pd.Categorical.from_codes(self.data[c], categories=pd.Index(cats)))
        return pd.DataFrame(out, columns=list(self.columns))

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write CSV (header row, floats in full precision, NaN as empty)."""
        p = Path(path)
        cols = [self.column(c) for c in self.columns]
        with open(p, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(self.columns)
            w.writerows([("" if v != v else repr(v)) if isinstance(v, float) else v
                         for v in row] for row in zip(*cols))
        return p

    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write Parquet (needs pandas and pyarrow)."""
        p = Path(path)
        try:
            self.to_frame().to_parquet(p, index=False)
        except ImportError as e:
            raise UnembedError(f"writing Parquet needs pyarrow ({e}); write .csv instead.",
                               path=p) \
                from None
        return p

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write ``.csv`` or ``.parquet``, chosen by the suffix."""
        p = Path(path)
        suffix = p.suffix.lower()
        if suffix == ".csv":
            return self.to_csv(p)
        if suffix in (".parquet", ".pq"):
            return self.to_parquet(p)
        raise UnembedError("a pair table is written as .csv or .parquet; got suffix "
                           f"{p.suffix or '(none)'!r}.", path=p)

    def __repr__(self) -> str:
        views = list(self.categories.get("view", ()))
        return (f"PairTable({len(self)} rows, views={views}, "
                f"columns={list(self.columns)})")

    def _repr_html_(self) -> str:
        return html("pair_table", self)


def pairs_from_matrices(labels: Sequence[str], similarities: Mapping[str, NDArray[np.float64]],
                        measures: Mapping[str, NDArray[np.float64]] | None = None) -> PairTable:
    """A pair table from (k, k) cosine matrices per view and, optionally, (k, k) measure
    matrices (one column each), over the upper triangle (a before b)."""
    k = len(labels)
    iu, ju = np.triu_indices(k, 1)
    meas = dict(measures or {})
    n = iu.shape[0]
    parts: dict[str, list[NDArray[Any]]] = {"label_a": [], "label_b": [], "view": [],
                                            "cosine": [], **{m: [] for m in meas}}
    for vi, (view, S) in enumerate(similarities.items()):
        S = np.asarray(S, dtype=np.float64)
        if S.shape != (k, k):
            raise UnembedError(f"The {view!r} matrix has shape {S.shape}; expected ({k}, {k}).")
        parts["label_a"].append(iu.astype(np.int32))
        parts["label_b"].append(ju.astype(np.int32))
        parts["view"].append(np.full(n, vi, dtype=np.int32))
        parts["cosine"].append(S[iu, ju])
        for m, M in meas.items():
            parts[m].append(np.asarray(M, dtype=np.float64)[iu, ju])
    coded = ("label_a", "label_b", "view")
    cols = {c: (np.concatenate(v) if v else
                np.zeros(0, dtype=np.int32 if c in coded else np.float64))
            for c, v in parts.items()}
    cats = {"label_a": tuple(labels), "label_b": tuple(labels),
            "view": tuple(similarities)}
    return PairTable(columns=tuple(cols), data=cols, categories=cats)


def _coded(values: Sequence[str]) -> tuple[NDArray[np.int32], tuple[str, ...]]:
    cats = tuple(dict.fromkeys(values))
    index = {c: i for i, c in enumerate(cats)}
    return np.array([index[v] for v in values], dtype=np.int32), cats


def table_of_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
           text: Sequence[str]) -> PairTable:
    """A table of ``rows`` (dicts): the ``text`` columns coded as categories, the others
    float64 (None -> NaN) or int64 / bool as given."""
    data: dict[str, NDArray[Any]] = {}
    cats: dict[str, tuple[str, ...]] = {}
    for c in columns:
        vals = [r[c] for r in rows]
        if c in text:
            data[c], cats[c] = _coded([str(v) for v in vals])
        elif vals and all(isinstance(v, (bool, np.bool_)) for v in vals):
            data[c] = np.array(vals, dtype=bool)
        elif vals and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                          for v in vals):
            data[c] = np.array(vals, dtype=np.int64)
        else:
            data[c] = np.array([np.nan if v is None else float(v) for v in vals],
                               dtype=np.float64)
    return PairTable(tuple(columns), data, cats)
