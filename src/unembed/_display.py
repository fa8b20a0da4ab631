"""How a result object shows itself in a notebook without importing the presentation room.

A value of the core or of an analysis (a :class:`~unembed.head.Head`, a loaded model, an audit
result, a pair table, a feasibility answer, a construction, an equivalence check, neighbours)
answers Jupyter's ``_repr_html_`` with :func:`html`, which calls the renderer
registered for its kind (one of :data:`KINDS`). The renderers live in the presentation room
(:mod:`unembed._reprs`) and register themselves when it is imported, which importing
``unembed`` does; the core never imports them. Without a renderer the answer is the escaped
plain ``repr`` in a ``<pre>`` block.

>>> class Point:
...     def __repr__(self) -> str:
...         return "Point<1, 2>"
>>> html("example", Point())
'<pre>Point&lt;1, 2&gt;</pre>'
>>> register_html("example", lambda p: "<b>point</b>")
>>> html("example", Point())
'<b>point</b>'
"""

from __future__ import annotations

import html as _html
from collections.abc import Callable
from typing import Any, Literal

__all__ = ["KINDS", "html", "register_html"]

Kind = Literal["head", "model", "audit", "pair_table", "feasibility", "vocabulary", "co_top",
               "enumeration", "construction", "equivalence", "keep_cosines", "export",
               "symmetry", "neighbours", "example"]
#: the kinds of value shown in notebooks ("example" for this module's own doctest)
KINDS: tuple[Kind, ...] = ("head", "model", "audit", "pair_table", "feasibility", "vocabulary",
                           "co_top", "enumeration", "construction", "equivalence",
                           "keep_cosines", "export", "symmetry", "neighbours", "example")

_HTML: dict[Kind, Callable[[Any], str]] = {}


def register_html(kind: Kind, render: Callable[[Any], str]) -> None:
    """Show values of ``kind`` in notebooks with ``render``."""
    _HTML[kind] = render


def html(kind: Kind, obj: object) -> str:
    """The notebook HTML of ``obj`` (a value of ``kind``): its renderer's, else its escaped
    repr."""
    render = _HTML.get(kind)
    if render is None:
        return f"<pre>{_html.escape(repr(obj))}</pre>"
    return render(obj)
