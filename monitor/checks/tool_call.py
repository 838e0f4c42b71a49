"""tool_call: the model called the expected function with JSON arguments that match the canary's schema."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from monitor.checks.base import BaseCheck, Context, Verdict, clip
from monitor.checks.json_schema import schema_errors
from monitor.checks.patterns import PatternTimeout
from monitor.domain import Observation


class ToolCallCheck(BaseCheck):
    """Pass when a tool call named ``function`` carries a JSON object valid against that tool's parameters.

    The schema comes from the canary's ``tools``. ``arguments`` optionally pins expected values (a subset;
    strings compared case-insensitively, numbers numerically). ``single`` demands exactly one tool call.
    """

    type: Literal["tool_call"]
    function: str = Field(min_length=1)
    arguments: dict[str, Any] | None = None
    single: bool = False


def tool_parameters(tools: list[dict[str, Any]], function: str) -> dict[str, Any] | None:
    """Return the parameters schema of the named function tool, or None when the canary has no such tool."""
    for tool in tools:
        fn = tool.get("function", tool)
        if isinstance(fn, dict) and fn.get("name") == function:
            params = fn.get("parameters")
            return params if isinstance(params, dict) else {}
    return None


def _same(want: Any, got: Any) -> bool:
    if isinstance(want, str) and isinstance(got, str):
        return want.strip().casefold() == got.strip().casefold()
    if isinstance(want, int | float) and isinstance(got, int | float) and not isinstance(got, bool):
        return float(want) == float(got)
    return bool(want == got)


def tool_call(spec: ToolCallCheck, obs: Observation, ctx: Context) -> Verdict:
    """Check the tool call's name, JSON arguments, schema and pinned values."""
    schema = tool_parameters(ctx.tools, spec.function)
    if ctx.tools and schema is None:
        return None, f"the canary declares no tool named {spec.function!r}"
    calls = obs.call.tool_calls
    if not calls:
        return False, f"no tool call (finish_reason={obs.call.finish_reason}, text {clip(obs.call.text, 60)!r})"
    if spec.single and len(calls) != 1:
        return False, f"{len(calls)} tool calls, expected exactly one"
    matching = [c for c in calls if c.get("name") == spec.function]
    if not matching:
        return False, f"called {[c.get('name') for c in calls]!r}, expected {spec.function!r}"
    raw = matching[0].get("arguments")
    if isinstance(raw, dict):
        args: Any = raw
    else:
        try:
            args = json.loads(raw or "")
        except ValueError as e:
            return False, f"arguments are not valid JSON ({e}): {clip(str(raw), 60)!r}"
    if not isinstance(args, dict):
        return False, f"arguments are a JSON {type(args).__name__}, not an object"
    if schema:
        try:
            problem = schema_errors(args, schema)
        except PatternTimeout as e:
            return None, f"no verdict: {e}"
        if problem:
            return False, f"arguments violate the tool schema {problem}"
    for key, want in (spec.arguments or {}).items():
        if key not in args:
            return False, f"argument {key!r} missing"
        if not _same(want, args[key]):
            return False, f"argument {key!r} = {args[key]!r}, expected {want!r}"
    note = "" if ctx.tools else " (no canary tools given: schema not checked)"
    return True, f"called {spec.function} with valid arguments{note}"


__all__ = ["ToolCallCheck", "tool_call", "tool_parameters"]
