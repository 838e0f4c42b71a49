"""The invariants every `CallResult` keeps, whatever the server sent (`violations`)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from monitor.domain import MAX_TOKENS, CallResult, ErrorType, FinishReason
from monitor.providers.vet import COUNTS
from tests.support.wirefuzz.case import Case

_GENERIC = re.compile(r"unhashable|can only concatenate|has no attribute|sequence item|not subscriptable|"
                      r"object is not iterable|unsupported operand|must be str, not|indices must be")


def _tokens_ok(v: Any) -> bool:
    return v is None or (type(v) is int and 0 <= v <= MAX_TOKENS)


def violations(case: Case, r: Any) -> list[str]:
    """What is wrong with the provider's answer to `case` (empty: the invariants hold)."""
    if not isinstance(r, CallResult):
        return [f"not a CallResult: {r!r}"[:200]]
    out = []
    if r.error_type is not None:
        if not isinstance(r.error_type, ErrorType):
            out.append(f"error_type {r.error_type!r}")
        if not r.error_message or not isinstance(r.error_message, str):
            out.append("failure without a message")
        if r.error_type == ErrorType.INTERNAL:
            out.append(f"internal error: {r.error_message}")
        # an error page that cannot be read (it does not decode as its Content-Encoding says, or it broke off
        # before its Content-Length) is typed by its status all the same: only one past max_reply_bytes is a
        # bad_response, and no case is that large (one that stalls is a timeout keeping its status: case.expect)
        if case.status >= 400 and r.error_type == ErrorType.BAD_RESPONSE:
            out.append(f"HTTP {case.status} typed bad_response: {r.error_message}")
        if r.error_type == ErrorType.BAD_RESPONSE and isinstance(r.error_message, str) and \
                _GENERIC.search(r.error_message):
            out.append(f"message names no field: {r.error_message}")
    elif case.status >= 400:
        out.append(f"HTTP {case.status} answered ok")
    else:
        if case.bad_usage:
            out.append(f"ok with bad token counts {case.bad_usage}: usage {r.usage}")
    for name, want in (case.expect or {}).items():
        got: Any = r
        for part in name.split("."):
            got = getattr(got, part)
        if got != want:
            out.append(f"expected {name} {want!r}, got {got!r} ({r.error_message})"[:300])
    if not isinstance(r.text, str):
        out.append(f"text {type(r.text).__name__}")
    for name in COUNTS:
        if not _tokens_ok(getattr(r.usage, name)):
            out.append(f"{name}={getattr(r.usage, name)!r}")
    if r.latency_s is None or not (math.isfinite(r.latency_s) and r.latency_s >= 0):
        out.append(f"latency {r.latency_s!r}")
    for name in ("ttft_s", "first_output_s"):
        t = getattr(r, name)
        if t is not None and (not math.isfinite(t) or t < 0 or (r.latency_s is not None and t > r.latency_s)):
            out.append(f"{name} {t!r} latency {r.latency_s!r}")
    if r.finish_reason is not None and not isinstance(r.finish_reason, FinishReason):
        out.append(f"finish_reason {r.finish_reason!r}")
    if r.finish_reason is not None and not isinstance(r.raw_finish_reason, str):
        out.append(f"finish_reason {r.finish_reason} without raw {r.raw_finish_reason!r}")
    for name in ("response_model", "system_fingerprint", "request_id", "response_id", "raw_finish_reason",
                 "refusal_text", "error_message"):
        v = getattr(r, name)
        if v is not None and not isinstance(v, str):
            out.append(f"{name} {type(v).__name__}")
    strings = [r.text, r.refusal_text, r.response_model, r.system_fingerprint, r.request_id, r.response_id,
               r.raw_finish_reason, r.error_message, json.dumps(r.tool_calls), *r.ratelimit.values()]
    for s in strings:
        if isinstance(s, str):
            try:
                s.encode("utf-8")
            except UnicodeEncodeError:
                out.append(f"text that cannot be stored (lone surrogate): {s[:40]!r}")
    for c in r.tool_calls:
        if not (isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("arguments"), str)):
            out.append(f"tool call {c!r}"[:80])
    if r.retry_after_s is not None and not (math.isfinite(r.retry_after_s) and r.retry_after_s >= 0):
        out.append(f"retry_after_s {r.retry_after_s!r}")
    return out
