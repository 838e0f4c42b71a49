"""Times users write: a replay dump's `started_at`, `--since`/`--until`, the HTTP API's `since`/`until`.

One profile, read here only: RFC 3339 (``2026-11-30T07:50:00Z``, ``2026-11-30T08:50:00.25+01:00``) with what
people expect beside it: ``t``/``z`` in lower case or a space for the ``T`` (both allowed by RFC 3339), seconds
left out (``2026-11-30T07:50``), an offset without its colon (``+0100``, as ``strftime("%z")`` writes it), no
offset at all (read as UTC, as llm-monitor stores every time) and a date alone (00:00 UTC). Up to nine digits of a
second's fraction are read (nanoseconds, as Go writes them), kept to the microsecond. Everything else Python's
``datetime.fromisoformat`` would take is refused: basic format (``20261130``, ``T075000``), week and ordinal
dates (``2026-W48-1``), an hour alone, a comma before the fraction, an offset of hours only or with seconds, a
leap second (``:60``, which a ``datetime`` cannot hold), and a time outside years 1-9999 in UTC (the store
compares in UTC).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

EXAMPLE = "2026-11-30T07:50:00Z"
NOT_A_TIME = "not an RFC 3339 time"  # the message when the text has not the form of one (else: which part is wrong)
_TIME = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})"
    r"(?:[Tt ](?P<h>[0-9]{2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:\.(?P<f>[0-9]{1,9}))?)?"
    r"(?P<zone>[Zz]|(?P<sign>[+-])(?P<oh>[0-9]{2}):?(?P<om>[0-9]{2}))?)?")


class TimeInputError(ValueError):
    """A time a user wrote is not one `parse_time` reads; the message says why, without the value (callers show
    it bounded, then `EXAMPLE`)."""


def parse_time(text: str) -> datetime:
    """Return the aware datetime `text` names (no offset: UTC); raise TimeInputError saying why it is none."""
    m = _TIME.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise TimeInputError(NOT_A_TIME)
    zone = UTC
    if m["sign"]:
        oh, om = int(m["oh"]), int(m["om"])
        if oh > 23 or om > 59:
            raise TimeInputError(f"not a valid time (offset {m['sign']}{m['oh']}:{m['om']} past 23:59)")
        zone = timezone((-1 if m["sign"] == "-" else 1) * timedelta(hours=oh, minutes=om))
    fraction = (m["f"] or "").ljust(6, "0")[:6]
    try:
        ts = datetime(int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"] or 0), int(m["mi"] or 0),
                      int(m["s"] or 0), int(fraction), tzinfo=zone)
    except ValueError as e:  # "month must be in 1..12", "second must be in 0..59" (a leap second), ...
        raise TimeInputError(f"not a valid time ({e})") from None
    try:
        ts.astimezone(UTC)  # the store compares times in UTC: 0001-01-01T00:00+01:00 has no UTC time
    except OverflowError:
        raise TimeInputError("not a valid time (before 0001-01-01 or after 9999-12-31 in UTC)") from None
    return ts
