"""json_schema: the completion is JSON that validates against a JSON Schema.

`jsonschema` (with referencing, rpds and attrs: ~2.6 MB resident) is imported when a canary uses this check.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from monitor.checks import patterns
from monitor.checks.base import BaseCheck, Context, Verdict
from monitor.checks.json_valid import parse_json
from monitor.domain import Observation


class JsonSchemaCheck(BaseCheck):
    """Pass when the completion parses as JSON and validates against ``schema`` (checked on load).

    ``schema`` may be written ``json_schema`` (its name in the code) instead, not both.
    """

    type: Literal["json_schema"]
    json_schema: dict[str, Any] = Field(alias="schema")
    allow_fenced: bool = True

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_schema(v)


SHOWN_ERRORS = 10  # a schema's problems an error names at most


def check_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Raise ValueError naming every problem (up to ``SHOWN_ERRORS``) when ``schema`` is not a valid JSON Schema,
    as `check-config` names every other problem in one run (the validator's own check_schema names one)."""
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    meta = cls(cls.META_SCHEMA, format_checker=cls.FORMAT_CHECKER)  # as check_schema: `pattern` must be a regex
    problems = list(dict.fromkeys(f"at {'/'.join(str(p) for p in e.path) or '(root)'}: {e.message}"
                                  for e in meta.iter_errors(schema)))
    if problems:
        more = f"; and {len(problems) - SHOWN_ERRORS} more" if len(problems) > SHOWN_ERRORS else ""
        raise ValueError(f"invalid JSON Schema {'; '.join(problems[:SHOWN_ERRORS])}{more}")
    _check_refs(schema)
    return schema


_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})  # hold instances, not subschemas


def _check_refs(schema: dict[str, Any]) -> None:
    """Raise ValueError for a `$ref` that does not resolve within the schema (there is no network to fetch
    one from); else it would fail every observation's check with a crash instead of naming the schema."""
    import referencing
    import referencing.jsonschema
    from referencing.exceptions import Unresolvable

    resource = referencing.jsonschema.DRAFT202012.create_resource(schema)
    resolver = referencing.Registry().with_resource("", resource).resolver("")

    def walk(node: Any, path: list[str]) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, [*path, str(i)])
            return
        if not isinstance(node, dict) or (path and "$id" in node):  # a nested $id moves the base: not checked
            return
        ref = node.get("$ref")
        if isinstance(ref, str):
            try:
                resolver.lookup(ref)
            except Unresolvable:
                where = "/".join(path) or "(root)"
                raise ValueError(f"invalid JSON Schema at {where}: $ref {ref!r} does not resolve within the "
                                 "schema") from None
        for key, value in node.items():
            if key not in _DATA_KEYWORDS:
                walk(value, [*path, key])

    walk(schema, [])


def schema_errors(instance: Any, schema: dict[str, Any]) -> str | None:
    """Validate ``instance``; return the most relevant error as one line, or None. Raise
    :class:`patterns.PatternTimeout` when a ``pattern`` of the schema backtracks past its time limit."""
    import jsonschema

    validator = _timed(jsonschema.validators.validator_for(schema))(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {where}: {error.message}"


_TIMED: dict[type, type] = {}


def _timed(cls: Any) -> Any:
    """The validator class with `pattern` and `patternProperties` matched under a time limit (see patterns)."""
    if cls not in _TIMED:
        import jsonschema
        from jsonschema.exceptions import ValidationError

        def pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Any:
            if validator.is_type(instance, "string") and not patterns.search(patterns.compile_pattern(patrn), instance):
                yield ValidationError(f"{instance!r} does not match {patrn!r}")

        def pattern_properties(validator: Any, properties: dict[str, Any], instance: Any, schema: Any) -> Any:
            if not validator.is_type(instance, "object"):
                return
            for patrn, subschema in properties.items():
                rx = patterns.compile_pattern(patrn)
                for k, v in instance.items():
                    if patterns.search(rx, k):
                        yield from validator.descend(v, subschema, path=k, schema_path=patrn)

        _TIMED[cls] = jsonschema.validators.extend(cls, {"pattern": pattern, "patternProperties": pattern_properties})
    return _TIMED[cls]


def json_schema(spec: JsonSchemaCheck, obs: Observation, ctx: Context) -> Verdict:
    """Check the completion against the JSON Schema."""
    value, error = parse_json(obs.call.text, spec.allow_fenced)
    if error:
        return False, error
    try:
        problem = schema_errors(value, spec.json_schema)
    except patterns.PatternTimeout as e:
        return None, f"no verdict: {e}"
    return (False, f"schema violation {problem}") if problem else (True, "matches schema")


__all__ = ["JsonSchemaCheck", "check_schema", "json_schema", "schema_errors"]
