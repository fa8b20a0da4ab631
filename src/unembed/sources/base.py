"""The interface every model source returns, as sources see it: :class:`LoadedModel` (the
protocol), :class:`HeadModel` (defaults for a model whose head is the whole model) and
:func:`require_loaded`, defined in the core (:mod:`unembed.model`) so that analyses take a
model without knowing any source."""

from __future__ import annotations

from unembed.model import HeadModel, LoadedModel, require_loaded

__all__ = ["HeadModel", "LoadedModel", "require_loaded"]
