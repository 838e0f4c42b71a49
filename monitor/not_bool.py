"""A number field given a boolean: refused, beside every other error of its mapping. YAML 1.1 reads an unquoted true, false, yes, no, on and off as
booleans, and pydantic (lax: a ${VAR} is interpolated as text, so "90" must still read as 90) took them as 1 and 0
(`max_tokens: true` sent max_tokens=1, `samples: on` ran one sample). The config models and the checks refuse one,
with the word as written shown by the config's error (`validate`)."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import ErrorType

M = TypeVar("M", bound=BaseModel)

NOT_BOOL = "number_not_bool"  # the error's type: `validate` shows the word as written (yes, on) for its value
_SAID = "a number, not a boolean: YAML reads true, false, yes, no, on and off as booleans"
_KINDS: dict[tuple[type, str], str] = {}
_PYDANTIC_TYPES = frozenset(get_args(ErrorType))


def refuse_bools(model: type[M], data: Any, handler: Callable[[Any], M]) -> M:
    """Validate `data` (a model's input) with `handler`, or raise pydantic's error naming each boolean given to a
    field of `model` that takes a number (or a list of them) and no boolean: at the field (an item of a list), for
    `validate` to place, beside every other error of the model.

    A model's wrap-validator (a field's cannot be put on a tagged union's `type`). A boolean field is left out of
    what the other errors are found in (its default taken, or its own "missing" dropped), so that no error follows
    from the 1 or 0 pydantic would read it as; a boolean item of a list is kept, its errors dropped."""
    if not isinstance(data, dict):
        return handler(data)
    errors: list[InitErrorDetails] = []
    rest = dict(data)
    for name, value in data.items():
        if not isinstance(value, bool | list | tuple) or not isinstance(name, str):
            continue
        kind = _field_kind(model, name)
        if kind == "number" and isinstance(value, bool):
            errors.append(_error((name,), value))
            del rest[name]
        elif kind == "numbers" and isinstance(value, list | tuple):
            errors += [_error((name, i), item) for i, item in enumerate(value) if isinstance(item, bool)]
    if not errors:
        return handler(data)
    fields = {e["loc"][:1] for e in errors}  # a removed field's "missing", a list's own error (its [low, high])
    items = {e["loc"] for e in errors if len(e["loc"]) > 1}  # a boolean item's errors, at it or within it
    try:
        handler(rest)
    except ValidationError as e:
        errors += [_again(err) for err in e.errors() if tuple(err["loc"]) not in fields
                   and not any(tuple(err["loc"][:len(i)]) == i for i in items)]
    raise ValidationError.from_exception_data(model.__name__, errors)


def _again(err: ErrorDetails) -> InitErrorDetails:
    """One of pydantic's errors as raised again, its message, value and context (a key it names) kept."""
    ctx = err.get("ctx")
    kind: Any = err["type"] if err["type"] in _PYDANTIC_TYPES else PydanticCustomError(err["type"], err["msg"], ctx)
    out = InitErrorDetails(type=kind, loc=err["loc"], input=err["input"])
    if ctx is not None and isinstance(kind, str):
        out["ctx"] = ctx
    return out


def _error(loc: tuple[str | int, ...], value: bool) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError(NOT_BOOL, _SAID), loc=loc, input=value)


def _field_kind(model: type[BaseModel], name: str) -> str:
    key = (model, name)
    if key not in _KINDS:
        field = model.model_fields.get(name) or next((f for f in model.model_fields.values() if f.alias == name), None)
        _KINDS[key] = _kind(field.annotation) if field is not None else ""
    return _KINDS[key]


def _kind(tp: Any) -> str:
    """"number" for int or float (optional too), "numbers" for a list or tuple of them, else ""."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _kind(get_args(tp)[0])
    if tp in (int, float):
        return "number"
    if origin in (Union, types.UnionType):
        kinds = {_kind(a) for a in get_args(tp) if a is not type(None)}
        return kinds.pop() if len(kinds) == 1 else ""
    if origin in (list, tuple):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        return "numbers" if args and all(_kind(a) == "number" for a in args) else ""
    return ""
