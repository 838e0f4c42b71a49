"""Convert between domain values and table rows at the store's boundary."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from monitor.domain import CallResult, CheckResult, ErrorType, FinishReason, Observation, Usage
from monitor.store.tables import ObservationRow


def aware(ts: datetime | None) -> datetime | None:
    """A stored time as UTC: SQLite hands back naive datetimes (everything stored is UTC), PostgreSQL ones in the
    session's TimeZone (a server, database or role default of 'America/New_York' gave -05:00 times, which `export`
    and the JSON outputs then wrote)."""
    if ts is None:
        return None
    return ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)


def upsert(dialect: str, table: Any) -> Any:
    """An INSERT that can take ``.on_conflict_do_update``: both stores speak ``INSERT ... ON CONFLICT``."""
    # Imported here: each dialect's module is ~2 MB resident, and a daemon only ever talks to one of them.
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def where_equal(query: Any, model: Any, **values: Any) -> Any:
    """Add `model.name == value` to a query for every given value that is set (None, "" or an empty list means
    any; a list or tuple, any of its values)."""
    for name, value in values.items():
        if isinstance(value, list | tuple):
            if value:
                query = query.where(getattr(model, name).in_(value))
        elif value is not None and value != "":
            query = query.where(getattr(model, name) == value)
    return query


def storable(value: Any) -> Any:
    """`value` with every NUL character in its strings (nested lists and dicts too) replaced by U+FFFD.

    PostgreSQL text and JSON cannot hold NUL, which an upstream may well send (``"\\u0000"`` in a completion or
    a tool call's arguments); refused, the whole observation would be lost. SQLite could keep it, but both stores
    keep the same thing."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def to_values(obs: Observation) -> dict[str, Any]:
    """The observation as the column values of its row (no ORM object: the hot path inserts these directly)."""
    values = _values(obs)
    return {k: storable(v) for k, v in values.items()}


def _values(obs: Observation) -> dict[str, Any]:
    c = obs.call
    return dict(
        id=obs.id, run_id=obs.run_id, canary=obs.canary, target=obs.target, provider=obs.provider,
        request_model=obs.request_model, sample_index=obs.sample_index, started_at=obs.started_at,
        text=c.text, finish_reason=c.finish_reason.value if c.finish_reason else None,
        raw_finish_reason=c.raw_finish_reason, response_model=c.response_model,
        system_fingerprint=c.system_fingerprint, request_id=c.request_id,
        input_tokens=c.usage.input_tokens, cached_input_tokens=c.usage.cached_input_tokens,
        output_tokens=c.usage.output_tokens, reasoning_tokens=c.usage.reasoning_tokens,
        cache_write_input_tokens=c.usage.cache_write_input_tokens,
        cache_write_1h_input_tokens=c.usage.cache_write_1h_input_tokens,
        tokens_estimated=c.usage.estimated, cost_usd=obs.cost_usd, latency_s=c.latency_s, ttft_s=c.ttft_s,
        output_tokens_per_s=obs.output_tokens_per_s, http_status=c.http_status, retry_after_s=c.retry_after_s,
        error_type=c.error_type.value if c.error_type else None, error_message=c.error_message,
        refusal_text=c.refusal_text, stream=c.stream, tool_calls=list(c.tool_calls), ratelimit=dict(c.ratelimit),
        checks=[{"name": r.name, "type": r.type, "passed": r.passed, "detail": r.detail} for r in obs.checks],
        refusal=obs.refusal, refusal_score=obs.refusal_score,
    )


def from_row(row: ObservationRow) -> Observation:
    call = CallResult(
        text=row.text, finish_reason=FinishReason(row.finish_reason) if row.finish_reason else None,
        raw_finish_reason=row.raw_finish_reason, response_model=row.response_model,
        system_fingerprint=row.system_fingerprint, request_id=row.request_id,
        usage=Usage(row.input_tokens, row.cached_input_tokens, row.output_tokens, row.reasoning_tokens,
                    row.tokens_estimated, row.cache_write_input_tokens, row.cache_write_1h_input_tokens),
        latency_s=row.latency_s, ttft_s=row.ttft_s, http_status=row.http_status, ratelimit=dict(row.ratelimit or {}),
        retry_after_s=row.retry_after_s, error_type=ErrorType(row.error_type) if row.error_type else None,
        error_message=row.error_message, refusal_text=row.refusal_text, tool_calls=list(row.tool_calls or []),
        stream=row.stream,
    )
    started = aware(row.started_at)
    assert started is not None
    return Observation(
        canary=row.canary, target=row.target, provider=row.provider, request_model=row.request_model,
        started_at=started, call=call, run_id=row.run_id, sample_index=row.sample_index, cost_usd=row.cost_usd,
        output_tokens_per_s=row.output_tokens_per_s,
        checks=[CheckResult(c["name"], c["type"], c.get("passed"), c.get("detail", "")) for c in row.checks or []],
        refusal=row.refusal, refusal_score=row.refusal_score, id=row.id,
    )
