"""Patterns from probe files that backtrack catastrophically on a completion: the check gives no verdict and
says why, and the daemon goes on serving and probing (Python's `re` would hold the GIL for hours)."""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

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
