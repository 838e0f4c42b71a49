"""What jsonschema's validator of a dialect applies in a subschema: the keywords it runs (its class's VALIDATORS), and
the subschemas they hold, the ones applied to the very value their schema is (in place) told apart."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from monitor.checks.schema_walk import DATA_KEYWORDS, SCHEMA_MAPS

REFERENCES = ("$ref", "$dynamicRef", "$recursiveRef")  # each followed where its dialect's validator has it
# Keywords whose subschemas jsonschema applies to the value their schema does, not to a part of it (draft 3's `type`
# and `disallow` hold schemas beside type names, its `extends` one or a list of them)
IN_PLACE = frozenset({"allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas", "dependencies",
                      "extends", "type", "disallow"})


def applied(node: dict[str, Any], cls: Any, entry: Any) -> list[str]:
    """The keywords of `node` that its validator class `cls` runs, in order, when entered by a validator of the class
    `entry` (see `entered_by`): those `entry` lists (drafts 3 to 7 list only a `$ref`, when there is one: the keywords
    beside it are ignored) that are in the VALIDATORS of `cls`, and `then` and `else` beside an `if` it runs
    (jsonschema's `if` applies them; alone they are ignored)."""
    keys = [key for key, _ in entry._APPLICABLE_VALIDATORS(node) if key in cls.VALIDATORS]
    if "if" in keys:
        keys += [key for key in ("then", "else") if key in node]
    return keys


def entered_by(key: str, parent: Any, child: Any) -> Any:
    """The validator class that lists the keywords (see `applied`) of a subschema reached from one of the class `parent`
    through `key` (a keyword, or a reference), the subschema's own class being `child`: jsonschema's `if` evolves a
    validator to the subschema and runs it, which lists them by the child's class; every other keyword, and a
    reference, descends into it, which lists them by the parent's (a draft-07 subschema with its own `$schema` has the
    keywords beside its `$ref` run when a 2020-12 validator descends into it)."""
    return child if key == "if" else parent


def subschemas(key: str, value: Any) -> Iterator[dict[str, Any]]:
    """The subschemas that the keyword `key` holds in `value` (a map's entries; a list's schemas; the value itself)."""
    if key in DATA_KEYWORDS:
        return
    if key in SCHEMA_MAPS:
        values = list(value.values()) if isinstance(value, dict) else []
    else:
        values = value if isinstance(value, list) else [value]
    yield from (v for v in values if isinstance(v, dict))


__all__ = ["IN_PLACE", "REFERENCES", "applied", "entered_by", "subschemas"]
