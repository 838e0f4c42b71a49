"""JSON checks (json_valid, json_schema) and tool_call."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from monitor.checks import evaluate, parse_check
from monitor.domain import CallResult, FinishReason, Observation

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"],
        },
    },
}


def obs(text: str = "", tool_calls: list | None = None) -> Observation:
    call = CallResult(text=text, tool_calls=tool_calls or [],
                      finish_reason=FinishReason.TOOL_CALLS if tool_calls else FinishReason.STOP)
    return Observation("c", "t", "sim", "m", datetime(2025, 1, 1, tzinfo=UTC), call)


@pytest.mark.parametrize(
    ("spec", "text", "expected"),
    [
        ({"type": "json_valid"}, '{"a": 1}', True),
        ({"type": "json_valid"}, ' [1, 2]\n', True),
        ({"type": "json_valid"}, 'Here you go:\n```json\n{"a": 1}\n```\nAnything else?', True),
        ({"type": "json_valid", "allow_fenced": False}, '```json\n{"a": 1}\n```', False),
        ({"type": "json_valid"}, '```json\n{"a": 1,\n```', False),
        ({"type": "json_valid"}, "{'a': 1}", False),
        ({"type": "json_valid"}, "", False),
        ({"type": "json_valid", "expect": "object"}, "[1]", False),
        ({"type": "json_valid", "expect": "array"}, "[1]", True),
        ({"type": "json_schema", "schema": PERSON}, '{"name": "Ada", "age": 36}', True),
        ({"type": "json_schema", "schema": PERSON}, '```\n{"name": "Ada", "age": 36}\n```', True),
        ({"type": "json_schema", "schema": PERSON}, '{"name": "Ada", "age": -1}', False),
        ({"type": "json_schema", "schema": PERSON}, '{"name": "Ada"}', False),
        ({"type": "json_schema", "schema": PERSON}, '{"name": "Ada", "age": 36', False),
        ({"type": "json_schema", "schema": PERSON}, "I can't share personal data.", False),
    ],
)
def test_json_checks(spec: dict, text: str, expected: bool) -> None:
    assert evaluate(parse_check(spec), obs(text)).passed is expected


def test_schema_violation_names_the_path() -> None:
    r = evaluate(parse_check({"type": "json_schema", "schema": PERSON}), obs('{"name": "Ada", "age": "x"}'))
    assert r.passed is False
    assert "at age" in r.detail


def call(name: str, args: object) -> dict:
    return {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}


CANARY = {"tools": [WEATHER_TOOL]}


@pytest.mark.parametrize(
    ("spec", "calls", "expected", "detail"),
    [
        ({"function": "get_weather"}, [call("get_weather", {"city": "Oslo"})], True, "valid arguments"),
        ({"function": "get_weather", "arguments": {"city": "oslo"}}, [call("get_weather", {"city": "Oslo "})],
         True, "valid"),
        ({"function": "get_weather", "arguments": {"city": "Oslo"}}, [call("get_weather", {"city": "Bergen"})],
         False, "'city' = 'Bergen'"),
        ({"function": "get_weather"}, [call("get_time", {"city": "Oslo"})], False, "called ['get_time']"),
        ({"function": "get_weather"}, [], False, "no tool call"),
        ({"function": "get_weather"}, [call("get_weather", {"unit": "celsius"})], False, "'city' is a required"),
        ({"function": "get_weather"}, [call("get_weather", {"city": "Oslo", "unit": "kelvin"})], False,
         "violate the tool schema"),
        ({"function": "get_weather"}, [call("get_weather", '{"city": "Oslo"')], False, "not valid JSON"),
        ({"function": "get_weather"}, [call("get_weather", "[1]")], False, "not an object"),
        ({"function": "get_weather", "single": True},
         [call("get_weather", {"city": "Oslo"}), call("get_weather", {"city": "Rome"})], False, "2 tool calls"),
        ({"function": "get_stock"}, [call("get_stock", {})], None, "declares no tool named 'get_stock'"),
    ],
)
def test_tool_call(spec: dict, calls: list, expected: bool | None, detail: str) -> None:
    r = evaluate(parse_check({"type": "tool_call", **spec}), obs(tool_calls=calls), canary=CANARY)
    assert r.passed is expected, r.detail
    assert detail in r.detail


def test_tool_call_accepts_canary_objects_and_parsed_arguments() -> None:
    canary = SimpleNamespace(tools=[WEATHER_TOOL], messages=[])
    o = obs(tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    assert evaluate(parse_check({"type": "tool_call", "function": "get_weather"}), o, canary=canary).passed is True


def test_tool_call_without_canary_checks_name_and_json_only() -> None:
    r = evaluate(parse_check({"type": "tool_call", "function": "get_weather"}),
                 obs(tool_calls=[call("get_weather", {"unit": "kelvin"})]))
    assert r.passed is True
    assert "schema not checked" in r.detail
