"""Checks: pure functions that judge one completion, declared per canary in the probe YAML.

One module per check type (mirror pairs such as contains/not_contains and latency/ttft share a module); each
module holds its spec model and its function. ``CHECKS`` is the literal map from type to function: a new
check is a new module plus one line here and one member of ``CheckSpec``.

The runner calls :func:`evaluate_all` (or :func:`evaluate` per spec) from a worker thread after the refusal
detector has set ``Observation.refusal``. A check that cannot be applied (failed call, unknown usage, no
judge) returns ``passed=None`` with the reason; malformed completions fail; invalid specs are rejected on load.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any

from pydantic import ConfigDict, Field, TypeAdapter

from monitor.checks.base import BaseCheck, Context, Judge, Verdict, plain
from monitor.checks.code_runs import CodeRunsCheck, code_runs
from monitor.checks.contains import ContainsCheck, NotContainsCheck, contains, not_contains
from monitor.checks.equals import EqualsCheck, equals
from monitor.checks.json_schema import JsonSchemaCheck, json_schema
from monitor.checks.json_valid import JsonValidCheck, json_valid
from monitor.checks.language import LanguageCheck, language
from monitor.checks.latency import LatencyCheck, TtftCheck, latency, ttft
from monitor.checks.length import LengthCheck, length
from monitor.checks.llm_judge import LlmJudgeCheck, llm_judge
from monitor.checks.number import NumberCheck, number
from monitor.checks.one_of import OneOfCheck, one_of
from monitor.checks.refusal import RefusalCheck, refusal
from monitor.checks.regex import RegexCheck, regex
from monitor.checks.starts_with import StartsWithCheck, starts_with
from monitor.checks.tokens import TokensCheck, tokens
from monitor.checks.tool_call import ToolCallCheck, tool_call, tool_parameters
from monitor.domain import CheckResult, Observation

log = logging.getLogger(__name__)

CheckSpec = Annotated[
    ContainsCheck | NotContainsCheck | RegexCheck | EqualsCheck | OneOfCheck | StartsWithCheck
    | JsonValidCheck | JsonSchemaCheck | LengthCheck | TokensCheck | NumberCheck | LanguageCheck
    | CodeRunsCheck | ToolCallCheck | LatencyCheck | TtftCheck | LlmJudgeCheck | RefusalCheck,
    Field(discriminator="type"),
]

CHECKS: dict[str, Callable[[Any, Observation, Context], Verdict]] = {
    "contains": contains,
    "not_contains": not_contains,
    "regex": regex,
    "equals": equals,
    "one_of": one_of,
    "starts_with": starts_with,
    "json_valid": json_valid,
    "json_schema": json_schema,
    "length": length,
    "tokens": tokens,
    "number": number,
    "language": language,
    "code_runs": code_runs,
    "tool_call": tool_call,
    "latency": latency,
    "ttft": ttft,
    "llm_judge": llm_judge,
    "refusal": refusal,
}

# Checks that still say something about a failed call (a content-filter error is a refusal).
_SEES_FAILED_CALLS = frozenset({"refusal"})

_ONE: TypeAdapter[Any] = TypeAdapter(CheckSpec, config=ConfigDict(title="check"))
_MANY: TypeAdapter[list[Any]] = TypeAdapter(list[CheckSpec], config=ConfigDict(title="checks"))


def parse_check(data: Mapping[str, Any]) -> BaseCheck:
    """Validate one check spec from plain data (raises pydantic.ValidationError naming field and value)."""
    return _ONE.validate_python(data)


def parse_checks(data: Sequence[Mapping[str, Any]]) -> list[BaseCheck]:
    """Validate a list of check specs from plain data."""
    return _MANY.validate_python(data)


def _canary_field(canary: Any, key: str) -> list[dict[str, Any]]:
    if canary is None:
        return []
    value = canary.get(key) if isinstance(canary, Mapping) else getattr(canary, key, None)
    return plain(list(value or []))


def evaluate(spec: Any, obs: Observation, *, judge: Judge | Mapping[str, Judge] | None = None,
             canary: Any = None, name: str | None = None, gates: Any = None) -> CheckResult:
    """Evaluate one check spec on one observation; never raises for bad completions or failed calls.

    ``canary`` (a dict or an object with ``.tools``/``.messages``) supplies tool schemas and the prompt;
    ``judge`` is a callable, or a mapping from judge target id to callable; ``name`` overrides the result name.
    """
    result_name = name or spec.name or spec.type
    if not obs.call.ok and spec.type not in _SEES_FAILED_CALLS:
        return CheckResult(result_name, spec.type, None, f"call failed ({obs.call.error_type}); not checked")
    ctx = Context(messages=_canary_field(canary, "messages"), tools=_canary_field(canary, "tools"), judge=judge,
                  gates=gates)
    try:
        passed, detail = CHECKS[spec.type](spec, obs, ctx)
    except Exception as e:  # a bug in a check must not lose the observation; it is logged and reported
        log.exception("check %s (%s) crashed on observation %s", result_name, spec.type, obs.id)
        passed, detail = None, f"check error: {type(e).__name__}: {e}"
    return CheckResult(result_name, spec.type, passed, detail)


def check_names(specs: Iterable[Any]) -> list[str]:
    """Return unique result names in order: the name or type, duplicates suffixed #2, #3, ..."""
    seen: dict[str, int] = {}
    names: list[str] = []
    taken: set[str] = set()
    for spec in specs:
        base = spec.name or spec.type
        n = seen.get(base, 0) + 1
        candidate = base if n == 1 else f"{base}#{n}"
        while candidate in taken:
            n += 1
            candidate = f"{base}#{n}"
        seen[base] = n
        taken.add(candidate)
        names.append(candidate)
    return names


def evaluate_all(specs: Sequence[Any], obs: Observation, *, judge: Judge | Mapping[str, Judge] | None = None,
                 canary: Any = None, gates: Any = None) -> list[CheckResult]:
    """Evaluate every spec of a canary on one observation, under unique result names."""
    return [evaluate(s, obs, judge=judge, canary=canary, name=n, gates=gates)
            for s, n in zip(specs, check_names(specs), strict=True)]


def canary_issues(specs: Sequence[Any], *, tools: Sequence[Any] = ()) -> list[tuple[int, str]]:
    """Return (check index, reason) for specs inconsistent with their canary (e.g. tool_call of an undeclared tool)."""
    plain_tools = plain(list(tools))
    issues = []
    for i, spec in enumerate(specs):
        if spec.type == "tool_call" and tool_parameters(plain_tools, spec.function) is None:
            issues.append((i, f"tool_call names function {spec.function!r}, which the canary's tools do not declare"))
    return issues


__all__ = [
    "CHECKS", "BaseCheck", "CheckSpec", "CodeRunsCheck", "ContainsCheck", "Context", "EqualsCheck", "Judge",
    "JsonSchemaCheck", "JsonValidCheck", "LanguageCheck", "LatencyCheck", "LengthCheck", "LlmJudgeCheck",
    "NotContainsCheck", "NumberCheck", "OneOfCheck", "RefusalCheck", "RegexCheck", "StartsWithCheck",
    "TokensCheck", "ToolCallCheck", "TtftCheck", "Verdict", "canary_issues", "check_names", "evaluate",
    "evaluate_all", "parse_check", "parse_checks",
]
