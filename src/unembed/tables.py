"""Labelled tables: similarity matrices as data frames and long-format pair tables.

A pair table has one row per unordered pair of labels (a, b) with a before b in the label set,
and per similarity view: ``label_a, label_b, view, cosine`` plus one column per behavioural
measure when the pairs come from an audit (the measures do not depend on the view, so they
repeat across a pair's rows). This is the "long" (tidy) layout that pandas, polars, R and
spreadsheets group and plot directly.

pandas is optional: it is imported only by :meth:`PairTable.to_frame`,
:func:`similarity_frame` and :meth:`PairTable.to_parquet` (which also needs pyarrow).

Examples
--------
>>> import numpy as np
>>> from unembed import Head
>>> head = Head(np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]), labels=["cat", "dog", "car"])
>>> t = pair_table(head, views=("raw",))
>>> len(t), t.columns
(3, ('label_a', 'label_b', 'view', 'cosine'))
>>> t.records()[0]
{'label_a': 'cat', 'label_b': 'dog', 'view': 'raw', 'cosine': 0.0}
>>> round(t.records()[1]["cosine"], 4)
-0.7071
"""

from __future__ import annotations

import csv
import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import fail
from unembed.head import Head, LabelRef

if TYPE_CHECKING:
    import pandas as pd

    from unembed.feasibility import CoTopMatrix, Enumeration, Feasibility, VocabularyResult
    from unembed.views import ViewData

__all__ = ["PairTable", "co_top_table", "enumeration_table", "feasibility_frame",
           "feasibility_table", "pair_table", "pairs_from_matrices", "similarity_frame",
           "vocabulary_table", "write_pairs"]


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise fail("pandas is needed for data frames: pip install 'unembed[frame]' "
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
        pd = _pandas()
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
            raise fail(f"{p}: writing Parquet needs pyarrow ({e}); write .csv instead.") \
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
        raise fail(f"{p}: a pair table is written as .csv or .parquet; got suffix "
                   f"{p.suffix or '(none)'!r}.")

    def __repr__(self) -> str:
        views = list(self.categories.get("view", ()))
        return (f"PairTable({len(self)} rows, views={views}, "
                f"columns={list(self.columns)})")

    def _repr_html_(self, max_rows: int = 20) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = []
        for row in self.records(max_rows):
            cells = [f"<td>{v:+.4f}</td>" if isinstance(v, float) else
                     f"<td>{html.escape(str(v))}</td>" for v in row.values()]
            body.append("<tr>" + "".join(cells) + "</tr>")
        more = (f"<p>… {len(self) - max_rows} more rows (.to_frame() for all)</p>"
                if len(self) > max_rows else "")
        return (f"<div><b>PairTable</b>: {len(self)} rows<table><thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(body)}</tbody></table>{more}</div>")


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
            raise fail(f"The {view!r} matrix has shape {S.shape}; expected ({k}, {k}).")
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


def pair_table(head: Head, labels: Sequence[LabelRef] | None = None,
               views: Sequence[str] | None = None, data: ViewData | None = None) -> PairTable:
    """Every pair of ``labels`` (default: all) under each view (default: every view of
    :data:`unembed.views.VIEWS`, and ``logit`` when ``data`` is given), one row per pair and
    view: label_a, label_b, view, cosine. With the logit view, a ``data`` column names its
    data (``data.source``) on the logit rows and is empty on the others: the logit cosine
    of labels i, j is the correlation across the data of their centered logits."""
    from unembed.views import VIEWS, similarity_matrix

    idx = list(range(head.n_labels)) if labels is None else head.indices(labels)
    names = [head.labels[i] for i in idx]
    chosen = tuple(views) if views else (*VIEWS, *(("logit",) if data is not None else ()))
    sims = {v: similarity_matrix(head, idx, v, data=data) for v in chosen}
    table = pairs_from_matrices(names, sims)
    if data is None or "logit" not in sims:
        return table
    logit = chosen.index("logit")
    codes = (table.data["view"] == logit).astype(np.int32)  # 1: a logit row
    return PairTable(columns=(*table.columns, "data"), data={**table.data, "data": codes},
                     categories={**table.categories, "data": ("", data.source)})


def similarity_frame(head: Head, labels: Sequence[LabelRef] | None = None,
                     view: str = "raw") -> pd.DataFrame:
    """:func:`unembed.views.similarity_matrix` as a pandas DataFrame indexed and columned by
    the labels."""
    from unembed.views import similarity_matrix

    idx = list(range(head.n_labels)) if labels is None else head.indices(labels)
    names = [head.labels[i] for i in idx]
    pd = _pandas()
    return pd.DataFrame(similarity_matrix(head, idx, view), index=pd.Index(names, name="label"),
                        columns=pd.Index(names, name=f"{view} cosine"))


def check_pairs_suffix(path: str | os.PathLike[str]) -> Path:
    """``path`` as the file of a pair table: a .csv or .parquet suffix, else refused."""
    p = Path(path)
    if p.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise fail(f"{p}: a pair table is written as .csv or .parquet; got suffix "
                   f"{p.suffix or '(none)'!r}.")
    return p


def write_pairs(table: PairTable, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write ``table`` to ``path`` (.csv or .parquet) atomically; an existing file needs
    ``force`` (--force)."""
    from unembed._io import atomic_write

    p = check_pairs_suffix(path)
    suffix = p.suffix.lower()
    return atomic_write(p, lambda tmp: table.to_csv(tmp) if suffix == ".csv" else
                        table.to_parquet(tmp), force=force)


# ------------------------------------------------------------------ feasibility results
def _coded(values: Sequence[str]) -> tuple[NDArray[np.int32], tuple[str, ...]]:
    cats = tuple(dict.fromkeys(values))
    index = {c: i for i, c in enumerate(cats)}
    return np.array([index[v] for v in values], dtype=np.int32), cats


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
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


def _item(labels: Sequence[str], question: str) -> str:
    """The labels a result is about, as one unambiguous string: a ranking "'a' > 'b'", a set
    or sign pattern "'a', 'b'" (each label quoted, so no label can fake a separator)."""
    sep = " > " if question == "ranking" else ", "
    return sep.join(repr(x) for x in labels)


def feasibility_table(result: Feasibility) -> PairTable:
    """One row: ``question, labels, status, feasible, margin, tol, method, lp_solves,
    realises`` (``labels`` quoted and joined as in :func:`enumeration_table`).

    >>> import numpy as np
    >>> from unembed import Head
    >>> from unembed.feasibility import can_be_top_two
    >>> head = Head(np.array([[1.0, 0], [0, 1.0], [-1.0, -1.0]]), labels=["a", "b", "c"])
    >>> r = can_be_top_two(head, "a", "b")
    >>> feasibility_table(r).records()[0]["status"]
    'yes'
    """
    row = {"question": result.question, "labels": _item(result.labels, result.question),
           "status": result.status, "feasible": result.feasible, "margin": result.margin,
           "tol": result.tol, "method": result.method, "lp_solves": int(result.lp_solves),
           "realises": result.realises}
    return _table([row], list(row), ("question", "labels", "status", "method", "realises"))


def vocabulary_table(result: VocabularyResult) -> PairTable:
    """One row per label: ``label, status, margin, method`` (status "yes" / "no" /
    "undecided"; margin as :class:`~unembed.feasibility.VocabularyResult` defines it)."""
    rows = [{"label": lab, "status": str(result.status[i]), "margin": float(result.margin[i]),
             "method": str(result.method[i])} for i, lab in enumerate(result.labels)]
    return _table(rows, ("label", "status", "margin", "method"), ("label", "status", "method"))


def co_top_table(result: CoTopMatrix) -> PairTable:
    """One row per unordered pair (a before b in the label set): ``label_a, label_b, status,
    feasible, margin`` (whether the two can be the top two of the whole head together)."""
    rows = [{"label_a": result.labels[i], "label_b": result.labels[j], "status": r.status,
             "feasible": bool(r.feasible), "margin": r.margin}
            for (i, j), r in sorted(result.results.items())]
    return _table(rows, ("label_a", "label_b", "status", "feasible", "margin"),
                  ("label_a", "label_b", "status"))


def enumeration_table(result: Enumeration) -> PairTable:
    """One row per item decided: ``item, status, margin, covers, method``. ``item`` is the
    ranking ("'a' > 'b' > 'c'"), the top-k set or the sign pattern ("'+a', '-b'"), each label
    quoted; ``covers`` is how many items a row decides (a "no" for a ranking prefix rules out
    every ranking that starts with it; 1 otherwise)."""
    rows = [{"item": _item(r.labels, result.kind), "status": r.status, "margin": r.margin,
             "covers": int(r.covers or 1), "method": r.method}
            for r in [*result.feasible, *result.infeasible, *result.undecided]]
    return _table(rows, ("item", "status", "margin", "covers", "method"),
                  ("item", "status", "method"))


def feasibility_frame(result: Feasibility | VocabularyResult | CoTopMatrix | Enumeration
                      ) -> pd.DataFrame:
    """Any feasibility result as a pandas DataFrame: :func:`feasibility_table`,
    :func:`vocabulary_table`, :func:`co_top_table` or :func:`enumeration_table` by its type
    (pandas imported only here)."""
    from unembed.feasibility import CoTopMatrix, Enumeration, Feasibility, VocabularyResult

    if isinstance(result, Feasibility):
        return feasibility_table(result).to_frame()
    if isinstance(result, VocabularyResult):
        return vocabulary_table(result).to_frame()
    if isinstance(result, CoTopMatrix):
        return co_top_table(result).to_frame()
    if isinstance(result, Enumeration):
        return enumeration_table(result).to_frame()
    raise fail(f"The 'result' argument of feasibility_frame must be a feasibility result. "
               f"Got {type(result).__name__} instead.")
