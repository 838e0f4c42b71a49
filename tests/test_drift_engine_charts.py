"""The drift engine's sequential charts on simulated streams (deterministic seeds): CUSUM thresholds and ARLs, the
rate charts' false-alarm share with an estimated reference, change points, the large-shift chart beside the moderate
one, the rank CUSUM on lengths, and events restored with their stored chart."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.drift import Baseline, DriftEngine, DriftEvent
from monitor.drift.cusum import arl_int, known_chart, llr_steps, threshold
from tests.support.streams import Sim
from tests.support.streams import feed as _feed


def test_cusum_threshold_is_the_smallest_meeting_its_arl() -> None:
    ch = known_chart(0.05, 0.17, 1000.0)
    assert ch.arl(0.05) >= 1000.0 > arl_int(0.05, ch.m, ch.r, ch.h - 1)
    up, down = llr_steps(0.05, 0.17)
    assert ch.m / ch.r == pytest.approx(up / abs(down), rel=0.015)
    assert threshold(0.05, 0.17, 1000.0) == pytest.approx(ch.h * ch.unit)


def test_banded_arl_agrees_with_a_dense_markov_solve() -> None:
    p, m, r, h = 0.07, 5, 2, 40
    q = np.zeros((h, h))
    for i in range(h):
        if i + m < h:
            q[i, i + m] += p
        q[i, max(i - r, 0)] += 1 - p
    dense = np.linalg.solve(np.eye(h) - q, np.ones(h))[0]
    assert arl_int(p, m, r, h) == pytest.approx(dense, rel=1e-9)


def test_rate_chart_keeps_its_false_alarm_share_with_an_estimated_reference() -> None:
    from scipy.stats import binom

    from monitor.drift import DriftSettings
    from monitor.drift.ratechart import rate_chart

    s = DriftSettings()
    arl0, n, p = 4e5, 100, 0.05
    fa = 0.0
    for k in range(n + 1):
        ch = rate_chart(k, n, s.rate_quantiles, s.rate_odds_ratio, s.rate_min_shift, arl0)
        fa += 0.0 if ch is None else binom.pmf(k, n, p) / ch.arl(p)  # exact, averaged over the estimate
    assert fa <= 1 / arl0


def test_length_shift_opens_a_rank_cusum_event() -> None:
    eng, sim = DriftEngine(), Sim(4)
    assert not [u for u in _feed(eng, sim, 300) if u.action == "opened"]
    sim.mean_len *= 1.6
    opened = [u.event for u in _feed(eng, sim, 150) if u.action == "opened"]
    ev = next(e for e in opened if e.signal in ("output_chars", "output_tokens"))
    assert ev.test in ("rank_cusum", "mann_whitney+ks") and ev.current_value > ev.baseline_value


def test_change_point_of_a_long_cusum_run_is_where_the_run_began() -> None:
    # A modest rise takes the chart longer to prove than the stream keeps observations (50): the change point
    # is still the first observation of the run, not the oldest one kept.
    eng, sim = DriftEngine(), Sim(1, refusal=0.0)
    _feed(eng, sim, 100)
    sim.refusal = 0.12
    seen = []
    for _ in range(1500):
        obs = sim.next()
        seen.append(obs)
        opened = [u.event for u in eng.observe(obs) if u.action == "opened" and u.event.signal == "refused"]
        if opened:
            break
    ev = opened[0]
    assert ev.current_n > 50
    run = [o for o in seen if o.ok][-ev.current_n:]
    assert (ev.first_obs_id, ev.first_obs_at) == (run[0].id, run[0].started_at.isoformat())


def test_reference_does_not_absorb_a_change_before_it_is_detected() -> None:
    eng, sim = DriftEngine(), Sim(5, refusal=0.05)
    _feed(eng, sim, 500)
    sim.refusal = 0.15
    for _ in range(400):
        if [u for u in eng.observe(sim.next()) if u.action == "opened" and u.event.signal == "refused"]:
            break
    k, n = eng.baseline("c", "t").rate("refused")
    assert k / n < 0.08  # the reference is still the pre-change rate


def test_restored_rate_event_resolves_with_its_stored_chart() -> None:
    eng, sim = DriftEngine(), Sim(6, refusal=0.05)
    _feed(eng, sim, 300)
    sim.refusal = 0.6
    ev = next(u.event for u in _feed(eng, sim, 100) if u.action == "opened" and u.event.signal == "refused")
    again = DriftEngine()
    again.set_baseline(Baseline.from_json(eng.baseline("c", "t").to_json()))
    again.restore_events([DriftEvent.from_json(ev.to_json())])
    sim.refusal = 0.05
    assert [u for u in _feed(again, sim, 600) if u.action == "resolved" and u.event.id == ev.id]


def test_a_rate_event_restored_halfway_back_resumes_its_return_where_it_was() -> None:
    """A restart (or a standby taking over) while a rate event is on its way back at baseline: the stored event
    carries its reverse chart, so the restored event resolves on the same observation as the uninterrupted one,
    with the same return in `detail.back`; stored without it, the return was counted afresh (its first passes
    counted as part of the change)."""
    eng, sim = DriftEngine(), Sim(6, refusal=0.05)
    _feed(eng, sim, 300)
    sim.refusal = 0.6
    ev = next(u.event for u in _feed(eng, sim, 100) if u.action == "opened" and u.event.signal == "refused")
    sim.refusal = 0.0
    for _ in range(2):  # part of the way back: the reverse chart climbs by its step on each pass
        [u] = [u for u in eng.observe(sim.next()) if u.event.id == ev.id]
        assert u.action == "updated"
    stored = ev.to_json()
    assert stored["detail"]["resolving"]["run"] == 2 and stored["detail"]["resolving"]["level"] > 0

    def resolved(engine: DriftEngine, obs: object) -> DriftEvent | None:
        return next((u.event for u in engine.observe(obs) if u.action == "resolved"  # type: ignore[arg-type]
                     and u.event.id == ev.id), None)

    def restored(detail_kept: bool) -> DriftEngine:
        again = DriftEngine()
        again.set_baseline(Baseline.from_json(eng.baseline("c", "t").to_json()))
        data = {**stored, "detail": dict(stored["detail"])}
        if not detail_kept:  # as stored before the reverse chart was kept
            del data["detail"]["resolving"]
        again.restore_events([DriftEvent.from_json(data)])
        return again

    kept, afresh = restored(True), restored(False)
    ends: dict[str, tuple[int, DriftEvent]] = {}
    for i in range(200):
        obs = sim.next()
        for name, engine in (("running", eng), ("kept", kept), ("afresh", afresh)):
            if name not in ends and (done := resolved(engine, obs)) is not None:
                ends[name] = i, done
        if len(ends) == 3:
            break
    assert set(ends) == {"running", "kept", "afresh"}
    (at, done), (kept_at, kept_done) = ends["running"], ends["kept"]
    assert kept_at == at and kept_done.detail["back"] == done.detail["back"]
    assert kept_done.current_n == done.current_n and kept_done.current_value == done.current_value
    assert "resolving" not in kept_done.detail
    assert ends["afresh"][0] == at + 2  # the two passes before the restart counted again
    assert ends["afresh"][1].current_n == done.current_n + 2  # and counted in the change, not its return


def test_a_fresh_stream_alarms_on_a_complete_breakage_within_a_few_observations() -> None:
    """A canary that starts failing every time: the large-shift chart beside the moderate one alarms within 7
    observations of a fresh 30-observation baseline (the moderate chart alone took 12); the event it opened
    resolves by the moderate chart (stored with it), in memory and restored from storage, once the canary passes
    again."""
    from monitor.drift.budget import rate_split

    for seed in range(4):
        eng, sim = DriftEngine(), Sim(10 + seed, refusal=0.0)
        while not eng.stream("c", "t").baseline.ready:
            _feed(eng, sim, 1)
        sim.refusal, first = 1.0, f"c-{sim.t + 1}"
        for _ in range(1, 8):
            opened = [u.event for u in eng.observe(sim.next()) if u.action == "opened" and u.event.signal == "refused"]
            if opened:
                break
        assert opened, seed
        ev = opened[0]
        assert ev.detail["p1"] >= 0.5 and ev.current_value == 1.0 and ev.detail["resolve"]["p1"] < 0.5
        assert ev.first_obs_id == first  # the change point: the first failing observation
        st = eng.stream("c", "t")
        main_arl0, large_arl0 = rate_split(eng.settings, st.arl0)
        assert large_arl0 is not None and 1 / main_arl0 + 1 / large_arl0 == pytest.approx(1 / st.arl0)
        again = DriftEngine()
        again.set_baseline(Baseline.from_json(eng.baseline("c", "t").to_json()))
        again.restore_events([DriftEvent.from_json(ev.to_json())])
        sim.refusal = 0.0
        later = _feed(eng, sim, 100)
        assert [u for u in later if u.action == "resolved" and u.event.id == ev.id]
        assert not [u for u in later if u.action == "opened" and u.event.signal == "refused"]
        assert [u for u in _feed(again, sim, 100) if u.action == "resolved" and u.event.id == ev.id]


def test_an_event_the_large_shift_chart_opened_stays_open_while_the_rate_stays_up() -> None:
    """Run backwards, the large-shift chart (designed at 50% here) resolved a rate held at 30% on this seed after a
    run of passes, and a chart reopened it: the moderate chart resolves the event, so a rate that stays up is one
    event."""
    eng, sim = DriftEngine(), Sim(0, refusal=0.0)
    _feed(eng, sim, 300)
    sim.refusal = 0.3
    ups = [u for u in _feed(eng, sim, 400) if u.event.signal == "refused"]
    assert [u.action for u in ups if u.action != "updated"] == ["opened"] and ups[0].event.detail["p1"] >= 0.5


def test_an_open_rate_event_shows_the_rate_since_the_change_not_the_one_it_opened_with() -> None:
    """A rate event opened on a short run of refusals (its current value that run's rate, often 100%) showed that
    value for as long as it stayed open: `drift` read "0 -> 1, n=5" for a rate that settled at 30%."""
    eng, sim = DriftEngine(), Sim(0, refusal=0.0)
    _feed(eng, sim, 300)
    sim.refusal = 0.3
    ups = [u for u in _feed(eng, sim, 400) if u.event.signal == "refused"]
    opened, last = ups[0], ups[-1]
    assert opened.action == "opened" and last.action == "updated" and last.event.id == opened.event.id
    ev = last.event
    assert ev.current_n > 300 and abs(ev.current_value - 0.3) < 0.08, (ev.current_value, ev.current_n)
    assert ev.detail["hits"] == round(ev.current_value * ev.current_n)
    assert ev.effect_size is not None and ev.effect_size > 0


def test_event_opened_by_a_chart_resolves_through_windows_without_crashing() -> None:
    """A continuous signal whose event the rank CUSUM opened has no opening sample until a window forms."""
    import numpy as np

    from monitor.domain import CallResult, FinishReason, Observation, Usage
    from monitor.drift import DriftEngine, DriftSettings

    rng = np.random.default_rng(4)
    engine = DriftEngine(DriftSettings(baseline_size=30, window=30, eval_every=5))
    t0 = __import__("datetime").datetime(2026, 1, 1, tzinfo=__import__("datetime").UTC)
    updates = []
    for i in range(400):
        words = int(rng.normal(40 if i < 150 or i >= 260 else 80, 4))
        text = " ".join(["word"] * max(words, 1))
        obs = Observation(canary="c", target="t", provider="openai", request_model="m",
                          started_at=t0 + __import__("datetime").timedelta(seconds=i),
                          call=CallResult(text=text, finish_reason=FinishReason.STOP, usage=Usage(5, 0, words),
                                          latency_s=1.0, ttft_s=0.1), refusal="none")
        updates += engine.observe(obs)
    opened = [u for u in updates if u.action == "opened" and u.event.signal == "output_chars"]
    assert opened


def test_a_chart_event_keeps_its_own_figures_and_a_later_window_test_is_labelled_with_its_own_name() -> None:
    """A rank-CUSUM event took each later window test's p-value as its own: `drift` read `rank_cusum p=4.1e-08`,
    a p-value no rank CUSUM gave. The chart's level/threshold stay the event's; the window's p-value is kept in the
    detail under its test's name."""
    from monitor.decision import decision

    eng, sim = DriftEngine(), Sim(4)
    _feed(eng, sim, 300)
    sim.mean_len *= 1.6
    ups = [u for u in _feed(eng, sim, 150) if u.event.signal == "output_chars"]
    assert ups[0].action == "opened" and ups[0].event.test == "rank_cusum"
    assert any(u.action == "updated" for u in ups)
    ev = ups[-1].event
    assert ev.p_value is None and ev.statistic is not None and ev.threshold is not None
    assert ev.detail["window"]["test"] == "mann_whitney+ks" and ev.detail["window"]["p_value"] < 0.01
    assert decision(ev.to_json()) == (f"rank_cusum {ev.statistic:.3g}/{ev.threshold:.3g}; "
                                      f"mann_whitney+ks p={ev.detail['window']['p_value']:.2g}")


def test_a_rank_cusum_event_s_median_follows_the_window_its_current_value_describes() -> None:
    """A rank-CUSUM event's `detail.current_median` stayed the opening run's while its current value followed each
    later window's mean (a median of 300 chars beside a mean of 420): both now describe the latest window."""
    from monitor.drift.signals import finite

    eng, sim = DriftEngine(), Sim(4)
    _feed(eng, sim, 300)
    sim.mean_len *= 1.6
    stream, checked, opening = eng.stream("c", "t"), 0, None
    for _ in range(150):
        for u in eng.observe(sim.next()):
            if u.event.signal != "output_chars":
                continue
            if u.action == "opened":
                assert u.event.test == "rank_cusum"
                opening = u.event.detail["current_median"]
            elif u.action == "updated":
                vals = [v for e in stream._window() if (v := finite(e.signals.get("output_chars"))) is not None]
                assert u.event.current_value == pytest.approx(float(np.mean(vals)))
                assert u.event.detail["current_median"] == pytest.approx(float(np.median(vals)))
                checked, last = checked + 1, u.event.detail["current_median"]
    assert opening is not None and checked
    assert last != opening  # the opening run's median was the one shown before


def test_a_resolved_rate_event_shows_the_rate_while_the_change_lasted_and_what_showed_it_back() -> None:
    """A refusal rate at 60% for 150 observations: resolved, the event read `0 -> 0.17` (the rate since the change
    began, the 370 passes that showed it back counted in). It shows the rate up to the return, 0.6, and keeps the
    return's own observations in `detail.back`; the two add up to the since-start figures."""
    eng, sim = DriftEngine(), Sim(0, refusal=0.0)
    _feed(eng, sim, 300)
    sim.refusal = 0.6
    _feed(eng, sim, 150)
    ev = eng.stream("c", "t").open["refused"].event
    total_n, total_hits = ev.current_n, ev.detail["hits"]
    sim.refusal = 0.0
    later = _feed(eng, sim, 1500)
    [done] = [u.event for u in later if u.action == "resolved" and u.event.signal == "refused"]
    back = done.detail["back"]
    assert abs(done.current_value - 0.6) < 0.1, (done.current_value, done.current_n, back)
    assert done.detail["hits"] == round(done.current_value * done.current_n)
    assert back["rate"] == back["hits"] / back["n"] < 0.05
    assert done.current_n + back["n"] >= total_n and done.detail["hits"] + back["hits"] >= total_hits
    assert done.effect_size is not None and done.effect_size > 1.0
