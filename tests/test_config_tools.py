"""A canary's `tools` are checked when the probe files load, as its checks are."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.errors import ConfigError
from tests.conftest import write_config

TARGET = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}"
CANARY = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    tools:\n"


def problems(cfg: Path) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    return [str(i).split(": ", 1)[1] for i in e.value.issues]


@pytest.mark.parametrize(("tool", "message"), [
    ("{type: function, function: {name: f, parameters: {type: object, properties: {a: {type: strin}}}}}",
     "canaries[0].tools[0]: function.parameters: invalid JSON Schema at properties/a/type: 'strin' is not valid "
     "under any of the given schemas"),
    ("{type: function, function: {name: f, parameters: {type: object, properties: {a: {pattern: '('}}}}}",
     "canaries[0].tools[0]: function.parameters: invalid JSON Schema at properties/a/pattern: '(' is not a 'regex'"),
    ("{type: function, function: {name: f, parameters: [1]}}",
     "canaries[0].tools[0]: function.parameters must be a JSON Schema mapping"),
    ("{type: functoin, function: {name: f}}",
     "canaries[0].tools[0]: type must be 'function' (OpenAI's function-tool format), got 'functoin'"),
    ("{function: {name: f}}",
     "canaries[0].tools[0]: type must be 'function' (OpenAI's function-tool format), got None"),
    ("{type: function, function: {nmae: f}}",
     "canaries[0].tools[0]: function: unknown key 'nmae' (name, description, parameters, strict)"),
    ("{type: function, function: {name: ''}}",
     "canaries[0].tools[0]: function.name must be a non-empty text, got ''"),
    ("{type: function, name: f}",
     "canaries[0].tools[0]: unknown key 'name' (a tool is {type: function, function: {name, description, "
     "parameters}})"),
    ("{type: function, function: f}",
     "canaries[0].tools[0]: function must be a mapping (a tool is {type: function, function: {name, description, "
     "parameters}})"),
])
def test_a_malformed_tool_is_a_config_error_naming_it(tmp_path: Path, tool: str, message: str) -> None:
    """A tool was any mapping: check-config said OK, then every call failed (Anthropic's request could not be
    built: "malformed response: 'name'", blamed on the upstream) or the tool_call check crashed with a traceback in
    the log on each answer (UnknownType from an invalid parameters schema)."""
    cfg = write_config(tmp_path, TARGET, CANARY + f"      - {tool}\n")
    assert problems(cfg) == [message]


def test_tool_names_must_be_unique(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, TARGET, CANARY + "      - {type: function, function: {name: f}}\n" * 2)
    assert problems(cfg) == ["canaries[0].tools: function name 'f' declared twice: tool names must be unique"]


def test_a_well_formed_tool_loads_as_written(tmp_path: Path) -> None:
    tool = ("      - {type: function, function: {name: get_weather, description: d, strict: true,\n"
            "         parameters: {type: object, properties: {city: {type: string}}, required: [city]}}}\n")
    cfg = write_config(tmp_path, TARGET, CANARY + tool)
    (canary,) = load_config(cfg, environ={}).canaries
    assert canary.tools == [{"type": "function", "function": {
        "name": "get_weather", "description": "d", "strict": True,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
