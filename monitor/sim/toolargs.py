"""Tool-call arguments for the simulated upstream: valid for a JSON schema, or deliberately not."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

_WORDS = ["alpha", "berlin", "report", "python", "status", "blue", "celsius", "today", "example"]


def value_for(schema: dict[str, Any], rng: np.random.Generator, depth: int = 0) -> Any:
    """Build a value that satisfies a (simple) JSON schema."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][int(rng.integers(len(schema["enum"])))]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return value_for(schema[key][0], rng, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {}) if depth < 6 else {}
        return {name: value_for(sub, rng, depth + 1) for name, sub in props.items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), 1)
        return [value_for(schema.get("items", {}), rng, depth + 1) for _ in range(count)]
    if kind == "integer":
        low = int(schema.get("minimum", 0))
        return int(rng.integers(low, int(schema.get("maximum", low + 100)) + 1))
    if kind == "number":
        bottom = float(schema.get("minimum", 0))
        return round(float(rng.uniform(bottom, float(schema.get("maximum", bottom + 100)))), 2)
    if kind == "boolean":
        return bool(rng.random() < 0.5)
    if kind == "null":
        return None
    word = _WORDS[int(rng.integers(len(_WORDS)))]
    return word.ljust(int(schema.get("minLength", 0)), "x")


def invalid_for(schema: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Build arguments that break the schema: a required property missing or of the wrong type."""
    valid = value_for(schema, rng)
    args = valid if isinstance(valid, dict) else {}
    required = [r for r in schema.get("required", []) if r in args]
    if required and rng.random() < 0.5:
        del args[required[int(rng.integers(len(required)))]]
        return args
    props = schema.get("properties", {})
    if props:
        name = list(props)[int(rng.integers(len(props)))]
        kind = props[name].get("type")
        args[name] = {"unexpected": True} if kind in ("string", "number", "integer", "boolean") else "not-valid"
        return args
    return {"unexpected_argument": 1} if schema.get("additionalProperties") is False else {"_": [1, "x"]}


def arguments(schema: dict[str, Any], rng: np.random.Generator, invalid_p: float, malformed_p: float) -> str:
    """Return the JSON arguments string for a tool call (valid, schema-invalid, or not JSON at all)."""
    draw = rng.random()
    if draw < malformed_p:
        text = json.dumps(value_for(schema, rng))
        return text[: max(1, len(text) // 2)]
    if draw < malformed_p + invalid_p:
        return json.dumps(invalid_for(schema, rng))
    return json.dumps(value_for(schema, rng))
