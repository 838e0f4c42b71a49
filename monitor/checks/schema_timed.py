"""The json_schema check's validator classes: jsonschema's of each dialect, with the keywords that match a schema's
regular expressions against the answer doing so under the time limit of `patterns`."""

from __future__ import annotations

from typing import Any

from monitor.checks import patterns

_TIMED: dict[type, type] = {}  # each stock class's timed one, and each timed one's itself


def timed(cls: Any) -> Any:
    """The validator class `cls` with the keywords that match a pattern against the answer (`pattern`,
    `patternProperties`, and the `additionalProperties` and `unevaluatedProperties` leaving out the keys it matches)
    matching it under a time limit (see patterns), switching to the timed class of a dialect wherever validation
    does: a subschema's own `$schema` (a part of another dialect, an embedded resource, a meta-schema reached by a
    `$ref`) makes jsonschema's `evolve` pick that dialect's stock class, which matches with `re` and no limit."""
    if cls not in _TIMED:
        import attrs
        import jsonschema

        def evolve(self: Any, **changes: Any) -> Any:
            # jsonschema's own evolve, but for the class it switches to
            schema = changes.setdefault("schema", self.schema)
            new = timed(jsonschema.validators.validator_for(schema, default=type(self)))
            for field in attrs.fields(type(self)):
                if field.init and field.alias not in changes:
                    changes[field.alias] = getattr(self, field.name)
            return new(**changes)

        made = jsonschema.validators.extend(cls, _limited(cls))
        made.evolve = evolve
        _TIMED[cls] = _TIMED[made] = made
    return _TIMED[cls]


def _limited(cls: Any) -> dict[str, Any]:
    """The time-limited functions of the keywords of `cls` that match a pattern against the answer."""
    import jsonschema

    from monitor.checks import schema_unevaluated as unevaluated

    legacy = cls.VALIDATORS.get("unevaluatedProperties") is jsonschema.Draft201909Validator.VALIDATORS[
        "unevaluatedProperties"]
    limited = {"pattern": _pattern, "patternProperties": _pattern_properties,
               "additionalProperties": unevaluated.additional_properties,
               "unevaluatedProperties": unevaluated.unevaluated_properties_2019 if legacy
               else unevaluated.unevaluated_properties}
    return {key: fn for key, fn in limited.items() if key in cls.VALIDATORS}


def _pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Any:
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not patterns.search(patterns.compile_pattern(patrn), instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def _pattern_properties(validator: Any, properties: dict[str, Any], instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "object"):
        return
    for patrn, subschema in properties.items():
        rx = patterns.compile_pattern(patrn)
        for k, v in instance.items():
            if patterns.search(rx, k):
                yield from validator.descend(v, subschema, path=k, schema_path=patrn)


__all__ = ["timed"]
