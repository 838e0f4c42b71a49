"""The drift state of one canary x target: baseline, bounded windows, CUSUMs and open events."""

from __future__ import annotations

import bisect
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

from monitor.drift import budget
from monitor.drift import cusum as cs
from monitor.drift import rankcusum as rk
from monitor.drift.baseline import Baseline
from monitor.drift.certification import Certification
from monitor.drift.events import BEHAVIOUR, MODEL, OPEN, RESOLVED, DriftEvent, EventUpdate, evidence
from monitor.drift.names import RATE, signal_type
from monitor.drift.outages import outage_failure
from monitor.drift.rates import RateCharts
from monitor.drift.settings import DriftSettings
from monitor.drift.signals import SignalValue, finite
from monitor.drift.state import Entry, Signals, _Open
from monitor.drift.twosample import MIN_SAMPLES, continuous_test
from monitor.drift.windows import COMPLETION, WindowTests
from monitor.drift.zero import ZeroTolerance

__all__ = ["COMPLETION", "Entry", "Stream", "_Open"]


# The current side of the evidence of an event that only failed calls show (a provider refusing with
# content-policy errors, an outage raising the error rate): there is no completion to show, only why.
NO_ANSWER = "(no completion: the provider refused the request with a content-policy error)"


def no_answer(error_types: list[str]) -> str:
    """What the current side of the evidence says when only failed calls show the change: a content-policy
    refusal, or the calls' failures by type, most frequent first (an outage is not a refusal)."""
    counts = Counter(error_types)
    if set(counts) <= {"content_filter"}:
        return NO_ANSWER
    kinds = ", ".join(f"{t} x{n}" for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"(no completion: the calls failed: {kinds})"


@dataclass(slots=True)
class Stream(RateCharts, WindowTests, ZeroTolerance):
    """Drift state of one canary x target; ``observe`` analyses one observation in bounded time."""

    canary: str
    target: str
    settings: DriftSettings
    baseline: Baseline
    entries: deque[Entry] = field(default_factory=deque)
    cusums: dict[tuple[str, bool], cs.BernoulliCusum] = field(default_factory=dict)
    params: dict[tuple[str, bool], cs.Chart] = field(default_factory=dict)
    # the second chart of each rate direction, tuned to a large shift (``rate_large_*``), and its CUSUM
    large: dict[tuple[str, bool], cs.Chart] = field(default_factory=dict)
    large_cusums: dict[tuple[str, bool], cs.BernoulliCusum] = field(default_factory=dict)
    open: dict[str, _Open] = field(default_factory=dict)
    ranks: dict[str, rk.RankCusum] = field(default_factory=dict)
    sentinels: dict[tuple[str, bool], float] = field(default_factory=dict)  # LLR level, point-estimate design
    _steps: dict[tuple[str, bool], tuple[float, float]] = field(default_factory=dict)  # sentinel increments
    # where each CUSUM's current excursion began (rate: (name, up); rank: (name, up)): the change-point
    # estimate, which may lie further back than the entries kept
    _starts: dict[tuple[str, bool], Entry] = field(default_factory=dict)
    _large_starts: dict[tuple[str, bool], Entry] = field(default_factory=dict)  # the same for the large-shift charts
    arl0: float = 0.0  # in-control ARL0 of each one-sided sequential detector (set by _calibrate)
    _sorted: dict[str, list[float]] = field(default_factory=dict)  # sorted reference values per signal
    _merged: dict[str, int] = field(default_factory=dict)  # how many reference values _sorted holds
    n_ok: int = 0
    n_all: int = 0
    zero: frozenset[str] = frozenset()  # signals declared zero-tolerance by the canary (monitor.drift.zero)
    _gone_run: int = 0  # outage failures in a row among the observations that last left the entries (_outage)
    # per signal, when its last event resolved: the observations up to then that are still in the entries showed
    # the change (or may have), and never join the reference as they age out (_push)
    _resolved_at: dict[str, str] = field(default_factory=dict)
    # whether an opening's exact permutation test is left to run later (`DriftEngine(defer_certification=True)`), and
    # the one left, until the engine applies it (`DriftEngine.certified`) or a new baseline makes it stale
    defer: bool = False
    certifying: Certification | None = None

    # -- entry point --------------------------------------------------------------------------------------
    def observe(self, obs_id: str, at: str, ok: bool, text: str, sig: dict[str, SignalValue]) -> list[EventUpdate]:
        """Analyse one observation and return the event changes it caused."""
        s = self.settings
        b = self.baseline
        out: list[EventUpdate] = self._zero_tolerance(obs_id, at, ok, text, sig) if self.zero or self.open else []
        if not b.ready:
            if ok:
                b.add_raw(obs_id, at, text, sig, s)
            else:
                b.add_error(sig, s)
            if b.full:
                b.finalize(s)
                self.params.clear()
                self.large.clear()
            return out
        self.n_all += 1
        self.n_ok += ok
        entry = Entry(obs_id, at, ok, Signals(sig), text if ok else None)
        self._push(entry)
        if ok:
            out += self._identity(entry)
        if not self.params or self.n_all % s.eval_every == 0:
            self._calibrate()
        out += self._rates(entry)
        if ok:
            out += self._ranks(entry)
        if ok and self.n_ok % s.eval_every == 0:
            out += self._window_round()
        return out

    # -- bookkeeping ---------------------------------------------------------------------------------------
    def _push(self, entry: Entry) -> None:
        s = self.settings
        self.entries.append(entry)
        w = s.window
        if len(self.entries) > w:
            old = self.entries[-w - 1]
            old.text = None
        if len(self.entries) > max(s.reference_lag, w):
            gone = self.entries.popleft()
            outage = self._outage(gone)
            for name in [n for n, at in self._resolved_at.items() if gone.at > at]:
                del self._resolved_at[name]
            if s.grow_reference and not outage and not any(o.event.kind == MODEL for o in self.open.values()):
                # An event's signal learns nothing while it is open, nor, once it resolved, from the observations
                # seen before that: they are the change's (a voice swap's lower similarity), and learnt after the
                # provider went back they moved the reference, and the return itself opened an event.
                skip = set(self.open) | set(self._resolved_at) | {COMPLETION}
                # A signal learns only while every CUSUM on it is low (below ``absorb_below`` of its
                # threshold): an excursion may be the start of a change, and post-change data absorbed into
                # the reference would mask it. The decision depends on recent data only, not on the leaving
                # observation, so a stationary reference is not biased.
                # A continuous reference smaller than ``reference_learn`` is gated at half the threshold only:
                # one too small to be right would otherwise keep its own CUSUMs busy and never learn.
                b = self.baseline

                def gate(n: int) -> float:
                    return s.absorb_below if n >= s.reference_learn else max(s.absorb_below, 0.5)

                # Rates are gated by sentinels: CUSUMs tuned at the point estimate (not the conservative
                # bound the alarm chart uses), which climb at once under a change the alarm chart is still
                # slowly accumulating evidence for.
                # One event's jump alone does not gate (a rare rate would otherwise stall its reference).
                skip |= {k[0] for k, v in self.sentinels.items()
                         if v > s.sentinel_gate + self._steps.get(k, (0.0, 0.0))[0]}
                skip |= {name for name, rc in self.ranks.items()
                         if rc.level() > gate(len(b.values.get(name, ()))) * self._rank_h(name)}
                self.baseline.absorb(gone.signals, s, skip)

    def _outage(self, gone: Entry) -> bool:
        """Tell whether an observation leaving the entries is part of an outage: a run of at least
        ``baseline_outage_run`` failed calls in a row (``outage_failure``), counting those that left just before it
        and those still at the head of the entries after it. Its failures are not the provider's error mix: learnt,
        the reference's error types held the outage's, and an ``error_type`` event could open after the recovery,
        the outage paged again (the forming baseline leaves them out alike, ``OutageRuns``). The later
        failures of a run are still in the entries when its first leaves (``reference_lag`` of them follow it), so
        a run is known before any of it is learnt; one that fills the entries to their end is taken as an outage (a
        ``baseline_outage_run`` above ``reference_lag`` is not waited for).
        A content-policy error (an answer) ends a run, a failure of llm-monitor's own neither extends nor ends one."""
        failure = False if gone.ok else outage_failure(gone.signals)
        if failure is None:
            return False
        if not failure:
            self._gone_run = 0
            return False
        self._gone_run += 1
        need = self.settings.baseline_outage_run
        run = self._gone_run
        for e in self.entries:
            if run >= need:
                break
            later = None if e.ok else outage_failure(e.signals)
            if e.ok or later is False:
                return False
            run += bool(later)
        if run < need:  # the entries end in the run: the rest of it, leaving later, is an outage too
            self._gone_run = need
        return True

    def _window(self, pred: Any = None, ok_only: bool = True) -> list[Entry]:
        out: list[Entry] = []
        for e in reversed(self.entries):
            if len(out) >= self.settings.window:
                break
            if (e.ok or not ok_only) and (pred is None or pred(e)):
                out.append(e)
        out.reverse()
        return out

    def _event(self, signal: str, kind: str, test: str, first: Entry | None, now: str, **kw: Any) -> DriftEvent:
        return DriftEvent(
            canary=self.canary,
            target=self.target,
            signal=signal,
            kind=kind,
            test=test,
            first_obs_id=first.obs_id if first else None,
            first_obs_at=first.at if first else None,
            opened_at=now,
            **kw,
        )

    def _moved(self, name: str, up: bool) -> Any:
        """Which observations show a value's change: those on its side of the reference's median. The evidence of
        a value's event shows one of them: the window's most typical completion is still the old behaviour while
        only part of the answers changed (a known answer wrong 4 times in 10: `[Yes]` against `[Yes]`)."""
        ref = self.baseline.values.get(name) or []
        if not ref:
            return None
        mid = float(np.median(ref))
        return lambda e: (v := finite(e.signals.get(name))) is not None and (v > mid if up else v < mid)

    def _evidence(self, pick: Any = None) -> dict[str, Any]:
        texts = [e.text for e in self._window() if e.text is not None and (pick is None or pick(e))]
        failed = [] if texts or pick is None else self._window(pick, ok_only=False)
        if failed:  # only failed calls show it: there is no completion to diff, only why they failed
            out = evidence(self.baseline.representative_text(),
                           no_answer([str(e.signals.get("error_type") or "unknown") for e in failed]))
            out["diff"] = ""  # a word diff against the note would pair its words with the baseline's
            return out
        if not texts:
            texts = [e.text for e in self._window() if e.text is not None]
        if not texts:
            return {}
        scores = process.cdist(texts, texts, scorer=fuzz.ratio, dtype=np.float32).mean(axis=1)
        return evidence(self.baseline.representative_text(), texts[int(np.argmax(scores))])

    # -- identity ------------------------------------------------------------------------------------------
    def _identity(self, entry: Entry) -> list[EventUpdate]:
        out: list[EventUpdate] = []
        for name in self.settings.identity_signals:
            if not self.settings.enabled(name):
                continue
            value = entry.signals.get(name)
            known = self.baseline.identity.get(name, [])
            op = self.open.get(name)
            if op is not None:
                seen = op.event.detail.setdefault("values", [])
                changed = False
                if value is not None and str(value) not in known:
                    op.event.current_n += 1  # observations showing a value the baseline never saw
                    changed = True
                    if str(value) not in seen:
                        seen.append(str(value))
                        op.event.current_value = str(value)
                if value is not None and str(value) not in known and op.event.first_obs_at \
                        and entry.at < op.event.first_obs_at:
                    # the samples of a run are analysed as they finish, not in the order they started: the change
                    # began with the earliest started observation that shows a new value
                    op.event.first_obs_id, op.event.first_obs_at = entry.obs_id, entry.at
                    changed = True
                if changed:
                    out.append(EventUpdate("updated", op.event))
                recent = self._window(lambda e, n=name: e.signals.get(n) is not None)
                if (
                    self.n_ok - op.since >= self.settings.window
                    and len(recent) >= self.settings.window
                    and all(str(e.signals[name]) in known for e in recent)
                ):
                    out.append(self._resolve(name, entry.at))
                continue
            if value is None or str(value) in known or not known:
                continue
            ev = self._event(
                name, MODEL, "first_seen", entry, entry.at,
                baseline_value=", ".join(known), current_value=str(value), effect_size=None, statistic=None,
                p_value=None, threshold=None, baseline_n=self.baseline.count, current_n=1,
                detail={"values": [str(value)]},
            )
            self.open[name] = _Open(ev, self.n_ok)
            out.append(EventUpdate("opened", ev))
        return out

    def _calibrate(self) -> None:
        dirs = self._rate_directions()
        self.arl0 = budget.rate_arl0(self.settings, len(dirs) + 2 * len(self._rank_signals()))
        self._calibrate_rates(dirs, self.arl0)

    # -- continuous values (sequential, on normal scores) -----------------------------------------------------
    def _rank_signals(self) -> list[str]:
        return [n for n in self.baseline.values if self.settings.enabled(n)]

    def _sorted_ref(self, name: str) -> list[float]:
        vals = self.baseline.values.get(name, [])
        ref = self._sorted.setdefault(name, [])
        done = self._merged.get(name, 0)
        for v in vals[done:]:
            bisect.insort(ref, v)
        self._merged[name] = len(vals)
        return ref

    def _rank_h(self, name: str) -> float:
        s = self.settings
        n = len(self.baseline.values.get(name, ()))
        return rk.threshold(s.rank_k, rk.ref_bucket(n), s.rate_credibility, self.arl0 or 1e6)

    def _ranks(self, entry: Entry) -> list[EventUpdate]:
        out: list[EventUpdate] = []
        for name in self._rank_signals():
            x = finite(entry.signals.get(name))
            if x is None:
                continue
            ref = self._sorted_ref(name)
            if len(ref) < MIN_SAMPLES:
                continue
            rc = self.ranks.setdefault(name, rk.RankCusum())
            if name in self.open:
                rc.reset()
                continue
            if rc.up == 0:
                self._starts[(name, True)] = entry
            if rc.down == 0:
                self._starts[(name, False)] = entry
            rc.update(rk.normal_score(ref, x), self.settings.rank_k)
            h = self._rank_h(name)
            if rc.level() >= h:
                out.append(self._open_rank(name, rc, h, entry))
                rc.reset()
        return out

    def _open_rank(self, name: str, rc: rk.RankCusum, h: float, entry: Entry) -> EventUpdate:
        up = rc.up >= rc.down
        run, total = (rc.run_up, rc.sum_up) if up else (rc.run_down, rc.sum_down)
        vals: list[float] = []
        for e in reversed(self.entries):
            if len(vals) >= run:
                break
            if e.ok and (v := finite(e.signals.get(name))) is not None:
                vals.append(v)
        ref = self.baseline.values[name]
        first = self._starts.get((name, up))
        win = [v for e in self._window() if (v := finite(e.signals.get(name))) is not None]
        ev = self._event(
            name, BEHAVIOUR, "rank_cusum", first, entry.at,
            baseline_value=float(np.mean(ref)), current_value=float(np.mean(vals)) if vals else None,
            effect_size=total / max(run, 1), statistic=rc.level(), p_value=None, threshold=h,
            baseline_n=len(ref), current_n=run, evidence=self._evidence(self._moved(name, up)),
            detail={"direction": "up" if up else "down", "k": self.settings.rank_k,
                    "baseline_median": float(np.median(ref)),
                    "current_median": float(np.median(vals)) if vals else None},
        )
        # the window's own p-value against the reference: a later window replaces it only if further from it (with
        # none, any later window did, one back at baseline too, and the event never resolved)
        at_open = continuous_test(ref, win)
        self.open[name] = _Open(ev, self.n_ok, sample=win, sample_p=at_open.p_value if at_open is not None else 1.0)
        return EventUpdate("opened", ev)

    def _certify_later(self, c: Certification) -> None:
        self.certifying = c

    # -- closing ------------------------------------------------------------------------------------------
    def _resolve(self, name: str, now: str) -> EventUpdate:
        op = self.open.pop(name)
        op.event.state = RESOLVED
        op.event.resolved_at = now
        self._resolved_at[name] = max(now, self.entries[-1].at) if self.entries else now
        for cusums in (self.cusums, self.large_cusums):
            for key in [k for k in cusums if k[0] == name]:
                cusums[key].reset()
        return EventUpdate("resolved", op.event)

    def open_events(self) -> list[DriftEvent]:
        """Return the open events of this stream."""
        return [o.event for o in self.open.values() if o.event.state == OPEN]

    def snapshot(self) -> dict[str, Any]:
        """Return a JSON-ready view of the stream state (for ``state``)."""
        return {
            "canary": self.canary,
            "target": self.target,
            "baseline": {"ready": self.baseline.ready, "count": self.baseline.count, "source": self.baseline.source,
                         "note": self.baseline.note, "size": self.baseline.size},
            "observations": self.n_all,
            "cusums": {f"{n}:{'up' if up else 'down'}": {"level": c.level * ch.unit if ch else None,
                                                          "threshold": ch.threshold if ch else None}
                       for (n, up), c in self.cusums.items() for ch in [self.params.get((n, up))]},
            "ranks": {n: {"up": r.up, "down": r.down, "threshold": self._rank_h(n)} for n, r in self.ranks.items()},
            "open": [e.signal for e in self.open_events()],
            "identity": self.baseline.identity,
            "rates": {n: {"k": k, "n": m} for n, (k, m) in self.baseline.rates.items() if signal_type(n) == RATE},
        }
