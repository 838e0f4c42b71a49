"""When to try again: exponential backoff with full jitter, and the receiver's Retry-After."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from email.utils import parsedate_to_datetime


def full_jitter(attempt: int, initial: float, cap: float, rand: Callable[[], float]) -> float:
    """Return a delay in [0, min(cap, initial * 2**attempt)] (attempt counts from 0)."""
    ceiling = min(cap, initial * (2 ** min(attempt, 40)))
    return ceiling * rand()


def retry_after(value: str | None, now: datetime) -> float | None:
    """Parse a Retry-After header (delta seconds in ASCII digits, or an HTTP date) into seconds from `now`; None
    for anything else (the normal backoff applies)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # isdigit() alone takes '²' (float() then raised) and '１０'
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
