"""The key an unknown one was most likely meant as (`tag` -> `tags`, `api_key_evn` -> `api_key_env`), found by walking
the config model along the error's path (pydantic's, with the tags of tagged unions) to the models that refused it.
Only a typo's key is named (one edit: a letter added, dropped or changed, or two neighbours swapped): a key of
another format written on purpose (exporter-toolkit's `http_server_config`) or another meaning (`cache_write_5m_input`
is not `cache_write_1h_input`) is not mistaken for one."""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from rapidfuzz.distance import OSA


def nearest_key(model: type[BaseModel], loc: Sequence[Any]) -> str | None:
    """The known key closest to the unknown one at the end of `loc` (None: no model there, or none close)."""
    if not loc or not isinstance(loc[-1], str):
        return None
    types_at: list[Any] = [model]
    for part in loc[:-1]:
        types_at = [t for found in types_at for member in _members(found) for t in _step(member, part)]
    known = [name for t in types_at for m in _members(t) if _is_model(m) for name in _names(m)]
    near = [name for name in dict.fromkeys(known) if _edits(loc[-1], name) <= MAX_EDITS]
    return near[0] if near else None


MAX_EDITS = 1  # edits between an unknown key and a known one that make it a typo of it


def _edits(a: str, b: str) -> int:
    """Insertions, deletions, substitutions and swaps of neighbours turning `a` into `b` (optimal string alignment),
    MAX_EDITS + 1 for any more."""
    return OSA.distance(a, b, score_cutoff=MAX_EDITS)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items() if name != "source"]


def _members(tp: Any) -> list[Any]:
    """`tp` without Annotated and Optional, a union's members each."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _members(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(tp) for m in _members(a)]
    return [tp]


def _step(tp: Any, part: Any) -> list[Any]:
    """What the value at `part` of a value of type `tp` may be: a model's field, a tagged union's member named by
    its tag (the model itself), a list's item or a mapping's value."""
    if _is_model(tp):
        field = next((f for name, f in tp.model_fields.items() if part in (name, f.alias)), None)
        if field is not None:
            return [field.annotation]
        tag = tp.model_fields.get("type")
        return [tp] if tag is not None and part in typing.get_args(tag.annotation) else []
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, tuple, set, frozenset) and isinstance(part, int) and args:
        return [args[0]]
    if origin is dict and len(args) == 2:
        return [args[1]]
    return []
