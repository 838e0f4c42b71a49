"""Read replay dumps: JSON lines of canary, target, text and optional facts, with errors naming file/line/field."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.domain import (
    MAX_TOKENS,
    CallResult,
    CheckResult,
    ErrorType,
    FinishReason,
    Observation,
    Usage,
    encodable,
)
from monitor.errors import shown as bounded
from monitor.jsonl import objects
from monitor.timeinput import EXAMPLE, TimeInputError, parse_time

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
# Output tokens a row may count, as the daemon keeps them (`domain.MAX_TOKENS`): more than any model writes;
# a count past a float's range (10**400) raised OverflowError in the signals.
# Seconds a call may take: a year, past any timeout. Means of values near a float's limit (1.7e308) overflowed to
# infinity, which `replay --json` wrote as `Infinity`, not JSON.
MAX_SECONDS = 31_536_000
_OPTIONAL: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "started_at": (str,),
    "finish_reason": (str,),
    "response_model": (str,),
    "system_fingerprint": (str,),
    "checks": (dict,),
    "refusal": (str,),
    "refusal_text": (str,),  # the provider's own refusal (OpenAI's `refusal`): replay's and `refusal --jsonl`'s
    # detector reads it as the daemon does
    "output_tokens": (int,),
    "latency_s": (int, float),
    "ttft_s": (int, float),
    "error_type": (str,),
}


_SHOWN = 60  # characters of a value an error message shows: a line may hold a megabyte in one field


def shown(value: Any) -> str:
    """A value as an error message shows it: its repr, cut to a bounded length that says how long it was."""
    return bounded(value, _SHOWN)


class DumpError(ValueError):
    """A replay dump line is malformed; the message names the file, the line and the field."""


def load_dump(path: str | Path) -> list[dict[str, Any]]:
    """Read and validate a JSONL dump; raise DumpError naming file, line and field on the first problem."""
    rows = []
    for n, row in objects(path, DumpError):
        validate_row(row, f"{path}:{n}")
        rows.append(row)
    if not rows:
        raise DumpError(f"{path}: no rows")
    return rows


def validate_row(row: Mapping[str, Any], where: str) -> None:
    """Check one dump row; raise DumpError naming the field."""
    for key in ("canary", "target", "text"):
        if key not in row:
            raise DumpError(f"{where}: field {key!r}: missing")
        if not isinstance(row[key], str):
            raise DumpError(f"{where}: field {key!r}: expected a string, got {type(row[key]).__name__}")
    for key, types in _OPTIONAL.items():
        v = row.get(key)
        if v is None:
            continue
        if not isinstance(v, types) or isinstance(v, bool):
            want = " or ".join(t.__name__ for t in types)
            raise DumpError(f"{where}: field {key!r}: expected {want}, got {type(v).__name__}")
    if row.get("started_at") is not None:
        try:
            parse_time(row["started_at"])
        except TimeInputError as e:
            raise DumpError(f"{where}: field 'started_at': {e}: {shown(row['started_at'])} (e.g. {EXAMPLE})") \
                from None
    if row.get("finish_reason") is not None and row["finish_reason"] not in FinishReason._value2member_map_:
        raise DumpError(f"{where}: field 'finish_reason': unknown value {shown(row['finish_reason'])}")
    if row.get("error_type") is not None and row["error_type"] not in ErrorType._value2member_map_:
        raise DumpError(f"{where}: field 'error_type': unknown value {shown(row['error_type'])}")
    tokens = row.get("output_tokens")
    if tokens is not None and not 0 <= tokens <= MAX_TOKENS:
        raise DumpError(f"{where}: field 'output_tokens': expected a token count from 0 to {MAX_TOKENS:,}, got "
                        f"{shown(tokens)}")
    for key in ("latency_s", "ttft_s"):
        v = row.get(key)
        if v is not None and not (0 <= v <= MAX_SECONDS):
            raise DumpError(f"{where}: field {key!r}: expected seconds from 0 to {MAX_SECONDS:,} (a year), got "
                            f"{shown(v)}")
    if row.get("refusal") is not None and row["refusal"] not in ("none", "partial", "full"):
        raise DumpError(f"{where}: field 'refusal': expected none, partial or full, got {shown(row['refusal'])}")
    for name, passed in (row.get("checks") or {}).items():
        if passed is not None and not isinstance(passed, bool):
            raise DumpError(f"{where}: field {shown(f'checks.{name}')}: expected true, false or null, got {shown(passed)}")


def observation_row(obs: Observation) -> dict[str, Any]:
    """Return the dump row of a stored observation (the inverse of `row_to_observation`): the fields replay reads
    from its public JSON shape, unset facts left out."""
    data = obs.as_json()
    return {k: data[k] for k in ("canary", "target", "text", *_OPTIONAL) if data.get(k) not in (None, {})}


def row_to_observation(row: Mapping[str, Any], source: str = "row", line: int = 0) -> Observation:
    """Turn one dump row into an Observation (rows without started_at get 1-second spaced times)."""
    validate_row(row, f"{source}:{line}")
    started = row.get("started_at")
    at = parse_time(started) if started else _EPOCH + timedelta(seconds=line)
    fr = row.get("finish_reason")
    err = row.get("error_type")
    # A JSON escape of half a UTF-16 pair ("\ud800") decodes to text no output can encode as UTF-8: U+FFFD, as
    # the daemon keeps such an answer (`domain.encodable`).
    text = {k: encodable(v) for k in ("canary", "target", "text", "response_model", "system_fingerprint", "id",
                                      "refusal_text") if isinstance(v := row.get(k), str)}
    call = CallResult(
        text=text["text"],
        finish_reason=FinishReason(fr) if fr else None,
        response_model=text.get("response_model"),
        system_fingerprint=text.get("system_fingerprint"),
        usage=Usage(output_tokens=row.get("output_tokens")),
        latency_s=row.get("latency_s"),
        ttft_s=row.get("ttft_s"),
        error_type=ErrorType(err) if err else None,
        refusal_text=text.get("refusal_text"),
    )
    checks = [CheckResult(encodable(name), "replay", passed) for name, passed in (row.get("checks") or {}).items()]
    obs = Observation(
        canary=text["canary"], target=text["target"], provider="replay", request_model=text.get("response_model") or "",
        started_at=at, call=call, checks=checks, refusal=row.get("refusal"),
    )
    obs.id = text.get("id") or f"{source}:{line}"
    return obs
