"""The drift engine: one entry point that turns a stream of observations into drift event updates."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from monitor.domain import Observation, utcnow
from monitor.drift import cusum as cs
from monitor.drift import pinned
from monitor.drift.baseline import Baseline
from monitor.drift.certification import Certification
from monitor.drift.events import ACCEPTED, OPEN, RESOLVED, DriftEvent, EventUpdate
from monitor.drift.names import CATEGORY, RATE, signal_type
from monitor.drift.settings import DriftSettings
from monitor.drift.signals import (
    EmbedFn,
    RefusalFn,
    SignalValue,
    compute_signals,
    embed_texts,
    usable_embeddings,
)
from monitor.drift.state import CLEAN, RESOLVING, kept_clean, kept_reverse
from monitor.drift.stream import COMPLETION, Stream, _Open
from monitor.drift.twosample import category_test
from monitor.drift.zero import ZERO_TOLERANCE


class DriftEngine:
    """Detects provider-side behaviour changes per canary x target, in bounded time per observation.

    Feed every observation (successes and failures) in time order with ``observe``; it returns the events
    opened, updated or resolved. The engine holds no database: persist ``compute_signals`` output, events
    (``DriftEvent.to_json``) and baselines (``Baseline.to_json``) outside, and rebuild after a restart by
    feeding stored observations in order again (re-applying ``accept``/``reset`` at their times), or by
    ``set_baseline`` + ``restore_events`` and feeding the observations after the baseline. Event ids are
    derived from canary, target, signal, first observation and opening time, so a rebuild yields the same
    ids. ``refusal`` labels an observation refused (default: ``obs.refusal`` in partial/full); ``embed``
    (texts -> vectors) adds an optional semantic-similarity signal.

    With ``defer_certification`` the exact permutation test that decides an opening of the whole-completion test
    (seconds when a change is there) is not run inside ``observe``: the round leaves a ``Certification`` (take them
    with ``take_certifications``, ``run`` each anywhere, apply with ``certified``), which decides as the inline test
    would. Meanwhile the stream starts no other such test. Without it (replay, benchmarks) all runs inline.
    """

    def __init__(
        self,
        settings: DriftSettings | None = None,
        clock: Callable[[], datetime] = utcnow,
        *,
        refusal: RefusalFn | None = None,
        embed: EmbedFn | None = None,
        zero_tolerance: Mapping[str, Iterable[str]] | None = None,
        defer_certification: bool = False,
    ) -> None:
        self.settings = settings or DriftSettings()
        self.clock = clock
        self.refusal = refusal
        self.embed = embed
        self._streams: dict[tuple[str, str], Stream] = {}
        self._events: dict[str, DriftEvent] = {}
        self.defer_certification = defer_certification
        self._certifications: list[Certification] = []  # left by rounds since the last `take_certifications`
        self.zero_tolerance: dict[str, frozenset[str]] = {}
        self.set_zero_tolerance(zero_tolerance or {})

    # -- observing ---------------------------------------------------------------------------------------
    def stream(self, canary: str, target: str) -> Stream:
        """Return (creating if needed) the state of one canary x target."""
        key = (canary, target)
        st = self._streams.get(key)
        if st is None:
            b = Baseline.new(canary, target, self.settings, created_at=self.clock())
            st = self._streams[key] = Stream(canary, target, self.settings, b, defer=self.defer_certification)
            st.zero = self.zero_tolerance.get(canary, frozenset())
        return st

    def set_zero_tolerance(self, declared: Mapping[str, Iterable[str]]) -> None:
        """Set, per canary, the rate signals declared zero-tolerance (``monitor.drift.zero``); others have none.
        Events already open stay open and resolve as before."""
        self.zero_tolerance = {canary: frozenset(names) for canary, names in declared.items() if names}
        for (canary, _), st in self._streams.items():
            st.zero = self.zero_tolerance.get(canary, frozenset())

    def compute_signals(self, obs: Observation) -> dict[str, SignalValue]:
        """Compute the signals of one observation against its stream's current baseline."""
        b = self.stream(obs.canary, obs.target).baseline
        return compute_signals(obs, b, refusal=self.refusal, embed=self.embed)

    def observe(self, obs: Observation, signals: dict[str, SignalValue] | None = None) -> list[EventUpdate]:
        """Analyse one observation (signals computed here unless given) and return event updates."""
        st = self.stream(obs.canary, obs.target)
        sig = signals if signals is not None else self.compute_signals(obs)
        before = st.certifying
        try:
            updates = st.observe(obs.id, obs.started_at.isoformat(), obs.ok, obs.text, sig)
        finally:  # handed out even if the round failed after it: the stream waits for it before testing again
            if st.certifying is not None and st.certifying is not before:
                self._certifications.append(st.certifying)
        b = st.baseline
        # embedded once ready, and again on later observations while the endpoint was down when it tried
        if b.ready and self.embed is not None and b.texts and not usable_embeddings(b.embeddings):
            b.embeddings = embed_texts(self.embed, b.texts)
        self._keep(updates)
        return updates

    def take_certifications(self) -> list[Certification]:
        """Return (and forget) the certifications rounds left since the last call (``defer_certification``). Each
        must come back through ``certified`` (or ``forget_certification``): its stream tests again only then."""
        out, self._certifications = self._certifications, []
        return out

    def certified(self, c: Certification) -> list[EventUpdate]:
        """Apply a certification once ``run``: its event opens if the exact test rejected, with the exact p-value,
        as the inline test opens it. One its stream no longer waits for is ignored: a new baseline since (reset,
        accept, pin, one another process stored) or an open event of the signal restored meanwhile (a takeover)."""
        st = self._streams.get((c.canary, c.target))
        if st is None or st.certifying is not c:
            return []
        st.certifying = None
        if not c.rejects or c.result is None or COMPLETION in st.open:
            return []
        op = c.opening
        op.event.p_value = op.sample_p = c.result.p_value
        op.event.detail["p_permutation"] = c.result.p_permutation
        st.open[COMPLETION] = op
        out = [EventUpdate("opened", op.event)]
        self._keep(out)
        return out

    def awaits(self, c: Certification) -> bool:
        """Whether `c`'s stream still waits for it: false once a new baseline, a restored event of its key or
        ``forget_certification`` made it stale (``certified`` would ignore it). Read from the certifying thread too
        (one attribute read: a stale answer only runs a test whose decision is then ignored)."""
        st = self._streams.get((c.canary, c.target))
        return st is not None and st.certifying is c

    def forget_certification(self, c: Certification) -> None:
        """Let go of a certification not applied (its pair no longer configured, or applying it failed): its stream
        tests again."""
        st = self._streams.get((c.canary, c.target))
        if st is not None and st.certifying is c:
            st.certifying = None

    def _keep(self, updates: list[EventUpdate]) -> None:
        """Hold the events still open; let go of those just resolved or accepted (the caller stores them: a daemon
        running for months would otherwise keep every event it ever opened, evidence and all)."""
        for u in updates:
            if u.event.state == OPEN:
                self._events[u.event.id] = u.event
            else:
                self._events.pop(u.event.id, None)

    # -- operator actions ---------------------------------------------------------------------------------
    def accept(self, canary: str, target: str, note: str = "", now: datetime | None = None) -> list[EventUpdate]:
        """Accept current behaviour: open events become accepted and recent behaviour the new baseline."""
        now = now or self.clock()
        st = self.stream(canary, target)
        out = []
        firsts = []
        for name, op in list(st.open.items()):
            op.event.state, op.event.accepted_at, op.event.note = ACCEPTED, now.isoformat(), note
            firsts.append(op.event.first_obs_at or "")
            out.append(EventUpdate("accepted", op.event))
            del st.open[name]
        since = min(firsts) if firsts else ""
        b = Baseline.new(canary, target, self.settings, source="accepted", note=note, created_at=now)
        for e in st.entries:
            if e.at < since:
                continue
            if e.ok and e.text is not None:
                b.add_raw(e.obs_id, e.at, e.text, e.signals, self.settings)
            elif not e.ok:  # the error rate, and a content-policy refusal's signals (as `Baseline.add` counts them)
                b.add_error(e.signals, self.settings)
        self._replace(st, b)
        self._keep(out)
        return out

    def reset(self, canary: str, target: str, now: datetime | None = None, note: str = "") -> list[EventUpdate]:
        """Drop the baseline: the next successful observations build a new one; open events resolve."""
        now = now or self.clock()
        st = self.stream(canary, target)
        out = []
        for name in list(st.open):
            op = st.open.pop(name)
            op.event.state, op.event.resolved_at, op.event.note = RESOLVED, now.isoformat(), note or "reset"
            out.append(EventUpdate("resolved", op.event))
        self._replace(st, Baseline.new(canary, target, self.settings, note=note, created_at=now))
        self._keep(out)
        return out

    def set_baseline(self, baseline: Baseline) -> None:
        """Install a baseline (restored from storage, or built from a pinned time range)."""
        st = self.stream(baseline.canary, baseline.target)
        self._replace(st, baseline)

    def pin_baseline(
        self,
        canary: str,
        target: str,
        observations: Iterable[Observation],
        note: str = "",
        now: datetime | None = None,
    ) -> Baseline:
        """Build and install a baseline from stored observations of a pinned time range."""
        obs = [o for o in observations if o.canary == canary and o.target == target]
        pairs = [(o, compute_signals(o, None, refusal=self.refusal)) for o in obs]
        b = Baseline.build(
            canary, target, pairs, self.settings, note=note, created_at=now or self.clock(), embed=self.embed
        )
        self.set_baseline(b)
        return b

    def pin(
        self,
        canary: str,
        target: str,
        observations: list[Observation],
        recent: list[Observation],
        note: str = "",
        now: datetime | None = None,
    ) -> list[EventUpdate]:
        """Make a pinned time range the baseline and judge each open event against it (``monitor.drift.pinned``):
        one whose latest window (`recent`, oldest first) the range holds is accepted; the others stay open with the
        range as their baseline, resolving once behaviour is back at it (no second event meanwhile)."""
        now = now or self.clock()
        b = self.pin_baseline(canary, target, observations, note=note, now=now)
        st = self.stream(canary, target)
        window = pinned.latest_window(self.settings, b, recent, {o.id for o in observations},
                                      lambda o: compute_signals(o, b, refusal=self.refusal, embed=self.embed))
        out = []
        for name, op in list(st.open.items()):
            del st.open[name]
            ev = op.event
            held, res = pinned.judged(window, ev)
            if held:
                ev.state, ev.accepted_at = ACCEPTED, now.isoformat()
                ev.note = "baseline pinned" + (f": {note}" if note else "")
                out.append(EventUpdate("accepted", ev))
            else:
                ev.baseline_value, ev.baseline_n = pinned.reference(b, ev, res)
                for key in (RESOLVING, CLEAN):  # its return is measured against the pinned range from here
                    ev.detail.pop(key, None)
                self.restore_events([ev])  # measured against the pinned range from now on, as after a restart
                out.append(EventUpdate("updated", ev))
        self._keep(out)
        return out

    def restore_events(self, events: Iterable[DriftEvent]) -> None:
        """Register stored open events: they block duplicates and resume their resolution tracking (closed ones are
        ignored: the engine holds open events only)."""
        for ev in events:
            if ev.state != OPEN:
                continue
            self._events[ev.id] = ev
            st = self.stream(ev.canary, ev.target)
            if ev.signal == COMPLETION:
                st.certifying = None  # the key is open: an opening still being certified would be a second event
            op = _Open(ev, st.n_ok)
            if signal_type_safe(ev.signal) == RATE and "p0" in ev.detail:
                up = ev.detail.get("direction", "up") == "up"
                p0, p1 = float(ev.detail["p0"]), float(ev.detail["p1"])
                if isinstance(d := ev.detail.get("resolve"), dict):  # opened by a large-shift chart: its resolver
                    chart = cs.Chart(float(d["p0"]), float(d["p1"]), int(d["m"]), int(d["r"]), int(d["h"]),
                                     float(d["unit"]))
                elif {"m", "r", "h"} <= set(ev.detail):
                    d = ev.detail
                    chart = cs.Chart(p0, p1, int(d["m"]), int(d["r"]), int(d["h"]), (ev.threshold or 0.0) / int(d["h"]))
                else:  # stored before the integer charts: rebuild from the LLR threshold
                    chart = cs.chart_from(p0, p1, float(ev.threshold or 0.0))
                op = _Open(ev, st.n_ok, kept_reverse(ev.detail, chart), chart, up)
            elif ev.test == ZERO_TOLERANCE:
                op = _Open(ev, st.n_ok, clean=kept_clean(ev.detail))
            elif signal_type_safe(ev.signal) == CATEGORY and isinstance(counts := ev.detail.get("current"), dict):
                # a category event stores its opening window's counts: its return is judged against them, as
                # before the restart (a continuous or whole-completion event takes the first window after it)
                sample = {str(k): int(v) for k, v in counts.items()}
                ref = category_test(st.baseline.categories.get(ev.signal, {}), sample)
                op = _Open(ev, st.n_ok, sample=sample, sample_p=ref.p_value if ref is not None else 1.0)
            st.open[ev.signal] = op

    def _replace(self, st: Stream, b: Baseline) -> None:
        # The observations kept so far were analysed against the old baseline (their similarity and exact match
        # are relative to its texts) and show the behaviour it described: ageing out they would join the new
        # reference (an accept would learn the old behaviour back, a reset the history it drops), and the window
        # tests would compare them with it. The new baseline's window starts empty.
        st.entries.clear()
        st._gone_run = 0
        st._resolved_at.clear()
        st._starts.clear()
        st.baseline = b
        st.cusums.clear()
        st.params.clear()
        st.large_cusums.clear()
        st.large.clear()
        st._large_starts.clear()
        st.ranks.clear()
        st.sentinels.clear()
        st._steps.clear()
        st._sorted.clear()
        st._merged.clear()
        st.certifying = None  # a test of the old baseline's reference (`certified` ignores it when it comes back)
        st.n_ok = st.n_all = 0

    def drop_event(self, event_id: str) -> None:
        """Let go of an event closed outside the engine (accepted or resolved by another process)."""
        self._events.pop(event_id, None)

    # -- reading -----------------------------------------------------------------------------------------
    def state(self, canary: str, target: str) -> dict[str, Any]:
        """Return a JSON-ready view of one stream: baseline status, CUSUM levels, open events."""
        return self.stream(canary, target).snapshot()

    def baseline(self, canary: str, target: str) -> Baseline:
        """Return the current baseline of one canary x target (persist it with ``to_json``)."""
        return self.stream(canary, target).baseline

    def baselines(self) -> list[Baseline]:
        """Return every baseline."""
        return [s.baseline for s in self._streams.values()]

    def answers_to_resolve(self, canary: str, target: str, signals: Iterable[str]) -> dict[str, int | None]:
        """Return, per signal of `signals` with an open event of the pair, how many answered calls in a row it needs
        at most to resolve with its rate back at baseline: the reverse chart's threshold over its step. None when it
        cannot resolve by answers: a category of failed calls (``error_type``) sees only failures."""
        stream = self._streams.get((canary, target))
        out: dict[str, int | None] = {}
        for name in signals:
            op = stream.open.get(name) if stream is not None else None
            if op is not None:
                ok = op.chart is not None and op.chart.r > 0
                out[name] = -(-op.chart.h // op.chart.r) if ok and op.chart is not None else None
        return out

    def events(self, canary: str | None = None, target: str | None = None, state: str | None = None) -> list[DriftEvent]:
        """List the events the engine holds, optionally filtered, oldest first: the open ones (an event resolved or
        accepted is let go once its update is returned; the store keeps the history)."""
        out = [
            e
            for e in self._events.values()
            if (canary is None or e.canary == canary)
            and (target is None or e.target == target)
            and (state is None or e.state == state)
        ]
        return sorted(out, key=lambda e: e.opened_at)


def signal_type_safe(name: str) -> str | None:
    """Return the signal family, or None for pseudo-signals such as "completion"."""
    try:
        return signal_type(name)
    except KeyError:
        return None
