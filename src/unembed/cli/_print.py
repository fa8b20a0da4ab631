"""How the command line prints: JSON for scripts, signed numbers for people, and the notes a
result needs beside it."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from unembed._json import jsonable
from unembed.head import Head


def masked_note(head: Head) -> str | None:
    """For a head whose model takes the argmax over a per-input subset of labels (spaCy's
    parser and NER: the moves valid in each state), what a feasibility answer over all labels
    does and does not say; None for every other head."""
    if not head.masked_argmax:
        return None
    return ("this component takes the argmax over the moves valid in each state; these "
            "answers are over all moves: a move that is never the argmax over all moves can "
            "still be chosen in states where the moves beating it are invalid")


def print_json(obj: Any) -> None:
    json.dump(jsonable(obj), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def fmt(x: float, digits: int = 6) -> str:
    return f"{x:+.{digits}f}" if math.isfinite(x) else str(x)
