"""Anthropic's prompt cache: the breakpoints a request sets (`cache_control`), and the usage object read into
`Usage`: input tokens with the cache reads and writes added in (the OTel convention), the writes kept apart by TTL,
and counts that are not counts passed on as they came for `vet` to name."""

from __future__ import annotations

from typing import Any

from monitor.domain import Usage
from monitor.providers.shape import shown


def block(text: str, ttl: str | None) -> dict[str, Any]:
    """A text block, marked as a cache breakpoint kept for `ttl` (5m, Anthropic's default, or 1h) when one is given."""
    mark = {} if ttl is None else {"cache_control": {"type": "ephemeral", **({"ttl": ttl} if ttl != "5m" else {})}}
    return {"type": "text", "text": text, **mark}


def cached(content: str, ttl: str | None) -> str | list[dict[str, Any]]:
    """A message's content: its text as it is, or one text block marked as a cache breakpoint."""
    return content if ttl is None else [block(content, ttl)]


def counts(u: Any, skip: str = "") -> dict[str, Any]:
    """The counts of a stream event's usage as they came (of any JSON type, for `vet` to name what is not a
    count), but for those it leaves out (null) and `skip`."""
    return {k: v for k, v in u.items() if v is not None and k != skip} if _object(u) else {}


def _object(u: Any) -> bool:
    """Whether a usage is there; raise ValueError naming it when it is not a JSON object."""
    if u is not None and not isinstance(u, dict):
        raise ValueError(f"usage {shown(u)} is not an object")
    return bool(u)


def is_count(v: Any) -> bool:
    return (type(v) is int or (type(v) is float and v.is_integer())) and v >= 0


def usage_of(u: Any) -> Usage:
    """Convert Anthropic usage; input_tokens here include cache reads and writes (the OTel convention).

    The cache writes are kept apart too (they are billed above the input price), with those written for an hour
    when `cache_creation` breaks them down by TTL. A count that is not one (text, a list, negative, true) is not
    added in, nor read as 0: it is passed on as it came, for `vet` to make the call a `bad_response` naming it."""
    if not _object(u) or ("input_tokens" not in u and "output_tokens" not in u):
        return Usage()
    base, read, write = (u.get(k) for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"))
    five, hour = _ttls(u.get("cache_creation"))
    given = [v for v in (five, hour) if v is not None]
    if write is None and given and all(is_count(v) for v in given):
        write = sum(given)  # the breakdown without its total
    odd = [v for v in (base, read, write) if v is not None and not is_count(v)]
    inputs = odd[0] if odd else None if base is None else base + (read or 0) + (write or 0)
    return Usage(input_tokens=inputs, cached_input_tokens=read, output_tokens=u.get("output_tokens"),
                 cache_write_input_tokens=write, cache_write_1h_input_tokens=hour if write is not None else None)


def _ttls(breakdown: Any) -> tuple[Any, Any]:
    """The 5-minute and 1-hour cache writes of a usage's `cache_creation` (None for each it does not give);
    raise ValueError naming it when it is not a JSON object."""
    if breakdown is None:
        return None, None
    if not isinstance(breakdown, dict):
        raise ValueError(f"usage.cache_creation {shown(breakdown)} is not an object")
    return breakdown.get("ephemeral_5m_input_tokens"), breakdown.get("ephemeral_1h_input_tokens")


__all__ = ["block", "cached", "counts", "is_count", "usage_of"]
