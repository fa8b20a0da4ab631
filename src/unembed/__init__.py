"""unembed: what the cosine of two label representations does and does not say about a
classifier's probabilities.

The public surface is re-exported here; everything else is private.
Names are imported on first use (PEP 562), so ``import unembed`` and the command line load
only what they touch: ``unembed cosine`` never imports the LP solvers.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from unembed import _reprs as _reprs

# A name that is also a submodule's is bound now: importing the submodule later would
# otherwise leave the module, not the function, under that name.
from unembed.neighbours import neighbours

if TYPE_CHECKING:  # pragma: no cover
    from unembed.behaviour import collect
    from unembed.construct import (
        translation_for_all_pairs,
        translation_for_cosine,
        translation_for_cosines,
    )
    from unembed.data import open_data
    from unembed.equivalence import Equivalence, compare_heads, compare_logits
    from unembed.errors import UnembedError
    from unembed.export import ExportResult, export_model
    from unembed.feasibility import (
        Feasibility,
        argmaxable_all,
        can_be_top_two,
        co_top_matrix,
        enumerate_combinations,
        enumerate_rankings,
        enumerate_top_k_sets,
        is_argmaxable,
        is_feasible_combination,
        is_feasible_ranking,
        is_top_k_set,
    )
    from unembed.gauges import (
        Symmetry,
        center,
        reparametrize,
        shift_bias,
        shift_in_null_space,
        symmetries,
        translate,
    )
    from unembed.head import Head
    from unembed.report import (
        plot_before_after,
        plot_heatmap,
        plot_scatter_grid,
        write_report,
    )
    from unembed.sources import load, load_head_file
    from unembed.views import VIEWS, cosine, difference_cosine, invariance, similarity_matrix

#: where each public name lives
_WHERE = {
    "argmaxable_all": "unembed.feasibility",
    "can_be_top_two": "unembed.feasibility",
    "center": "unembed.gauges",
    "co_top_matrix": "unembed.feasibility",
    "collect": "unembed.behaviour",
    "compare_heads": "unembed.equivalence",
    "compare_logits": "unembed.equivalence",
    "cosine": "unembed.views",
    "difference_cosine": "unembed.views",
    "enumerate_combinations": "unembed.feasibility",
    "enumerate_rankings": "unembed.feasibility",
    "enumerate_top_k_sets": "unembed.feasibility",
    "Equivalence": "unembed.equivalence",
    "export_model": "unembed.export",
    "ExportResult": "unembed.export",
    "Feasibility": "unembed.feasibility",
    "Head": "unembed.head",
    "invariance": "unembed.views",
    "is_argmaxable": "unembed.feasibility",
    "is_feasible_combination": "unembed.feasibility",
    "is_feasible_ranking": "unembed.feasibility",
    "is_top_k_set": "unembed.feasibility",
    "load": "unembed.sources",
    "load_head_file": "unembed.sources",
    "open_data": "unembed.data",
    "plot_before_after": "unembed.report",
    "plot_heatmap": "unembed.report",
    "plot_scatter_grid": "unembed.report",
    "reparametrize": "unembed.gauges",
    "shift_bias": "unembed.gauges",
    "shift_in_null_space": "unembed.gauges",
    "similarity_matrix": "unembed.views",
    "symmetries": "unembed.gauges",
    "Symmetry": "unembed.gauges",
    "translate": "unembed.gauges",
    "translation_for_all_pairs": "unembed.construct",
    "translation_for_cosine": "unembed.construct",
    "translation_for_cosines": "unembed.construct",
    "UnembedError": "unembed.errors",
    "VIEWS": "unembed.views",
    "write_report": "unembed.report",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:  # a submodule not imported yet, as attribute access found it before
        if name.startswith("__") or importlib.util.find_spec(f"unembed.{name}") is None:
            raise AttributeError(f"module 'unembed' has no attribute {name!r}")
        return importlib.import_module(f"unembed.{name}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


__version__ = "0.1.0"

__all__ = [
    "VIEWS",
    "Equivalence",
    "ExportResult",
    "Feasibility",
    "Head",
    "Symmetry",
    "UnembedError",
    "__version__",
    "argmaxable_all",
    "can_be_top_two",
    "center",
    "co_top_matrix",
    "collect",
    "compare_heads",
    "compare_logits",
    "cosine",
    "difference_cosine",
    "enumerate_combinations",
    "enumerate_rankings",
    "enumerate_top_k_sets",
    "export_model",
    "invariance",
    "is_argmaxable",
    "is_feasible_combination",
    "is_feasible_ranking",
    "is_top_k_set",
    "load",
    "load_head_file",
    "neighbours",
    "open_data",
    "plot_before_after",
    "plot_heatmap",
    "plot_scatter_grid",
    "reparametrize",
    "shift_bias",
    "shift_in_null_space",
    "similarity_matrix",
    "symmetries",
    "translate",
    "translation_for_all_pairs",
    "translation_for_cosine",
    "translation_for_cosines",
    "write_report",
]
