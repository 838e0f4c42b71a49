"""The public API of monitor.checks: evaluate, evaluate_all, check_names, the type map and the union."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

import pytest

import monitor.checks as checks
from monitor.checks import CHECKS, CheckSpec, canary_issues, check_names, evaluate, evaluate_all, parse_checks
from monitor.domain import CallResult, CheckResult, ErrorType, Observation


def obs(text: str = "hello world", **call: object) -> Observation:
    return Observation("c", "t", "sim", "m", datetime(2025, 1, 1, tzinfo=UTC), CallResult(text=text, **call))


def test_every_union_member_has_a_function_and_vice_versa() -> None:
    members = typing.get_args(typing.get_args(CheckSpec)[0])
    types = {typing.get_args(m.model_fields["type"].annotation)[0] for m in members}
    assert types == set(CHECKS)
    for m in members:
        assert m.model_config["extra"] == "forbid"
        assert m.model_fields["name"].default is None


def test_result_name_defaults_to_type_and_can_be_set() -> None:
    specs = parse_checks([{"type": "contains", "value": "hello"}, {"type": "contains", "value": "x", "name": "has-x"}])
    assert evaluate(specs[0], obs()) == CheckResult("contains", "contains", True, "found ['hello']")
    assert evaluate(specs[1], obs()).name == "has-x"


def test_check_names_dedupes() -> None:
    specs = parse_checks([
        {"type": "contains", "value": "a"}, {"type": "regex", "pattern": "a"}, {"type": "contains", "value": "b"},
        {"type": "contains", "value": "c"}, {"type": "length", "max": 3, "name": "short"},
        {"type": "length", "max": 9, "name": "short"},
    ])
    assert check_names(specs) == ["contains", "regex", "contains#2", "contains#3", "short", "short#2"]


def test_evaluate_all_uses_unique_names() -> None:
    specs = parse_checks([{"type": "contains", "value": "hello"}, {"type": "contains", "value": "bye"}])
    results = evaluate_all(specs, obs())
    assert [(r.name, r.passed) for r in results] == [("contains", True), ("contains#2", False)]


def test_failed_call_is_not_checked() -> None:
    failed = obs("", error_type=ErrorType.RATE_LIMITED, http_status=429)
    for spec in parse_checks([{"type": "contains", "value": "x"}, {"type": "json_valid"},
                              {"type": "latency", "max_s": 1}]):
        r = evaluate(spec, failed)
        assert r.passed is None
        assert "rate_limited" in r.detail


def test_a_crashing_check_becomes_an_error_result(monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    def boom(spec: object, o: object, ctx: object) -> tuple[bool, str]:
        raise RuntimeError("bug")

    monkeypatch.setitem(checks.CHECKS, "contains", boom)
    r = evaluate(parse_checks([{"type": "contains", "value": "x"}])[0], obs())
    assert r.passed is None
    assert "check error: RuntimeError: bug" in r.detail
    assert "crashed" in caplog.text


def test_canary_issues_flags_undeclared_tools() -> None:
    specs = parse_checks([{"type": "contains", "value": "x"}, {"type": "tool_call", "function": "get_weather"}])
    assert canary_issues(specs, tools=[]) == [
        (1, "tool_call names function 'get_weather', which the canary's tools do not declare")]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    assert canary_issues(specs, tools=tools) == []
