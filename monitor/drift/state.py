"""What a stream remembers per observation and per open event (shared by the stream and its window tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.drift import cusum as cs
from monitor.drift.events import DriftEvent
from monitor.drift.signals import SignalValue


@dataclass(slots=True)
class Entry:
    """One observation as the stream remembers it (text only while inside the window)."""

    obs_id: str
    at: str
    ok: bool
    signals: dict[str, SignalValue]
    text: str | None


@dataclass(slots=True)
class _Open:
    """Engine-side state of an open event: what it needs to decide the signal is back at baseline."""

    event: DriftEvent
    since: int  # stream observation count when opened
    reverse: cs.BernoulliCusum | None = None
    chart: cs.Chart | None = None  # the opening chart; the reverse CUSUM runs it backwards
    flip: bool = False
    sample: Any = None  # opening window (values, counts or features) for window-test resolution
