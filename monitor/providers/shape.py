"""Reading an answer's JSON where the wire format says what a field holds.

A field of another JSON type (a delta that is a list, text that is a number) used to fail the call with whatever
Python said of the operation it broke ("'list' object has no attribute 'get'"), naming neither the field nor the
value. Read through `get`, it fails with a `ValueError` that names both, by the field's path in the answer
(``choices[0].delta.content 5 is not text``), and the provider makes the call a `bad_response` saying so. Values
that `vet` checks afterwards (names, finish reasons, token counts) are left to it: it names several at once.
"""

from __future__ import annotations

from typing import Any

from monitor.providers.base import CUT

_WHAT: dict[type, str] = {str: "text", dict: "an object", list: "a list", int: "an integer"}


def shown(value: Any) -> str:
    """A value as the messages show it: its repr, cut at 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + CUT


def get(parent: dict[str, Any], key: str, kind: type, where: str = "") -> Any:
    """`parent[key]` when it is a `kind` (None when it is missing or null); raise ValueError naming it otherwise.

    `where` is the path of `parent` in the answer, ending in a dot (empty at the top)."""
    value = parent.get(key)
    if value is None or (isinstance(value, kind) and not (kind is int and isinstance(value, bool))):
        return value
    raise ValueError(f"{where}{key} {shown(value)} is not {_WHAT[kind]}")


def obj(value: Any, where: str) -> dict[str, Any]:
    """`value` when it is an object; raise ValueError naming it (by its path, `where`) otherwise."""
    if isinstance(value, dict):
        return value
    raise ValueError(f"{where} {shown(value)} is not an object")
