"""A number field given a boolean: refused. YAML 1.1 reads an unquoted true, false, yes, no, on and off as
booleans, and pydantic (lax: a ${VAR} is interpolated as text, so "90" must still read as 90) took them as 1 and 0
(`max_tokens: true` sent max_tokens=1, `samples: on` ran one sample). The config models and the checks refuse one,
with the word as written shown by the config's error (`validate`)."""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

NOT_BOOL = "number_not_bool"  # the error's type: `validate` shows the word as written (yes, on) for its value
_SAID = "a number, not a boolean: YAML reads true, false, yes, no, on and off as booleans"
_KINDS: dict[tuple[type, str], str] = {}


def refuse_bools(model: type[BaseModel], data: Any) -> Any:
    """Return `data` (a model's input), or raise pydantic's error naming each boolean given to a field of `model`
    that takes a number (or a list of them) and no boolean: at the field (an item of a list), for `validate` to place.

    A model's before-validator (a field's cannot be put on a tagged union's `type`): the model's other errors come
    once its booleans are fixed."""
    if not isinstance(data, dict):
        return data
    errors: list[InitErrorDetails] = []
    for name, value in data.items():
        if not isinstance(value, bool | list | tuple) or not isinstance(name, str):
            continue
        kind = _field_kind(model, name)
        if kind == "number" and isinstance(value, bool):
            errors.append(_error((name,), value))
        elif kind == "numbers" and isinstance(value, list | tuple):
            errors += [_error((name, i), item) for i, item in enumerate(value) if isinstance(item, bool)]
    if errors:
        raise ValidationError.from_exception_data(model.__name__, errors)
    return data


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
