"""What jsonschema's validator of a dialect applies in a subschema: the keywords it runs (its class's VALIDATORS), and
the subschemas they hold, the ones applied to the very value their schema is (in place) told apart."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from monitor.checks.schema_walk import SCHEMA_MAPS

REFERENCES = ("$ref", "$dynamicRef", "$recursiveRef")  # each followed where its dialect's validator has it
# Keywords whose subschemas jsonschema applies to the value their schema does, not to a part of it (draft 3's `type`
# and `disallow` hold schemas beside type names, its `extends` one or a list of them)
IN_PLACE = frozenset({"allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas", "dependencies",
                      "extends", "type", "disallow"})
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})  # hold instances, not subschemas


def applied(node: dict[str, Any], cls: Any) -> list[str]:
    """The keywords of `node` that the validator class `cls` runs, in order: those in its VALIDATORS, and `then` and
    `else` beside an `if` it runs (jsonschema's `if` applies them; alone they are ignored)."""
    keys = [key for key in node if key in cls.VALIDATORS]
    if "if" in keys:
        keys += [key for key in ("then", "else") if key in node]
    return keys


def subschemas(key: str, value: Any) -> Iterator[dict[str, Any]]:
    """The subschemas that the keyword `key` holds in `value` (a map's entries; a list's schemas; the value itself)."""
    if key in _DATA_KEYWORDS:
        return
    if key in SCHEMA_MAPS:
        values = list(value.values()) if isinstance(value, dict) else []
    else:
        values = value if isinstance(value, list) else [value]
    yield from (v for v in values if isinstance(v, dict))


__all__ = ["IN_PLACE", "REFERENCES", "applied", "subschemas"]
