"""json_valid: the completion is JSON (optionally inside a fenced ```json block)."""

from __future__ import annotations

import json
from typing import Any, Literal

from monitor.checks.base import BaseCheck, Context, Verdict, clip
from monitor.checks.fences import blocks
from monitor.domain import Observation

_TYPES: dict[str, type | tuple[type, ...]] = {"object": dict, "array": list}


class JsonValidCheck(BaseCheck):
    """Pass when the completion parses as JSON; ``allow_fenced`` also accepts one fenced json block.

    ``expect`` restricts the top-level type (``object`` or ``array``).
    """

    type: Literal["json_valid"]
    allow_fenced: bool = True
    expect: Literal["any", "object", "array"] = "any"


def parse_json(text: str, allow_fenced: bool) -> tuple[Any, str | None]:
    """Parse the completion as JSON; return (value, None) or (None, why it is not JSON)."""
    raw = text.strip()
    try:
        return json.loads(raw), None
    except ValueError as e:
        error = f"not valid JSON: {e}"
    if allow_fenced:
        candidates = [b for b in blocks(text) if b.lang in ("json", "")]
        for block in candidates:
            try:
                return json.loads(block.body), None
            except ValueError as e:
                error = f"fenced block is not valid JSON: {e}"
    if not raw:
        error = "empty completion"
    return None, error


def json_valid(spec: JsonValidCheck, obs: Observation, ctx: Context) -> Verdict:
    """Check that the completion is valid JSON of the expected top-level type."""
    value, error = parse_json(obs.call.text, spec.allow_fenced)
    if error:
        return False, f"{error} in {clip(obs.call.text)!r}"
    if spec.expect != "any" and not isinstance(value, _TYPES[spec.expect]):
        return False, f"top level is {type(value).__name__}, want {spec.expect}"
    return True, f"valid JSON {type(value).__name__}"


__all__ = ["JsonValidCheck", "json_valid", "parse_json"]
