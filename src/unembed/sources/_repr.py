"""The ``repr`` and notebook view every loaded model shares: ``ClassName(kind=..., head=Head(...),
source=...)``, and the HTML the presentation room registers for models
(:mod:`unembed._display`)."""

from __future__ import annotations

from typing import Protocol

from unembed._display import html
from unembed.head import Head

__all__ = ["model_html", "model_repr"]


class _Shown(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def head(self) -> Head: ...


def model_repr(model: _Shown) -> str:
    """``ClassName(kind=..., head=Head(...), source=...)``."""
    head = model.head
    return (f"{type(model).__name__}(kind={model.kind!r}, head={head!r}, "
            f"source={head.source!r})")


def model_html(model: _Shown) -> str:
    """The model's notebook HTML (rendered by the presentation room)."""
    return html("model", model)
