"""jsonschema's `additionalProperties` and `unevaluatedProperties` (2020-12's and 2019-09's), the answer's keys that a
`patternProperties` leaves out matched under the time limit of `patterns`: jsonschema's own match them with `re`,
and no limit, before their schema's `patternProperties` keyword runs, or where none does (through a `$ref`).
Otherwise as jsonschema 4.26's: the same keys left out, the same errors."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from monitor.checks import patterns


def _matched(schema: dict[str, Any], key: str) -> bool:
    """Whether a pattern of the `patternProperties` of `schema` matches `key` (jsonschema's additionalProperties
    joined them into one with `|`; one by one matches the same keys, each pattern's groups its own)."""
    return any(patterns.search(patterns.compile_pattern(p), key) for p in schema.get("patternProperties", {}))


def _listed(keys: Iterable[Any]) -> str:
    keys = list(keys)
    return f"{', '.join(repr(k) for k in keys)} {'was' if len(keys) == 1 else 'were'}"


def additional_properties(validator: Any, ap: Any, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    extras = {key for key in instance if key not in properties and not _matched(schema, key)}
    if validator.is_type(ap, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], ap, path=extra)
    elif not ap and extras:
        if "patternProperties" in schema:
            joined = ", ".join(repr(each) for each in sorted(extras))
            regexes = ", ".join(repr(each) for each in sorted(schema["patternProperties"]))
            yield ValidationError(f"{joined} {'does' if len(extras) == 1 else 'do'} not match any of the regexes: "
                                  f"{regexes}")
        else:
            yield ValidationError(f"Additional properties are not allowed ({_listed(sorted(extras, key=str))} "
                                  "unexpected)")


def _valid(errors: Iterator[Any]) -> bool:
    return next(errors, None) is None


def _evaluated(validator: Any, instance: dict[str, Any], schema: Any, legacy: bool) -> list[Any]:
    """The keys of `instance` that `schema` evaluates, as jsonschema's find_evaluated_property_keys_by_schema of
    2020-12 (of 2019-09 when `legacy`)."""
    if validator.is_type(schema, "boolean"):
        return []
    keys: list[Any] = []

    def into(resolved: Any) -> list[Any]:
        return _evaluated(validator.evolve(schema=resolved.contents, _resolver=resolved.resolver), instance,
                          resolved.contents, legacy)

    if (ref := schema.get("$ref")) is not None:
        keys += into(validator._resolver.lookup(ref))
    if legacy:
        if "$recursiveRef" in schema:
            from referencing.jsonschema import lookup_recursive_ref

            keys += into(lookup_recursive_ref(validator._resolver))
        for keyword in ("properties", "additionalProperties", "unevaluatedProperties"):
            value = schema.get(keyword)
            if validator.is_type(value, "boolean") and value:
                keys += instance.keys()
            elif keyword in schema and validator.is_type(value, "object"):
                keys += [key for key in value if key in instance]
    else:
        if (dynamic := schema.get("$dynamicRef")) is not None:
            keys += into(validator._resolver.lookup(dynamic))
        if validator.is_type(properties := schema.get("properties"), "object"):
            keys += properties.keys() & instance.keys()
        for keyword in ("additionalProperties", "unevaluatedProperties"):
            if (subschema := schema.get(keyword)) is not None:
                keys += [key for key, value in instance.items() if _valid(validator.descend(value, subschema))]
    if "patternProperties" in schema:
        keys += [key for key in instance for p in schema["patternProperties"]
                 if patterns.search(patterns.compile_pattern(p), key)]
    for key, subschema in schema.get("dependentSchemas", {}).items():
        if key in instance:
            keys += _evaluated(validator, instance, subschema, legacy)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, []):
            if _valid(validator.descend(instance, subschema)):
                keys += _evaluated(validator, instance, subschema, legacy)
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            keys += _evaluated(validator, instance, schema["if"], legacy)
            if "then" in schema:
                keys += _evaluated(validator, instance, schema["then"], legacy)
        elif "else" in schema:
            keys += _evaluated(validator, instance, schema["else"], legacy)
    return keys


def _unevaluated(validator: Any, up: Any, instance: Any, schema: dict[str, Any], legacy: bool) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    evaluated = _evaluated(validator, instance, schema, legacy)
    # a key once for each of its errors, as jsonschema lists it
    left = [key for key in instance if key not in evaluated
            for _ in validator.descend(instance[key], up, path=key, schema_path=key)]
    if left and up is False:
        yield ValidationError(f"Unevaluated properties are not allowed ({_listed(sorted(left, key=str))} unexpected)")
    elif left:
        yield ValidationError(f"Unevaluated properties are not valid under the given schema ({_listed(left)} "
                              "unevaluated and invalid)")


def unevaluated_properties(validator: Any, up: Any, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    return _unevaluated(validator, up, instance, schema, legacy=False)


def unevaluated_properties_2019(validator: Any, up: Any, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    return _unevaluated(validator, up, instance, schema, legacy=True)


__all__ = ["additional_properties", "unevaluated_properties", "unevaluated_properties_2019"]
