"""Durations written the Prometheus way: 30s, 5m, 1h30m, 2d."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, Field

from monitor.errors import shown

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)")  # ASCII digits: \d takes ９ too
MAX_S = 100 * 365.25 * 86400.0
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str | int | float) -> float:
    """Return seconds for '90s', '5m', '1h30m' (a bare number means seconds); raise ValueError otherwise."""
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"duration must not be negative: {text!r}")
        return _bounded(float(text) if abs(text) < MAX_S * 2 else math.inf, text)  # float() overflows past 1e308
    if not isinstance(text, str):  # YAML gave null, a list or a mapping: name it as written, not as Python types it
        given = "null" if text is None else "a list" if isinstance(text, list | tuple) else \
            "a mapping" if isinstance(text, dict) else f"a {type(text).__name__}"
        raise ValueError(f"not a duration: {given} (use e.g. 30s, 5m, 1h30m)")
    s = text.strip()
    pos, total = 0, 0.0
    # One part matched where the last ended: a search (finditer) from every later place took seconds per
    # thousand digits squared on a run of digits with no unit (`--since 99...9`: minutes for 100,000).
    while pos < len(s) and (m := _PART.match(s, pos)) is not None:
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        # cut short: a megabyte written for a duration is not echoed whole (an issue shows its value too)
        raise ValueError(f"not a duration: {shown(text, 40)} (use e.g. 30s, 5m, 1h30m)")
    return _bounded(total, text)


def format_duration(seconds: float) -> str:
    """Return `seconds` as parse_duration reads it back, largest units first: 90 -> 1m30s, 86400 -> 1d."""
    rest, parts = round(seconds * 1000), []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        n, rest = divmod(rest, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts) or "0s"


def _bounded(seconds: float, text: object) -> float:
    # Times a duration from now must stay representable (datetime ends in year 9999); nothing here needs a century.
    if not seconds <= MAX_S:
        raise ValueError(f"duration too long: {text!r:.40} (at most 100 years)")
    return seconds


# A config field of seconds: a number of seconds or a duration (`90s`, `5m`), at least 0. Every duration and timeout
# of the config takes both forms (a `*_s` field, whose name says its unit, takes a number).
Seconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
