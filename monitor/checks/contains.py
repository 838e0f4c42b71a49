"""contains / not_contains: substrings that must (or must not) appear in the completion."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from monitor.checks.base import BaseCheck, Context, Verdict
from monitor.domain import Observation


class ContainsCheck(BaseCheck):
    """Pass when the completion contains the value (``mode: any`` for at least one of several values)."""

    type: Literal["contains"]
    value: str | list[str]
    mode: Literal["all", "any"] = "all"
    case_sensitive: bool = False

    @field_validator("value")
    @classmethod
    def _non_empty(cls, v: str | list[str]) -> str | list[str]:
        return _validate_values(v)


class NotContainsCheck(BaseCheck):
    """Pass when the completion contains none of the values."""

    type: Literal["not_contains"]
    value: str | list[str]
    case_sensitive: bool = False

    @field_validator("value")
    @classmethod
    def _non_empty(cls, v: str | list[str]) -> str | list[str]:
        return _validate_values(v)


def _validate_values(v: str | list[str]) -> str | list[str]:
    values = [v] if isinstance(v, str) else v
    if not values or any(not s for s in values):
        raise ValueError(f"value must be a non-empty string or a non-empty list of them, got {v!r}")
    return v


def _found(spec: ContainsCheck | NotContainsCheck, text: str) -> tuple[list[str], list[str]]:
    values = [spec.value] if isinstance(spec.value, str) else list(spec.value)
    hay = text if spec.case_sensitive else text.casefold()
    hits = [v for v in values if (v if spec.case_sensitive else v.casefold()) in hay]
    return hits, [v for v in values if v not in hits]


def contains(spec: ContainsCheck, obs: Observation, ctx: Context) -> Verdict:
    """Check that the completion contains the value(s)."""
    hits, missing = _found(spec, obs.call.text)
    if spec.mode == "any":
        return (True, f"found {hits[0]!r}") if hits else (False, f"none of {missing!r} found")
    return (False, f"missing {missing!r}") if missing else (True, f"found {hits!r}")


def not_contains(spec: NotContainsCheck, obs: Observation, ctx: Context) -> Verdict:
    """Check that the completion contains none of the value(s)."""
    hits, _ = _found(spec, obs.call.text)
    return (False, f"found forbidden {hits!r}") if hits else (True, "none found")


__all__ = ["ContainsCheck", "NotContainsCheck", "contains", "not_contains"]
