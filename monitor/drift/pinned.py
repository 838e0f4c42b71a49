"""A pinned baseline and the open events it replaces the baseline of: does the pinned range hold their change?

An open event was judged against the baseline a pin replaces. Its latest window (the pair's latest observations
since its change) is tested against the pinned range with the test the engine uses for its signal: a window that
does not differ from the range (p above ``BACK_P``) shows behaviour the range holds, and the event is accepted by
the pin; one that differs stays open, measured against the pinned range from then on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from monitor.domain import Observation
from monitor.drift.baseline import Baseline
from monitor.drift.events import MODEL, DriftEvent
from monitor.drift.names import RATE, signal_type
from monitor.drift.settings import DriftSettings
from monitor.drift.signals import SignalValue, normalise, text_similarity
from monitor.drift.state import Entry, Signals
from monitor.drift.stream import Stream
from monitor.drift.twosample import TestResult, rate_test
from monitor.drift.windows import BACK_P, COMPLETION


def latest_window(settings: DriftSettings, b: Baseline, recent: Sequence[Observation], pinned: set[str],
                  signals: Callable[[Observation], dict[str, SignalValue]]) -> Stream:
    """A scratch stream on the pinned baseline holding `recent` (oldest first) as its window, their signals
    measured against it. An observation of the pinned range has its similarity measured leaving itself out of the
    range's texts, as the range's own values were (measured with itself, its similarity would be 1 higher)."""
    st = Stream(b.canary, b.target, settings, b)
    for o in recent:
        sig = signals(o)
        if o.id in pinned and o.ok and sig.get("similarity") is not None:
            own, sample = normalise(o.text), list(b.similarity_texts())
            if own in sample:
                sample.remove(own)
            sig = {**sig, "similarity": text_similarity(own, sample)}
        st.entries.append(Entry(o.id, o.started_at.isoformat(), o.ok, Signals(sig), o.text if o.ok else None))
    return st


def judged(st: Stream, event: DriftEvent) -> tuple[bool, TestResult | None]:
    """Whether the pinned range (``st.baseline``) holds the event's change: its latest window (``st``'s) does not
    differ from the range by the engine's test of its signal; and that test (None without one: too few
    observations on a side, which cannot tell them apart)."""
    name, b = event.signal, st.baseline
    if event.kind == MODEL:  # a served model or fingerprint: the range has seen every value the window shows
        known = set(b.identity.get(name, []))
        return all(str(e.signals[name]) in known for e in st._window(lambda e: e.signals.get(name) is not None)), None
    if name == COMPLETION:
        res = st._mmd(st._texts(), alpha=None)
    elif _family(name) == RATE:
        win = st._window(lambda e: e.signals.get(name) is not None, ok_only=False)
        k0, n0 = b.rate(name)
        res = rate_test(k0, n0, sum(1 for e in win if bool(e.signals[name])), len(win))
    elif name in b.values or name in b.categories:
        res = st._window_test(name)
    else:  # the range never showed the signal at all (no value in any of its observations)
        return False, None
    return res is None or res.p_value > BACK_P, res


def reference(b: Baseline, event: DriftEvent, res: TestResult | None) -> tuple[float | str | None, int]:
    """The pinned range's value of an event's signal and the observations behind it (what the event now shows as
    its baseline)."""
    name = event.signal
    if event.kind == MODEL:
        return ", ".join(b.identity.get(name, [])), b.count
    if _family(name) == RATE:
        k, n = b.rate(name)
        return (k / n if n else None), n
    if name in b.values:
        vals = b.values[name]
        return (sum(vals) / len(vals) if vals else None), len(vals)
    if name in b.categories:
        value = res.baseline_value if res is not None else event.baseline_value
        return value, sum(b.categories[name].values())
    return event.baseline_value, b.count


def _family(name: str) -> str | None:
    try:
        return signal_type(name)
    except KeyError:  # "completion"
        return None
