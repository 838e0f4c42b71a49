"""Patterns from probe files that backtrack catastrophically on a completion: the check gives no verdict and
says why, and the daemon goes on serving and probing (Python's `re` would hold the GIL for hours)."""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from monitor.checks import evaluate, parse_check
from monitor.domain import CallResult, Observation
from monitor.sim import SimServer
from tests.conftest import write_config
from tests.support.daemon import Daemon, free_port

# Exponential in the length of the text for a backtracking engine; no completion of ordinary words ends in a digit.
EVIL = r"^(?:.|..)+\d$"
TEXT = "Send SIGTERM first, then wait a little and send SIGKILL if the process is still alive. " * 4


def obs(text: str, tool_args: str | None = None) -> Observation:
    call = CallResult(text=text, tool_calls=[{"name": "f", "arguments": tool_args}] if tool_args else [])
    return Observation("c", "t", "sim", "m", datetime(2025, 1, 1, tzinfo=UTC), call)


@pytest.mark.parametrize("spec", [
    {"type": "regex", "pattern": EVIL},
    {"type": "regex", "pattern": EVIL, "negate": True},
    {"type": "regex", "pattern": EVIL, "mode": "fullmatch"},
    {"type": "regex", "pattern": r"(?:.|..)+\d", "min_count": 1},
])
def test_a_regex_that_backtracks_past_its_time_limit_gives_no_verdict_and_says_why(spec: dict) -> None:
    result = evaluate(parse_check(spec), obs(TEXT))
    assert result.passed is None
    assert result.detail.startswith("no verdict: pattern ") and "catastrophic backtracking" in result.detail
    assert f"{len(TEXT.strip()) if spec.get('mode') == 'fullmatch' else len(TEXT):,}-character text" in result.detail


def test_json_schema_and_tool_call_patterns_are_matched_under_the_same_limit() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": EVIL}},
              "patternProperties": {EVIL: {"type": "string"}}}
    answer = json.dumps({"a": TEXT})
    result = evaluate(parse_check({"type": "json_schema", "schema": schema}), obs(answer))
    assert result.passed is None and "catastrophic backtracking" in result.detail
    keyed = json.dumps({TEXT: "x"})
    result = evaluate(parse_check({"type": "json_schema", "schema": {"patternProperties": {EVIL: {}}}}), obs(keyed))
    assert result.passed is None and "catastrophic backtracking" in result.detail
    tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    result = evaluate(parse_check({"type": "tool_call", "function": "f"}), obs("", answer), canary={"tools": tools})
    assert result.passed is None and "catastrophic backtracking" in result.detail
    # an ordinary pattern still decides
    assert evaluate(parse_check({"type": "regex", "pattern": r"SIG(TERM|KILL)"}), obs(TEXT)).passed is True
    fine = {"type": "object", "properties": {"a": {"type": "string", "pattern": "^[a-z]+$"}}}
    assert evaluate(parse_check({"type": "json_schema", "schema": fine}), obs('{"a": "B"}')).passed is False


@pytest.mark.parametrize(("pattern", "passed"), [(r"\d+", True), (r"[0-9]+", False), (r"(?a)\d+", False)])
def test_backslash_d_matches_any_scripts_digits_as_documented(pattern: str, passed: bool) -> None:
    r"""probes/README.md's regex reference: `\d` is Unicode-aware, `[0-9]` or `(?a)` keep to ASCII; so is a
    schema's pattern."""
    for text in ("４２", "٤٢"):
        spec = {"type": "regex", "pattern": pattern, "mode": "fullmatch"}
        assert evaluate(parse_check(spec), obs(text)).passed is passed, (pattern, text)
        flag, rest = ("(?a)", pattern[4:]) if pattern.startswith("(?a)") else ("", pattern)  # flags come first
        schema = {"type": "json_schema", "schema": {"type": "string", "pattern": f"{flag}^{rest}$"}}
        assert evaluate(parse_check(schema), obs(json.dumps(text))).passed is passed, (pattern, text)


def test_the_daemon_keeps_serving_while_a_canarys_regex_backtracks(tmp_path: Path, steady_sim: SimServer) -> None:
    target = f"  - {{id: gpt, provider: openai, base_url: '{steady_sim.openai_base_url}', model: sim-gpt}}"
    probes = f"""\
canaries:
  - id: evil
    messages: [{{role: user, content: "How do I kill a Python process?"}}]
    schedule: {{every: 1s}}
    checks: [{{type: regex, pattern: '{EVIL}', name: evil}}]
"""
    port = free_port()
    cfg = write_config(tmp_path, target, probes, extra="daemon: {max_start_delay: 0}\n")
    cfg.write_text(cfg.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
    daemon = Daemon(cfg, port)
    try:
        daemon.wait_ready()
        seen: list[dict] = []
        while len(seen) < 2:  # two runs: the scheduler went on after the first check gave up
            assert daemon.proc.poll() is None, daemon.log
            seen = [o for o in daemon.get("/api/observations?canary=evil").json() if o["error_type"] is None]
            time.sleep(0.2)
        assert all(o["checks"] == {"evil": None} for o in seen)
        assert "catastrophic backtracking" in seen[0]["check_details"]["evil"]
        assert daemon.get("/metrics").status_code == 200
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0
    finally:
        daemon.stop()


def test_the_pattern_engine_loads_only_when_a_pattern_is_used() -> None:
    """`regex` is 1.4 MB resident: a daemon whose canaries use no pattern does not load it."""
    import subprocess
    import sys

    code = ("import sys, monitor.app, monitor.cli\n"
            "from monitor.checks.regex import RegexCheck\n"
            "print('regex' in sys.modules)\n"
            "RegexCheck.model_validate({'type': 'regex', 'pattern': 'a+', 'flags': ['i']})\n"
            "print('regex' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


# A pattern that backtracks for ever on a long run of `a`s that ends otherwise; the text is kept short here, and
# `patterns.search` (spied on) gives up on it as the time limit would: the count of its calls, not the clock, tells.
CATASTROPHIC = "^(a+)+$"
LONG = "a" * 16 + "b"
DRAFT3, DRAFT4, DRAFT6 = (f"http://json-schema.org/draft-0{n}/schema#" for n in (3, 4, 6))
DRAFT7 = "http://json-schema.org/draft-07/schema#"
DRAFT2019, DRAFT2020 = "https://json-schema.org/draft/2019-09/schema", "https://json-schema.org/draft/2020-12/schema"


@dataclass
class Matched:
    timed: list[str] = field(default_factory=list)  # patterns matched under the time limit
    untimed: list[str] = field(default_factory=list)  # by jsonschema's own keywords, with `re` and no limit

    def evaluate(self, schema: dict, answer: object) -> Any:
        """The json_schema check's result, what it matched recorded from its load on (the meta-schemas' own patterns,
        matched against the schema there, are left out)."""
        check = parse_check({"type": "json_schema", "schema": schema})
        self.timed.clear()
        self.untimed.clear()
        return evaluate(check, obs(json.dumps(answer)))


@pytest.fixture
def matched(monkeypatch: pytest.MonkeyPatch) -> Matched:
    """The patterns matched with and without the time limit; CATASTROPHIC gives up under it, as on a long text."""
    import re

    import jsonschema._keywords
    import jsonschema._legacy_keywords
    import jsonschema._utils

    from monitor.checks import patterns

    seen = Matched()
    real = patterns.search

    def search(rx: Any, text: str) -> Any:
        seen.timed.append(rx.pattern)
        if rx.pattern == CATASTROPHIC:
            raise patterns.PatternTimeout(rx.pattern, len(text))
        return real(rx, text)

    def untimed(pattern: str, text: str, *args: Any) -> Any:
        seen.untimed.append(pattern)
        return re.search(pattern, text, *args)

    monkeypatch.setattr(patterns, "search", search)
    for module in (jsonschema._keywords, jsonschema._legacy_keywords, jsonschema._utils):
        monkeypatch.setattr(module, "re", SimpleNamespace(search=untimed))
    return seen


@pytest.mark.parametrize(("schema", "answer"), [
    # a subschema of another dialect, by its own $schema (jsonschema switches to that dialect's validator there)
    ({"properties": {"a": {"$schema": DRAFT7, "type": "string", "pattern": CATASTROPHIC}}}, {"a": LONG}),
    ({"properties": {"a": {"$schema": DRAFT3, "pattern": CATASTROPHIC}}}, {"a": LONG}),
    ({"$schema": DRAFT7, "properties": {"a": {"$schema": DRAFT2019, "pattern": CATASTROPHIC}}}, {"a": LONG}),
    # the same dialect named again
    ({"properties": {"a": {"$schema": DRAFT2020, "pattern": CATASTROPHIC}}}, {"a": LONG}),
    ({"items": {"$schema": DRAFT4, "patternProperties": {CATASTROPHIC: {}}}}, [{LONG: 1}]),
    ({"properties": {"a": {"$schema": DRAFT6, "propertyNames": {"pattern": CATASTROPHIC}}}}, {"a": {LONG: 1}}),
    ({"allOf": [{"$schema": DRAFT7, "if": {"pattern": CATASTROPHIC}, "then": {}}]}, LONG),
    # a reference into an embedded resource of another dialect
    ({"$ref": "urn:x", "$defs": {"x": {"$id": "urn:x", "$schema": DRAFT7, "pattern": CATASTROPHIC}}}, LONG),
    ({"$schema": DRAFT7, "definitions": {"x": {"$id": "urn:x", "$schema": DRAFT2020,
                                               "patternProperties": {CATASTROPHIC: {}}}},
      "properties": {"a": {"$ref": "urn:x"}}}, {"a": {LONG: 1}}),
])
def test_a_pattern_of_a_part_of_another_dialect_is_matched_under_the_same_limit(
        matched: Matched, schema: dict, answer: object) -> None:
    result = matched.evaluate(schema, answer)
    assert CATASTROPHIC in matched.timed and not matched.untimed
    assert result.passed is None and "catastrophic backtracking" in result.detail
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                                                                          "properties": {"x": schema}}}}]
    result = evaluate(parse_check({"type": "tool_call", "function": "f"}), obs("", json.dumps({"x": answer})),
                      canary={"tools": tools})
    assert result.passed is None and "catastrophic backtracking" in result.detail


def test_a_meta_schemas_patterns_are_matched_under_the_same_limit(matched: Matched) -> None:
    """A reference to a meta-schema jsonschema ships (an answer that is a schema) is validated by that dialect's
    validator, which matches its `$anchor` pattern under the limit too."""
    schema = {"$ref": DRAFT2020}
    assert matched.evaluate(schema, {"$anchor": "1"}).passed is False
    assert "^[A-Za-z_][-A-Za-z0-9._]*$" in matched.timed and not matched.untimed
    assert matched.evaluate(schema, {"$anchor": "x"}).passed is True
    assert "^[A-Za-z_][-A-Za-z0-9._]*$" in matched.timed and not matched.untimed


@pytest.mark.parametrize(("schema", "answer"), [
    # keywords that match `patternProperties` against the answer's keys themselves, to leave the ones matched out
    ({"additionalProperties": False, "patternProperties": {CATASTROPHIC: {}}}, {LONG: 1}),
    ({"additionalProperties": {"type": "string"}, "patternProperties": {CATASTROPHIC: {}}}, {LONG: 1}),
    ({"$schema": DRAFT4, "additionalProperties": False, "patternProperties": {CATASTROPHIC: {}}}, {LONG: 1}),
    ({"unevaluatedProperties": False, "patternProperties": {CATASTROPHIC: {}}}, {LONG: 1}),
    ({"unevaluatedProperties": False, "$ref": "#/$defs/p", "$defs": {"p": {"patternProperties": {CATASTROPHIC: {}}}}},
     {LONG: 1}),
    ({"unevaluatedProperties": False, "dependentSchemas": {LONG: {"patternProperties": {CATASTROPHIC: {}}}}},
     {LONG: 1}),
    ({"$schema": DRAFT2019, "unevaluatedProperties": False, "patternProperties": {CATASTROPHIC: {}}}, {LONG: 1}),
    ({"$schema": DRAFT2019, "unevaluatedProperties": False, "$ref": "#/$defs/p",
      "$defs": {"p": {"patternProperties": {CATASTROPHIC: {}}}}}, {LONG: 1}),
])
def test_a_pattern_leaving_keys_out_of_additional_or_unevaluated_properties_is_matched_under_the_same_limit(
        matched: Matched, schema: dict, answer: object) -> None:
    result = matched.evaluate(schema, answer)
    assert CATASTROPHIC in matched.timed and not matched.untimed
    assert result.passed is None and "catastrophic backtracking" in result.detail


@pytest.mark.parametrize("schema", [
    {"additionalProperties": False, "properties": {"a": {}}, "patternProperties": {"^x": {}, "^y": {}}},
    {"additionalProperties": False, "properties": {"a": {}}},
    {"additionalProperties": {"type": "integer"}, "patternProperties": {"^x": {"type": "string"}}},
    {"$schema": DRAFT3, "additionalProperties": False, "patternProperties": {"^x": {}}},
    {"unevaluatedProperties": False, "patternProperties": {"^x": {}}, "properties": {"a": {}}},
    {"unevaluatedProperties": {"type": "integer"}, "allOf": [{"patternProperties": {"^x": {}}}]},
    {"unevaluatedProperties": False, "$ref": "#/$defs/p", "$defs": {"p": {"patternProperties": {"^x": {}}}}},
    {"unevaluatedProperties": False, "if": {"required": ["a"]}, "then": {"patternProperties": {"^x": {}}},
     "else": {"properties": {"b": {}}}},
    {"unevaluatedProperties": False, "dependentSchemas": {"a": {"patternProperties": {"^x": {}}}},
     "additionalProperties": {"type": "integer"}},
    {"$schema": DRAFT2019, "unevaluatedProperties": False, "patternProperties": {"^x": {}},
     "additionalProperties": {"type": "string"}},
    {"$schema": DRAFT2019, "$recursiveAnchor": True, "unevaluatedProperties": False,
     "properties": {"n": {"$recursiveRef": "#"}}, "anyOf": [{"patternProperties": {"^x": {}}}, {"required": ["z"]}]},
])
@pytest.mark.parametrize("answer", [{}, {"a": 1, "xy": "s"}, {"a": 1, "b": 2, "xy": 3}, {"b": "s", "yz": 1},
                                    {"n": {"q": 1, "x": 2}, "xa": 1}, {"type": 1, "a": "s"}, []])
def test_additional_and_unevaluated_properties_decide_as_jsonschema_does(schema: dict, answer: object) -> None:
    """The time-limited keywords leave out the keys jsonschema's own do, and say so in the same words."""
    import jsonschema

    from monitor.checks.json_schema import schema_errors

    error = jsonschema.exceptions.best_match(jsonschema.validators.validator_for(schema)(schema).iter_errors(answer))
    stock = None if error is None else f"at {'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
    assert schema_errors(answer, schema) == stock


@pytest.mark.parametrize("schema", [
    {"format": "regex"},
    {"properties": {"a": {"$schema": DRAFT7, "format": "regex"}}},
    {"$ref": "urn:x", "$defs": {"x": {"$id": "urn:x", "$schema": DRAFT2019, "propertyNames": {"format": "regex"}}}},
])
def test_a_format_regex_is_not_asserted_so_no_answer_is_compiled_in_any_dialect(matched: Matched,
                                                                                 schema: dict) -> None:
    """jsonschema asserts `format` only with a format checker, which validation is not given (nor one of another
    dialect's validators, evolving from it): an answer is never compiled as a pattern, however long."""
    answer = {"a": "(" * 3, "(": 1} if "$ref" in schema or "properties" in schema else "("
    assert matched.evaluate(schema, answer).passed is True
    assert not matched.timed and not matched.untimed
