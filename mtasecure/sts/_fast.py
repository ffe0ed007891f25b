"""Building frozen models from values the parsers have already validated.

The parsers check every field themselves (that is their job, and they report
the line and the RFC rule, which pydantic cannot); running pydantic's
validation again on the hot path would double the cost of every parse. This
helper fills a model's storage directly, the way ``BaseModel.model_construct``
does, without its per-field default handling.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

_M = TypeVar("_M", bound=BaseModel)

_new = object.__new__
_set_dict = object.__setattr__
# BaseModel keeps these three in __slots__; their descriptors' __set__ is the
# cheapest way to fill them.
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def construct(cls: type[_M], values: dict[str, Any]) -> _M:
    """Return an instance of ``cls`` holding ``values``, which must be complete and valid.

    ``values`` must name every field of ``cls``, in declaration order, with
    values of the declared types; nothing is checked. The result compares
    equal to ``cls(**values)``.
    """
    model = _new(cls)
    _set_dict(model, "__dict__", values)
    _set_fields_set(model, set(values))
    _set_extra(model, None)
    _set_private(model, None)
    return model
