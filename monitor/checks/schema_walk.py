"""How the json_schema check's load-time checks walk a JSON Schema: which values under a subschema are subschemas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})  # hold instances, not subschemas
# hold subschemas by name (a property may be called `$schema`); `dependencies` (draft 7) also lists of names
SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas",
                          "dependencies"})


def under(node: dict[str, Any], schema: bool) -> Iterator[tuple[str, Any, bool]]:
    """What to walk under `node` for subschemas: each key, value and whether the value is a schema (else a map of
    them by name). A schema's keywords holding instances are left out; a map's entries are all schemas, whatever
    their names (a property may be called `enum` or `default`)."""
    for key, value in node.items():
        if not schema:
            yield key, value, True
        elif key not in DATA_KEYWORDS:
            yield key, value, key not in SCHEMA_MAPS


__all__ = ["DATA_KEYWORDS", "SCHEMA_MAPS", "under"]
