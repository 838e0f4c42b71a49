"""What a stream remembers per observation and per open event (shared by the stream and its window tests)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from monitor.drift import cusum as cs
from monitor.drift.events import DriftEvent
from monitor.drift.signals import SignalValue


class Signals(Mapping[str, SignalValue]):
    """One observation's signals as a stream keeps them: the values in a tuple, the names shared by every
    observation with the same signals, category values (finish reason, model, fingerprint) interned.

    A dict per observation cost about 400 bytes plus its own copies of the strings; with a window and a
    reference lag of observations per stream, that was a third of the drift state.
    """

    __slots__ = ("_index", "_values")
    _layouts: ClassVar[dict[tuple[str, ...], dict[str, int]]] = {}  # one per distinct set of signal names

    def __init__(self, values: Mapping[str, SignalValue]) -> None:
        names = tuple(values)
        index = self._layouts.get(names)
        if index is None:
            index = self._layouts.setdefault(names, {name: i for i, name in enumerate(names)})
        self._index = index
        self._values = tuple(sys.intern(v) if isinstance(v, str) else v for v in values.values())

    def __getitem__(self, name: str) -> SignalValue:
        return self._values[self._index[name]]

    def get(self, name: str, default: Any = None) -> Any:  # the hot path: no KeyError round trip
        i = self._index.get(name)
        return default if i is None else self._values[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Signals({dict(self)!r})"


@dataclass(slots=True)
class Entry:
    """One observation as the stream remembers it (text only while inside the window)."""

    obs_id: str
    at: str
    ok: bool
    signals: Signals
    text: str | None


# The detail keys that carry an open event's progress towards resolving, so a restart or a standby taking over
# resumes it where the process before left it (without them the return was counted afresh: an event halfway back
# at baseline needed its whole run again, and `detail.back` named only the observations since the restart).
RESOLVING = "resolving"  # a rate event's reverse chart: {level, run, run_events} (integer units of its chart)
CLEAN = "clean"  # a zero-tolerance event's observations in a row without a violation


def kept_reverse(detail: Mapping[str, Any], chart: cs.Chart) -> cs.BernoulliCusum:
    """The reverse chart a rate event's stored detail kept; a fresh one where it kept none (stored before, or
    pinned to a new baseline) or where what it kept does not fit `chart` (a level short of its threshold, no more
    events than observations)."""
    d = detail.get(RESOLVING)
    if isinstance(d, Mapping):
        level, run, events = (d.get(k) for k in ("level", "run", "run_events"))
        if type(level) is int and type(run) is int and type(events) is int \
                and 0 < level < chart.h and 0 <= events <= run and run >= 1:
            return cs.BernoulliCusum(level, run, events)
    return cs.BernoulliCusum()


def kept_clean(detail: Mapping[str, Any]) -> int:
    """The clean run a zero-tolerance event's stored detail kept (0 where none, or where it is not a count that
    fits the observations it saw)."""
    clean, seen = detail.get(CLEAN), detail.get("observations")
    return clean if type(clean) is int and type(seen) is int and 0 <= clean < seen else 0


@dataclass(slots=True)
class _Open:
    """Engine-side state of an open event: what it needs to decide the signal is back at baseline."""

    event: DriftEvent
    since: int  # stream observation count when opened
    reverse: cs.BernoulliCusum | None = None
    chart: cs.Chart | None = None  # the opening chart; the reverse CUSUM runs it backwards
    flip: bool = False
    sample: Any = None  # opening window (values, counts or features) for window-test resolution
    # The window test's p-value against the reference of `sample`: a later window further from the reference
    # replaces it (an event opened early in a change holds a window mostly of the old behaviour, from which a
    # return to it never differs: the event would stay open with its signal back at baseline).
    sample_p: float = 1.0
    clean: int = 0  # zero-tolerance events: observations in a row without a violation
    back_at: int | None = None  # restored without a sample: the count when a window was first back at the reference
