"""Zero tolerance: rate signals a canary declares must never go the bad way (``zero_tolerance`` in probe YAML).

A benign prompt the product depends on should never be refused; a JSON canary should never fail its schema.
For such a signal the operator knows what no detector can learn from a finite reference: the rate is exactly
zero. The first refusal, error, exact-match miss or failed check then proves a change, so it opens a behaviour
event at once (test ``zero_tolerance``), before the baseline is complete too. This is the operator's
declaration, not a statistical test: it is outside the false-alarm budget, and a canary that sometimes fails
by nature should not declare it. Further violations while the event is open update it; it resolves after a
run without violations long enough to show the signal back at zero (``_back_at_zero``).
"""

from __future__ import annotations

import math
from typing import Any

from monitor.drift._lean_scipy import betaln
from monitor.drift.events import BEHAVIOUR, EventUpdate, evidence
from monitor.drift.names import TRUE_IS_BAD
from monitor.drift.signals import SignalValue
from monitor.drift.state import CLEAN, Entry, Signals, _Open

ZERO_TOLERANCE = "zero_tolerance"


def violates(name: str, value: SignalValue) -> bool:
    """Tell whether a rate signal's value goes the bad way (a refusal, an error, a miss, a failed check)."""
    return bool(value) == (name in TRUE_IS_BAD)


def baseline_violations(baseline: Any, name: str) -> tuple[int, int]:
    """Return how many of the baseline's observations of a rate signal violate it, and how many it has."""
    k, n = baseline.rate(name)
    return (k if name in TRUE_IS_BAD else n - k), n


class ZeroTolerance:
    """Mixin of ``Stream``: first-violation events for the signals in ``zero``."""

    __slots__ = ()
    settings: Any
    baseline: Any
    open: dict[str, _Open]
    zero: frozenset[str]
    n_ok: int
    _event: Any  # Stream's: builds an event of this stream
    _resolve: Any  # Stream's: closes an open event

    def _zero_tolerance(self, obs_id: str, at: str, ok: bool, text: str, sig: dict[str, SignalValue]) -> list[EventUpdate]:
        """Open, update or resolve the zero-tolerance events this observation bears on."""
        names = set(self.zero) | {n for n, o in self.open.items() if o.event.test == ZERO_TOLERANCE}
        out: list[EventUpdate] = []
        for name in sorted(names):
            value = sig.get(name)
            if value is None:  # a failed call carries only the signals that apply to it
                continue
            bad = violates(name, value)
            op = self.open.get(name)
            if op is None:
                if bad and self.settings.enabled(name):
                    out.append(self._open_zero(name, Entry(obs_id, at, ok, Signals(sig), text)))
                continue
            if op.event.test != ZERO_TOLERANCE:
                continue  # a statistical event on the signal is already open: one event per signal
            d = op.event.detail
            d["observations"] = seen = d.get("observations", 1) + 1
            violations = d["violations"] = d.get("violations", 1) + bad
            op.event.current_value, op.event.current_n = violations / seen, seen
            op.clean = 0 if bad else op.clean + 1
            if not bad and self._back_at_zero(op.clean, violations, seen - op.clean):
                d.pop(CLEAN, None)
                out.append(self._resolve(name, at))
            else:  # the counts and the clean run written with the update, for a restart or a take-over to resume
                d[CLEAN] = op.clean
                out.append(EventUpdate("updated", op.event))
        return out

    def _back_at_zero(self, clean: int, violations: int, before: int) -> bool:
        """Tell whether a run of ``clean`` observations without a violation shows the signal back at zero.

        The run must be improbable (below ``resolve_alpha``) both at ``rate_min_shift`` (the smallest rate
        the engine is built to detect; 228 observations at the defaults) and at the rate the event saw up to
        its last violation (the posterior predictive E[(1 - p)^clean], p ~ Beta(violations + 1/2,
        before - violations + 1/2)), so a fault that keeps recurring does not open and resolve in turns.
        """
        s = self.settings
        log_alpha = math.log(s.resolve_alpha)
        if clean < s.window or clean * math.log1p(-s.rate_min_shift) > log_alpha:
            return False
        a, b = violations + 0.5, before - violations + 0.5
        return float(betaln(a, b + clean) - betaln(a, b)) <= log_alpha

    def _open_zero(self, name: str, entry: Entry) -> EventUpdate:
        bad_in_baseline, n = baseline_violations(self.baseline, name)
        ev = self._event(
            name, BEHAVIOUR, ZERO_TOLERANCE, entry, entry.at,
            baseline_value=bad_in_baseline / n if n else 0.0, current_value=1.0, effect_size=None,
            statistic=1.0, p_value=None, threshold=1.0, baseline_n=n, current_n=1,
            evidence=evidence(self.baseline.representative_text(), entry.text or "") if entry.ok else {},
            detail={"declared": "zero", "violations": 1, "observations": 1,
                    "bad_value": name in TRUE_IS_BAD, "baseline_violations": bad_in_baseline},
        )
        self.open[name] = _Open(ev, self.n_ok)
        return EventUpdate("opened", ev)
