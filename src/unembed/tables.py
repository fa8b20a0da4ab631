"""Labelled tables: similarity matrices as data frames and long-format pair tables.

A pair table has one row per unordered pair of labels (a, b) with a before b in the label set,
and per similarity view: ``label_a, label_b, view, cosine`` plus one column per behavioural
measure when the pairs come from an audit (the measures do not depend on the view, so they
repeat across a pair's rows). This is the "long" (tidy) layout that pandas, polars, R and
spreadsheets group and plot directly.

The table value itself is :class:`unembed.pair_table.PairTable` (re-exported here). pandas
is optional: it is imported only by :meth:`PairTable.to_frame`,
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

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from unembed._checks import UnembedError
from unembed.head import Head, LabelRef
from unembed.pair_table import PairTable, pairs_from_matrices, pandas_module, table_of_rows

if TYPE_CHECKING:
    import pandas as pd

    from unembed.feasibility import CoTopMatrix, Enumeration, Feasibility, VocabularyResult
    from unembed.views import ViewData

__all__ = ["PairTable", "co_top_table", "enumeration_table", "feasibility_frame",
           "feasibility_table", "pair_table", "pairs_from_matrices", "similarity_frame",
           "vocabulary_table", "write_pairs"]


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
    pd = pandas_module()
    return pd.DataFrame(similarity_matrix(head, idx, view), index=pd.Index(names, name="label"),
                        columns=pd.Index(names, name=f"{view} cosine"))


def check_pairs_suffix(path: str | os.PathLike[str]) -> Path:
    """``path`` as the file of a pair table: a .csv or .parquet suffix, else refused."""
    p = Path(path)
    if p.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise UnembedError("a pair table is written as .csv or .parquet; got suffix "
                           f"{p.suffix or '(none)'!r}.", path=p)
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
    return table_of_rows([row], list(row), ("question", "labels", "status", "method", "realises"))


def vocabulary_table(result: VocabularyResult) -> PairTable:
    """One row per label: ``label, status, margin, method`` (status "yes" / "no" /
    "undecided"; margin as :class:`~unembed.feasibility.VocabularyResult` defines it)."""
    rows = [{"label": lab, "status": str(result.status[i]), "margin": float(result.margin[i]),
             "method": str(result.method[i])} for i, lab in enumerate(result.labels)]
    return table_of_rows(rows, ("label", "status", "margin", "method"),
                         ("label", "status", "method"))


def co_top_table(result: CoTopMatrix) -> PairTable:
    """One row per unordered pair (a before b in the label set): ``label_a, label_b, status,
    feasible, margin`` (whether the two can be the top two of the whole head together)."""
    rows = [{"label_a": result.labels[i], "label_b": result.labels[j], "status": r.status,
             "feasible": bool(r.feasible), "margin": r.margin}
            for (i, j), r in sorted(result.results.items())]
    return table_of_rows(rows, ("label_a", "label_b", "status", "feasible", "margin"),
                  ("label_a", "label_b", "status"))


def enumeration_table(result: Enumeration) -> PairTable:
    """One row per item decided: ``item, status, margin, covers, method``. ``item`` is the
    ranking ("'a' > 'b' > 'c'"), the top-k set or the sign pattern ("'+a', '-b'"), each label
    quoted; ``covers`` is how many items a row decides (a "no" for a ranking prefix rules out
    every ranking that starts with it; 1 otherwise)."""
    rows = [{"item": _item(r.labels, result.kind), "status": r.status, "margin": r.margin,
             "covers": int(r.covers or 1), "method": r.method}
            for r in [*result.feasible, *result.infeasible, *result.undecided]]
    return table_of_rows(rows, ("item", "status", "margin", "covers", "method"),
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
    raise UnembedError("must be a feasibility result. "
                       f"Got {type(result).__name__} instead.", argument="result",
                       function="feasibility_frame")
