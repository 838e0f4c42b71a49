"""When window-test events resolve: not while a change lasts (an ordinary window of it against the most deviant one
seen); restored after a restart (the windows are not stored), once the signal is back at baseline, also when it
went back while the daemon was down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from monitor.domain import CallResult, FinishReason, Observation, Usage
from monitor.drift import Baseline, DriftEngine, DriftEvent
from tests.support.streams import Sim, zipf
from tests.support.streams import feed as _feed


def restarted(eng: DriftEngine) -> DriftEngine:
    """A new engine as the daemon rebuilds it at start: the stored baseline and open events, no window."""
    again = DriftEngine()
    again.set_baseline(Baseline.from_json(eng.baseline("c", "t").to_json()))
    again.restore_events(DriftEvent.from_json(e.to_json()) for e in eng.events(state="open"))
    return again


def ends(updates: list, event_id: str) -> list[str]:
    return [u.action for u in updates if u.event.id == event_id and u.action != "updated"]


def test_a_restored_finish_reason_event_resolves_once_back() -> None:
    # Found reviewing the window-event resolution: a category event restored without its opening window compared
    # the window with nothing (no test) and stayed open for good.
    rng = np.random.default_rng(5)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    i = 0

    def run(eng: DriftEngine, n: int, cut: float) -> list:
        nonlocal i
        out = []
        for _ in range(n):
            i += 1
            reason = FinishReason.LENGTH if rng.random() < cut else FinishReason.STOP
            call = CallResult(text=f"answer {i % 7} words here", finish_reason=reason, response_model="m",
                              usage=Usage(output_tokens=4), latency_s=1.0)
            out += eng.observe(Observation("c", "t", "p", "m", start + timedelta(minutes=i), call, refusal="none",
                                           id=f"c-{i}"))
        return out

    eng = DriftEngine()
    run(eng, 200, 0.05)
    [ev] = [u.event for u in run(eng, 60, 0.6) if u.action == "opened" and u.event.signal == "finish_reason"]
    again = restarted(eng)
    assert ends(run(again, 300, 0.6), ev.id) == []  # still cut short: still open
    assert ends(run(again, 300, 0.05), ev.id) == ["resolved"]


def test_a_restored_completion_event_whose_change_went_back_meanwhile_resolves() -> None:
    # The whole-completion test, restored without its opening window, compared the window with the reference, from
    # which a return never differs; and a first window after the restart already back could not be its sample.
    eng, sim = DriftEngine(), Sim(5, refusal=0.0)
    _feed(eng, sim, 120)
    sim.probs = zipf(shift=7)
    [ev] = [u.event for u in _feed(eng, sim, 150) if u.action == "opened" and u.event.signal == "completion"]
    sim.probs = zipf(0)  # back while the daemon was down
    assert ends(_feed(restarted(eng), sim, 300), ev.id) == ["resolved"]


def test_a_restored_length_event_stays_open_while_the_change_lasts() -> None:
    eng, sim = DriftEngine(), Sim(3, refusal=0.0)
    _feed(eng, sim, 200)
    sim.mean_len *= 2
    opened = [u.event for u in _feed(eng, sim, 100) if u.action == "opened" and u.event.signal == "output_chars"]
    [ev] = opened
    again = restarted(eng)
    assert ends(_feed(again, sim, 400), ev.id) == []
    sim.mean_len /= 2
    assert ends(_feed(again, sim, 200), ev.id) == ["resolved"]


def test_a_lasting_length_change_is_one_event_not_a_resolve_and_reopen_loop() -> None:
    # Found reviewing the most-deviant-window sample: taken from every window while the event was open, it was an
    # outlier of the change (median 309 characters against the change's ~270), an ordinary window of the same
    # change (226) differed from it and was near enough the reference (208): resolved at 325, opened again at 356,
    # and so on (10 openings in 1,500 observations on another seed).
    eng, sim = DriftEngine(), Sim(7003)
    _feed(eng, sim, 300)
    sim.mean_len *= 1.3
    ups = [u.action for u in _feed(eng, sim, 700) if u.event.signal == "output_chars" and u.action != "updated"]
    assert ups == ["opened"]
