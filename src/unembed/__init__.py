"""unembed: what the cosine of two label representations does and does not say about a
classifier's probabilities.

The public surface is re-exported here; everything else is private.
"""

from unembed._checks import UnembedError
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
from unembed.sources import load_head_file

__version__ = "0.1.0"

__all__ = [
    "Head",
    "Symmetry",
    "UnembedError",
    "__version__",
    "center",
    "load_head_file",
    "reparametrize",
    "shift_bias",
    "shift_in_null_space",
    "symmetries",
    "translate",
]
