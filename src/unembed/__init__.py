"""unembed: what the cosine of two label representations does and does not say about a
classifier's probabilities.

The public surface is re-exported here; everything else is private.
"""

from unembed import _reprs as _reprs
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
from unembed.neighbours import neighbours
from unembed.report import (
    plot_before_after,
    plot_heatmap,
    plot_scatter_grid,
    write_report,
)
from unembed.sources import load, load_head_file
from unembed.views import VIEWS, cosine, difference_cosine, invariance, similarity_matrix

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
