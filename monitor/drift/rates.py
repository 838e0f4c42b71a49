"""Rate signals of a stream (``Stream``'s mixin): two Bernoulli CUSUMs per direction, events they open, and
their resolution.

Each rate direction (a refusal rate up or down, a check's pass rate down, ...) runs a chart tuned to a moderate
shift and one tuned to a large one (``rate_large_*``), their false-alarm rates adding up to the direction's
(``budget.rate_split``); charts come from the baseline's counts (``ratechart.rate_chart``). Sentinels, CUSUMs at
the point estimate, tell the stream when a rate may be changing, so its reference does not learn it.
"""

from __future__ import annotations

import math
from typing import Any

from monitor.decision import BACK
from monitor.drift import budget
from monitor.drift import cusum as cs
from monitor.drift import ratechart as rc
from monitor.drift.events import BEHAVIOUR, DriftEvent, EventUpdate
from monitor.drift.state import RESOLVING, Entry, _Open


class RateCharts:
    """Mixin of ``Stream``: the Bernoulli CUSUMs of its rate signals."""

    __slots__ = ()
    settings: Any
    baseline: Any
    open: dict[str, _Open]
    n_ok: int
    params: dict[tuple[str, bool], cs.Chart]
    cusums: dict[tuple[str, bool], cs.BernoulliCusum]
    large: dict[tuple[str, bool], cs.Chart]
    large_cusums: dict[tuple[str, bool], cs.BernoulliCusum]
    sentinels: dict[tuple[str, bool], float]
    _steps: dict[tuple[str, bool], tuple[float, float]]
    _starts: dict[tuple[str, bool], Entry]
    _large_starts: dict[tuple[str, bool], Entry]
    _event: Any  # Stream's: builds an event of this stream
    _evidence: Any  # Stream's: representative completions and their diff
    _resolve: Any  # Stream's: closes an open event

    def _rate_directions(self) -> list[tuple[str, bool]]:
        dirs: list[tuple[str, bool]] = []
        for name, (_, n) in self.baseline.rates.items():
            if n < 5 or not self.settings.enabled(name):
                continue
            if name == "error":
                dirs.append((name, True))
            elif name == "exact_match":
                dirs.append((name, False))
            else:
                dirs += [(name, True), (name, False)]
        return dirs

    def _calibrate_rates(self, dirs: list[tuple[str, bool]], arl0_direction: float) -> None:
        """Build each rate direction's two charts (moderate and large shift) for the baseline's rates."""
        s = self.settings
        arl0, arl0_large = budget.rate_split(s, arl0_direction)
        for name, up in dirs:
            k, n = self.baseline.rate(name)
            if not up:
                k = n - k
            # None: e.g. a fall of a 1% refusal rate; nothing meaningful to detect in this direction
            chart = rc.rate_chart(k, n, s.rate_quantiles, s.rate_odds_ratio, s.rate_min_shift, arl0)
            if chart is None:
                self.params.pop((name, up), None)
                self.large.pop((name, up), None)
                continue
            self._swap(self.params, self.cusums, (name, up), chart)
            self._steps[(name, up)] = rc.sentinel_steps(k, n, s.rate_odds_ratio, s.rate_min_shift)
            large = None if arl0_large is None else rc.rate_chart(
                k, n, s.rate_quantiles, s.rate_large_odds_ratio, s.rate_large_min_shift, arl0_large)
            if large is None:
                self.large.pop((name, up), None)
            else:
                self._swap(self.large, self.large_cusums, (name, up), large)

    @staticmethod
    def _swap(charts: dict[tuple[str, bool], cs.Chart], cusums: dict[tuple[str, bool], cs.BernoulliCusum],
              key: tuple[str, bool], chart: cs.Chart) -> None:
        old = charts.get(key)
        charts[key] = chart
        c = cusums.get(key)
        if c is not None and old is not None and old != chart and c.level > 0:
            # a new chart has a new integer unit: carry the evidence over on the LLR scale, short of an alarm
            c.level = max(0, min(round(c.level * old.unit / chart.unit), chart.h - 1))

    def _rates(self, entry: Entry) -> list[EventUpdate]:
        out: list[EventUpdate] = []
        for (name, up), ch in self.params.items():
            value = entry.signals.get(name)
            if value is None:  # a failed call carries only the signals that apply to it
                continue
            x = bool(value) == up
            op = self.open.get(name)
            if op is not None:
                # the opening chart run backwards (+r on a 0, -m on a 1, same threshold) resolves it
                reverse, chart = op.reverse, op.chart
                if reverse is not None and chart is not None and op.flip == up:
                    seen = _seen(op.event, bool(value))
                    if reverse.step(not x, chart.r, chart.m) >= chart.h:
                        op.event.detail.pop(RESOLVING, None)
                        _ended(op.event, reverse, up)
                        out += [seen, self._resolve(name, entry.at)]
                    else:  # written with the update, for a restart or a take-over to resume
                        op.event.detail[RESOLVING] = {"level": reverse.level, "run": reverse.run,
                                                      "run_events": reverse.run_events}
                        out.append(seen)
                continue
            inc = self._steps.get((name, up), (0.0, 0.0))
            self.sentinels[(name, up)] = max(0.0, self.sentinels.get((name, up), 0.0) + (inc[0] if x else inc[1]))
            c = self.cusums.setdefault((name, up), cs.BernoulliCusum())
            if c.level == 0:
                self._starts[(name, up)] = entry
            fired = opened = c.step(x, ch.m, ch.r) >= ch.h
            big = self.large.get((name, up))
            cl = None
            if big is not None:  # the large-shift chart beside it: an alarm from either opens the event
                cl = self.large_cusums.setdefault((name, up), cs.BernoulliCusum())
                if cl.level == 0:
                    self._large_starts[(name, up)] = entry
                if cl.step(x, big.m, big.r) >= big.h and not fired:  # both: the moderate one's event
                    out.append(self._open_rate(name, up, cl, big, entry, self._large_starts.get((name, up)), ch))
                    opened = True
            if fired:
                out.append(self._open_rate(name, up, c, ch, entry, self._starts.get((name, up))))
            if opened:
                c.reset()
                if cl is not None:
                    cl.reset()
        return out

    def _open_rate(self, name: str, up: bool, c: cs.BernoulliCusum, ch: cs.Chart, entry: Entry,
                   first: Entry | None, resolver: cs.Chart | None = None) -> EventUpdate:
        k, n = self.baseline.rate(name)
        base = k / n
        hits = c.run_events if up else c.run - c.run_events
        cur = hits / max(c.run, 1)
        eff = 2 * math.asin(math.sqrt(cur)) - 2 * math.asin(math.sqrt(base))
        ev = self._event(
            name, BEHAVIOUR, "bernoulli_cusum", first, entry.at,
            baseline_value=base, current_value=cur, effect_size=eff, statistic=c.level * ch.unit, p_value=None,
            threshold=ch.threshold, baseline_n=n, current_n=c.run,
            evidence=self._evidence(lambda e: e.signals.get(name) is not None and bool(e.signals[name]) == up),
            detail={"direction": "up" if up else "down", "p0": ch.p0, "p1": ch.p1, "m": ch.m, "r": ch.r, "h": ch.h,
                    "hits": hits},
        )
        # Back at baseline = the same CUSUM run in reverse (design rate p1 -> reference p0) crosses the same
        # threshold: as much evidence to resolve as to open, so events do not flap. An event the large-shift chart
        # opened resolves by the moderate one beside it (``resolver``, stored in the detail for a restart): run
        # backwards, the large one needs only a short run of passes, and resolved rates held at 15-30% (designed
        # at 50%) for a chart to reopen them.
        if resolver is not None:
            ev.detail["resolve"] = {"p0": resolver.p0, "p1": resolver.p1, "m": resolver.m, "r": resolver.r,
                                    "h": resolver.h, "unit": resolver.unit}
        self.open[name] = _Open(ev, self.n_ok, cs.BernoulliCusum(), resolver or ch, up)
        return EventUpdate("opened", ev)


def _seen(ev: DriftEvent, hit: bool) -> EventUpdate:
    """One more observation of an open rate event's signal: its current value is the rate since the change began
    (the opening run's observations and every one since), not the rate it opened with, held for as long as it is
    open. An event stored before `hits` was kept takes it from its rate and count."""
    rate = ev.current_value if isinstance(ev.current_value, float | int) else 0.0
    hits = int(ev.detail.get("hits", round(rate * ev.current_n))) + hit
    ev.current_n += 1
    ev.detail["hits"] = hits
    ev.current_value = hits / ev.current_n
    if isinstance(ev.baseline_value, float | int):
        ev.effect_size = 2 * math.asin(math.sqrt(ev.current_value)) - 2 * math.asin(math.sqrt(ev.baseline_value))
    return EventUpdate("updated", ev)


def _ended(ev: DriftEvent, reverse: cs.BernoulliCusum, up: bool) -> None:
    """A rate event resolving: its current value becomes the rate while the change lasted, from its start to where
    the return began (where the reverse chart's run began, as the opening chart's run dates the start), not the
    rate since the start, which the return's own observations pull back towards the baseline (refused 0 -> 0.48 for
    a change at 0.6). The return's observations, count, hits and rate, go to ``detail["back"]``: nothing is lost
    (the since-start figures are the two added up)."""
    back = reverse.run
    trues = back - reverse.run_events if up else reverse.run_events  # the reverse chart counts the other outcome
    rate = ev.current_value if isinstance(ev.current_value, float | int) else 0.0
    hits = int(ev.detail.get("hits", round(rate * ev.current_n)))
    if back < 1 or ev.current_n - back < 1:
        return
    ev.detail[BACK] = {"n": back, "hits": trues, "rate": trues / back}
    ev.detail["hits"] = hits - trues
    ev.current_n -= back
    ev.current_value = (hits - trues) / ev.current_n
    if isinstance(ev.baseline_value, float | int):
        ev.effect_size = 2 * math.asin(math.sqrt(ev.current_value)) - 2 * math.asin(math.sqrt(ev.baseline_value))
