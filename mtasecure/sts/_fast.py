"""Building frozen models from values the parsers have already validated.

The parsers check every field themselves (that is their job, and they report
the line and the RFC rule, which pydantic cannot); running pydantic's
validation again on the hot path would double the cost of a parse. These
helpers fill a model's storage directly, as ``BaseModel.model_construct``
does, without its per-field default handling. A parser does::

    model = new(StsRecord)
    state = model.__dict__          # every field, in declaration order
    state["id"] = ...
    state["extensions"] = ...
    set_fields_set(model, {"id", "extensions"})
    set_extra(model, None)
    set_private(model, None)

The result compares equal to ``StsRecord(id=..., extensions=...)``; the
tests check that for every parser.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

__all__ = ["new", "set_extra", "set_fields_set", "set_private"]

new: Callable[[type[Any]], Any] = object.__new__
"""Allocate an instance without running ``__init__`` (and so without validation)."""

# BaseModel keeps these three in __slots__; calling their descriptors directly
# is the cheapest way to fill them.
set_fields_set: Callable[[BaseModel, set[str]], None] = BaseModel.__dict__[
    "__pydantic_fields_set__"
].__set__
set_extra: Callable[[BaseModel, None], None] = BaseModel.__dict__["__pydantic_extra__"].__set__
set_private: Callable[[BaseModel, None], None] = BaseModel.__dict__["__pydantic_private__"].__set__
