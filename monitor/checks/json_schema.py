"""json_schema: the completion is JSON that validates against a JSON Schema.

`jsonschema` (with referencing, rpds and attrs: ~2.6 MB resident) is imported when a canary uses this check.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from monitor.checks.base import BaseCheck, Context, Verdict
from monitor.checks.json_valid import parse_json
from monitor.domain import Observation


class JsonSchemaCheck(BaseCheck):
    """Pass when the completion parses as JSON and validates against ``schema`` (checked on load)."""

    type: Literal["json_schema"]
    json_schema: dict[str, Any] = Field(alias="schema")
    allow_fenced: bool = True

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_schema(v)


def check_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Raise ValueError naming the problem when ``schema`` is not a valid JSON Schema."""
    import jsonschema
    from jsonschema.exceptions import SchemaError

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except SchemaError as e:
        where = "/".join(str(p) for p in e.path) or "(root)"
        raise ValueError(f"invalid JSON Schema at {where}: {e.message}") from None
    return schema


def schema_errors(instance: Any, schema: dict[str, Any]) -> str | None:
    """Validate ``instance``; return the most relevant error as one line, or None."""
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {where}: {error.message}"


def json_schema(spec: JsonSchemaCheck, obs: Observation, ctx: Context) -> Verdict:
    """Check the completion against the JSON Schema."""
    value, error = parse_json(obs.call.text, spec.allow_fenced)
    if error:
        return False, error
    problem = schema_errors(value, spec.json_schema)
    return (False, f"schema violation {problem}") if problem else (True, "matches schema")


__all__ = ["JsonSchemaCheck", "check_schema", "json_schema", "schema_errors"]
