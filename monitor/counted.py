"""Counts in messages with their noun agreeing: `1 target`, `2 targets`, `1 canary`, `0.5 events/day`."""

from __future__ import annotations

_IRREGULAR = {"canary": "canaries"}


def counted(n: float, noun: str, spec: str = ",", per: str = "") -> str:
    """`n noun` with `n` formatted by `spec` (`,`: 1,000) and the noun plural unless that reads `1`; `per` is appended
    to the noun (`/day`)."""
    text = format(n, spec)
    return f"{text} {noun if text == '1' else _IRREGULAR.get(noun, noun + 's')}{per}"
