"""One conversion to plain JSON types for every JSON unembed writes (CLI ``--json``, reports)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def jsonable(x: Any) -> Any:
    """Plain JSON types: dicts, lists, floats, ints, bools, strings. NumPy scalars and arrays
    are converted; NaN and infinities become null (strict JSON); objects with ``to_dict()``
    are converted through it."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, np.integer):
        return int(x)
    if hasattr(x, "to_dict"):
        return jsonable(x.to_dict())
    return x
