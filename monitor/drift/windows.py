"""Window tests of a stream: the latest observations against the reference, every few observations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.decision import WINDOW
from monitor.drift import budget
from monitor.drift.certification import Certification
from monitor.drift.changepoint import shift_start, witness
from monitor.drift.events import BEHAVIOUR, MODEL, DriftEvent, EventUpdate
from monitor.drift.mmd import Exact, MmdOptions, MmdResult, TextFeature, certify, features, gram, mmd_screen
from monitor.drift.names import CATEGORY, CONTINUOUS, signal_type
from monitor.drift.signals import finite, normalise
from monitor.drift.state import Entry, _Open
from monitor.drift.twosample import TestResult, category_test, continuous_test, moved_category

COMPLETION = budget.COMPLETION  # the pseudo-signal of the whole-completion MMD test
BACK_P = 0.1  # a window test's p-value above which an open event's signal is back at the reference


@dataclass(slots=True)
class Uncertified:
    """A whole-completion round whose screening asks for the exact test, left to run later (``Certification``)."""

    screened: TestResult  # the screening's figures: an event built from them takes the exact p-value when decided
    test: Exact


class WindowTests:
    """Mixin of ``Stream``: per-signal two-sample tests of the window and the whole-completion MMD.

    Each test of a round runs at its Bonferroni share of the window budget (``monitor.drift.budget``); an
    event it opens resolves when the window differs from the opening sample and no longer from the reference.
    """

    __slots__ = ()
    canary: str
    target: str
    settings: Any
    baseline: Any
    open: Any
    n_ok: int
    _ref_feats: Any
    entries: Any  # Stream's: the sliding window of recent observations
    _window: Any  # Stream's: the window's values of one signal
    _event: Any  # Stream's: builds an event of this stream
    _evidence: Any  # Stream's: representative completions and their diff
    _moved: Any  # Stream's: which observations show a value's change
    _resolve: Any  # Stream's: closes an open event
    defer: bool  # Stream's: an opening's exact test is left to run later (``Certification``), not run inline
    certifying: Certification | None  # Stream's: the one left at its last whole-completion round, not applied yet
    _certify_later: Any  # Stream's: leaves one (a mixin with no slots of its own cannot assign it)

    # -- window tests --------------------------------------------------------------------------------------
    def _window_round(self) -> list[EventUpdate]:
        tests: dict[str, TestResult | Uncertified] = {}
        for name in self._window_signals():
            res = self._window_test(name)
            if res is not None:
                tests[name] = res
        fresh = {n: r for n, r in tests.items() if n not in self.open}
        out: list[EventUpdate] = []
        now = self.entries[-1].at
        for name, res in fresh.items():
            if isinstance(res, Uncertified):  # the exact test decides later: the event it would open, as of now
                self._certify_later(Certification(self.canary, self.target, res.test,
                                                  self._opening(name, res.screened, now)))
            elif res.p_value <= self._alpha(name):
                out.append(self._open_window(name, res, now))
        for name, res in tests.items():
            op = self.open.get(name)
            if op is None or op.reverse is not None or op.event.kind == MODEL or isinstance(res, Uncertified):
                continue  # (a test left uncertified is an opening's: never an open event's)
            if name in fresh:
                continue
            out += self._maybe_resolve_window(name, op, res, now)
        return out

    def _alpha(self, name: str) -> float:
        """Level of one window test in one round (Bonferroni: expected false events stay in budget)."""
        s = self.settings
        if name == COMPLETION:
            return budget.mmd_alpha(s)
        return budget.window_alpha(s, len(self._window_signals(with_mmd=False)))

    def _window_signals(self, with_mmd: bool = True) -> list[str]:
        names = [n for n in self.baseline.values if self.settings.enabled(n)]
        names += [n for n in self.baseline.categories if self.settings.enabled(n)]
        if with_mmd and self.settings.enabled(COMPLETION) and self.n_ok % self.settings.mmd_every == 0:
            names.append(COMPLETION)
        return names

    def _window_test(self, name: str) -> Any:
        if name == COMPLETION:
            # The exact permutation test that certifies a p-value near the test's level takes up to 2/level
            # relabellings (seconds when a change is there: it stops early when it cannot reject; the daemon runs
            # it on a thread of its own, ``Certification``): it decides whether an event opens. While one is
            # open the round only shows the latest p-value and asks whether it is back above 0.1, which the
            # screening relabellings and their tail estimate answer (the exact test never runs above 20x the level).
            if name in self.open:
                return self._mmd(self._texts())
            if self.certifying is not None:
                # The exact test of an earlier round still runs (on the daemon's certifying thread): it decides
                # whether this change opens an event. Another would pay its seconds again for the same change in a
                # window a few observations on, and could open nothing the first does not (one open event per
                # signal); a round after it is applied tests afresh (opened: whether it is back; not: again).
                return None
            return self._mmd_opening(budget.mmd_alpha(self.settings))
        kind = signal_type(name)
        if kind == CONTINUOUS:
            vals = [v for e in self._window() if (v := finite(e.signals.get(name))) is not None]
            return continuous_test(self.baseline.values[name], vals)
        if kind == CATEGORY:
            err = name == "error_type"
            win = self._window(lambda e: e.signals.get(name) is not None, ok_only=not err)
            counts: dict[str, int] = {}
            for e in win:
                counts[str(e.signals[name])] = counts.get(str(e.signals[name]), 0) + 1
            return category_test(self.baseline.categories[name], counts)
        return None

    def _texts(self) -> list[TextFeature]:
        # Features are built when the MMD runs (a window round on a multiple of mmd_every successful
        # observations: every 30 at the defaults) and then dropped:
        # kept per stream they cost ~80 KB, 80 MB over 1,000 streams, to save a millisecond every few hundred.
        n = self.settings.mmd_ngram
        return [features(normalise(e.text), n) for e in self._window() if e.text is not None]

    def _ref_texts(self) -> list[TextFeature]:
        """The features of the baseline's completions (built when asked, as the window's are)."""
        return [features(t, self.settings.mmd_ngram) for t in self.baseline.normalised_texts()]

    def _mmd(
        self, cur: list[TextFeature], ref: list[TextFeature] | None = None, alpha: float | None = None
    ) -> TestResult | None:
        """The whole-completion test (``mmd_test``), decided now (its exact permutation test run here if it asks)."""
        r = self._mmd_screen(cur, ref, alpha)
        if isinstance(r, Exact):
            r = certify(r)
        return None if r is None else _mmd_result(r, self.settings.mmd_kernel)

    def _mmd_opening(self, alpha: float) -> TestResult | Uncertified | None:
        """The whole-completion test of a round that may open an event: where its exact permutation test decides, an
        ``Uncertified`` when the stream defers it (run later with the same generator: the same decision)."""
        if not self.defer:
            return self._mmd(self._texts(), alpha=alpha)
        r = self._mmd_screen(self._texts(), None, alpha)
        if isinstance(r, Exact):
            r.rebuild = self._pooled_matrix()
            return Uncertified(_mmd_result(r.screened, self.settings.mmd_kernel), r)
        return None if r is None else _mmd_result(r, self.settings.mmd_kernel)

    def _pooled_matrix(self) -> Callable[[], np.ndarray]:
        """Build the kernel matrix of this round's pooled sample again (`_ref_texts` then `_texts`, as the screening
        pooled them): from the texts the baseline and the window hold, so a certification waiting its turn holds a
        list of references, not its matrix (~135 KB) nor its features (built, as here, only when the test runs)."""
        ref, cur = list(self.baseline.texts), [e.text for e in self._window() if e.text is not None]
        n, kernel = self.settings.mmd_ngram, self.settings.mmd_kernel
        return lambda: gram([*(features(normalise(t), n) for t in ref), *(features(normalise(t), n) for t in cur)],
                            kernel)

    def _mmd_screen(self, cur: list[TextFeature], ref: list[TextFeature] | None,
                    alpha: float | None) -> MmdResult | Exact | None:
        s = self.settings
        return mmd_screen(self._ref_texts() if ref is None else ref, cur,
                          MmdOptions(s.mmd_kernel, s.mmd_permutations, s.seed + self.n_ok, alpha))

    def _open_window(self, name: str, res: TestResult, now: str) -> EventUpdate:
        op = self._opening(name, res, now)
        self.open[name] = op
        return EventUpdate("opened", op.event)

    def _opening(self, name: str, res: TestResult, now: str) -> _Open:
        """The event a window test opens now (with what resolving it needs), from the window as it is."""
        win = self._window()
        # a value's change is shown by a completion that moved its way (Cliff's delta: the window's side)
        pick = (self._moved(name, res.effect > 0)
                if name != COMPLETION and signal_type(name) == CONTINUOUS and res.effect else None)
        ev = self._event(
            name, BEHAVIOUR, res.test, self._change_start(name, res, win), now,
            baseline_value=res.baseline_value, current_value=res.current_value, effect_size=res.effect,
            statistic=res.statistic, p_value=res.p_value, threshold=None,
            baseline_n=self.baseline.count if name == COMPLETION else self._ref_n(name), current_n=len(win),
            evidence=self._evidence(pick), detail=dict(res.detail),
        )
        sample: Any
        if name == COMPLETION:
            sample = self._texts()
        elif signal_type(name) == CONTINUOUS:
            sample = [v for e in win if (v := finite(e.signals.get(name))) is not None]
        else:
            sample = res.detail.get("current")
        return _Open(ev, self.n_ok, sample=sample, sample_p=res.p_value)

    def _change_start(self, name: str, res: TestResult, win: list[Entry]) -> Entry | None:
        """The first observation of the change a window test found: the split of the observations held (the window,
        and for a value or a category the older ones still kept, up to ``reference_lag``) that best separates the
        reference and what came before from what came after (``changepoint``). The window's first observation, which
        an event took before, lay up to a window's length before or after the change: `baseline accept`, which keeps
        only what follows it, took in the old behaviour. The window's first observation still when nothing splits."""
        held: list[Entry]
        if name == COMPLETION:  # texts are kept for the window only; scored by the MMD's witness (low: changed)
            held = [e for e in win if e.text is not None]
            ref, cur = self._ref_texts(), self._texts()  # `win` is the window `_texts` reads
            scores = witness(gram(ref + cur, self.settings.mmd_kernel), len(ref)).tolist() if ref and cur else []
            at = shift_start(scores[:len(ref)], scores[len(ref):], up=False)
        elif signal_type(name) == CONTINUOUS:
            pairs = [(e, v) for e in self.entries if e.ok and (v := finite(e.signals.get(name))) is not None]
            held = [e for e, _ in pairs]
            at = shift_start(self.baseline.values[name], [v for _, v in pairs],
                             up=res.effect > 0 if res.effect else None)
        else:  # a category: the share of the one that moved most
            cur_counts, ref_counts = res.detail.get("current") or {}, self.baseline.categories.get(name) or {}
            if not cur_counts or not ref_counts:
                return win[0] if win else None
            moved = moved_category(ref_counts, cur_counts)
            k0, n0 = ref_counts.get(moved, 0), sum(ref_counts.values())
            err = name == "error_type"
            held = [e for e in self.entries if (e.ok or err) and e.signals.get(name) is not None]
            at = shift_start([1.0] * k0 + [0.0] * (n0 - k0), [float(str(e.signals[name]) == moved) for e in held],
                             up=cur_counts.get(moved, 0) / sum(cur_counts.values()) > k0 / n0)
        if at is None:
            return win[0] if win else None
        return held[at]

    def _ref_n(self, name: str) -> int:
        if name in self.baseline.values:
            return len(self.baseline.values[name])
        return sum(self.baseline.categories.get(name, {}).values())

    def _current_n(self, name: str, res: TestResult) -> int:
        """How many observations the window test's current side held (what its current value summarises)."""
        if name == COMPLETION:
            return sum(1 for e in self._window() if e.text is not None)
        if signal_type(name) == CONTINUOUS:
            return sum(1 for e in self._window() if finite(e.signals.get(name)) is not None)
        return sum((res.detail.get("current") or {}).values())

    def _update_current(self, name: str, op: _Open, res: TestResult) -> list[EventUpdate]:
        """An open event shows the latest window: its current value, p-value and the count behind them (an event
        a sequential chart opened kept the chart's run length beside the window's value)."""
        _update(op.event, res)
        op.event.current_n = self._current_n(name, res)
        return [EventUpdate("updated", op.event)]

    def _maybe_resolve_window(self, name: str, op: _Open, res: TestResult, now: str) -> list[EventUpdate]:
        if name == COMPLETION:
            current: Any = self._texts()
        elif signal_type(name) == CONTINUOUS:
            current = [v for e in self._window() if (v := finite(e.signals.get(name))) is not None]
        else:
            current = res.detail.get("current") or {}
        if (op.sample is not None and name != COMPLETION and self.n_ok - op.since <= self.settings.window
                and res.p_value < op.sample_p and _differs(name, op.sample, current)):
            # the change shows more clearly now than in the sample held: resolution is judged against this window
            # (not the whole-completion test: its rounds while open screen with an analytic p-value, which the
            # certified opening's does not compare with, and a back test against a later window certifies again).
            # Only while the window still overlaps the opening one, and only a window that differs from the sample
            # held: the most deviant of every window while a change lasts is an outlier of it, from which an
            # ordinary window of the same change differs, and the event resolved and opened again, over and over
            # (a length 1.3x for good: 16 openings in 6 streams of 1,500 observations, 6 before).
            op.sample, op.sample_p = current, res.p_value
        if self.n_ok - op.since < self.settings.window:
            return self._update_current(name, op, res)
        if op.sample is None:
            # Restored after a restart (the windows are not stored): the first full window still showing the change
            # is its sample. Without one a category event compared with nothing and the whole-completion test with
            # the reference, from which a return never differs: neither resolved, ever. A change that went back
            # while the daemon was down shows in no window: two windows in a row back at the reference end it.
            if res.p_value <= BACK_P:
                op.sample, op.sample_p = current, res.p_value
            elif op.back_at is None:
                op.back_at = self.n_ok
            elif self.n_ok - op.back_at >= self.settings.window:
                return [self._resolve(name, now)]
            return self._update_current(name, op, res)
        if name == COMPLETION:
            back = self._mmd(current, op.sample, alpha=self.settings.resolve_alpha)
        elif signal_type(name) == CONTINUOUS:
            back = continuous_test(op.sample, current)
        else:
            back = category_test(op.sample, current)
        if back is not None and back.p_value < self.settings.resolve_alpha and res.p_value > BACK_P:
            return [self._resolve(name, now)]
        return self._update_current(name, op, res)


def _mmd_result(r: MmdResult, kernel: str) -> TestResult:
    return TestResult(r.p_value, r.mmd2, r.mmd2, None, None, f"mmd_{kernel}", {"p_permutation": r.p_permutation})


def _update(event: DriftEvent, res: TestResult) -> None:
    """Give an open event the latest window test's values and p-value. A category test's two values name the
    category that moved most, which may change while the event is open: both sides then follow it, so an event
    never reads "refusal 0%" -> "stop 17%".
    The p-value is the event's own only when a window test opened it: a chart's event (``threshold`` set: its
    level against it decided) keeps its test's figures, and the window's p-value goes to ``detail["window"]``
    under that test's name, so it is never read as the chart's (``monitor.decision``).
    A value's event (a rank CUSUM's or a window test's) keeps ``detail["current_median"]`` beside its current value:
    both follow the latest window, so the median is never the opening run's next to a later window's mean (a window
    of one value throughout has no median in its test's detail: its current value, then the median, stands in)."""
    if isinstance(res.baseline_value, str):  # "stop 97%": a category test's
        event.baseline_value = res.baseline_value
    event.current_value = res.current_value
    if "current_median" in event.detail and isinstance(res.current_value, float):
        event.detail["current_median"] = res.detail.get("current_median", res.current_value)
    if event.threshold is None:
        event.p_value = res.p_value
    else:
        event.detail[WINDOW] = {"test": res.test, "p_value": res.p_value}


def _differs(name: str, sample: Any, current: Any) -> bool:
    """Whether a window differs from an open event's sample (p at most BACK_P): one that does not is the same
    behaviour, and made the sample only as the more extreme of two draws of it."""
    t = continuous_test(sample, current) if signal_type(name) == CONTINUOUS else category_test(sample, current)
    return t is not None and t.p_value <= BACK_P
