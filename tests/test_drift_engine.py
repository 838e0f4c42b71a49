"""Unit tests of the streaming drift engine on simulated streams (deterministic seeds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from monitor.drift import Baseline, DriftEngine, DriftEvent, DumpError, compute_signals, load_dump
from monitor.drift.cusum import arl_int, known_chart, llr_steps, threshold
from tests.support.jsonserver import json_server
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


def test_refusal_rise_opens_one_event_with_change_point_and_evidence() -> None:
    eng = DriftEngine()
    sim = Sim(1, refusal=0.05)
    assert not [u for u in _feed(eng, sim, 300) if u.action == "opened"]
    sim.refusal = 0.5
    opened = [u.event for u in _feed(eng, sim, 150) if u.action == "opened" and u.event.signal == "refused"]
    assert len(opened) == 1
    ev = opened[0]
    assert ev.kind == "behaviour" and ev.test == "bernoulli_cusum" and ev.current_value > ev.baseline_value
    assert int(ev.first_obs_id.split("-")[1]) >= 280  # change point estimated near observation 300
    assert "I'm sorry" in ev.evidence["current_completion"]
    assert DriftEvent.from_json(json.loads(json.dumps(ev.to_json()))) == ev


def test_model_change_is_its_own_kind_and_accept_makes_it_the_baseline() -> None:
    eng = DriftEngine()
    sim = Sim(2)
    _feed(eng, sim, 60)
    sim.model = "m-2"
    ups = _feed(eng, sim, 1)
    assert [(u.action, u.event.kind, u.event.signal) for u in ups] == [("opened", "model", "response_model")]
    acc = eng.accept("c", "t", note="planned upgrade")
    assert [u.event.state for u in acc] == ["accepted"]
    assert not [u for u in _feed(eng, sim, 80) if u.event.signal == "response_model"]
    assert eng.baseline("c", "t").source == "accepted" and "m-2" in eng.baseline("c", "t").identity["response_model"]


def test_an_open_model_event_counts_the_observations_served_by_the_new_model() -> None:
    eng = DriftEngine()
    sim = Sim(2)
    _feed(eng, sim, 60)
    sim.model = "m-2"
    [opened] = [u.event for u in _feed(eng, sim, 1) if u.action == "opened"]
    _feed(eng, sim, 9)
    sim.model = "m-1"  # the baseline's model again: not counted
    _feed(eng, sim, 3)
    assert (opened.current_value, opened.current_n) == ("m-2", 10)


def test_failed_calls_feed_only_error_signals() -> None:
    from monitor.domain import CallResult, ErrorType, Observation

    obs = Observation("c", "t", "p", "m", Sim(0).next().started_at, CallResult(error_type=ErrorType.RATE_LIMITED))
    assert compute_signals(obs) == {"error": True, "error_type": "rate_limited"}


def test_a_target_down_before_its_first_answer_does_not_teach_the_baseline_an_error_rate() -> None:
    """Found by QA: a target that failed every call from the start (a wrong key or URL at deploy, fixed an hour
    later) built its baseline with those failures: an error rate of 95% (236 of 248), so a later rise in errors
    never opened an event (and `baseline show` called the 12 answers a reference of 248)."""
    from monitor.domain import CallResult, ErrorType, Observation

    eng = DriftEngine()
    sim = Sim(5, refusal=0.0)
    for i in range(240):
        eng.observe(Observation("c", "t", "p", "m", sim.next().started_at, id=f"c-down{i}",
                                call=CallResult(error_type=ErrorType.CONNECT)))
    assert not [u for u in _feed(eng, sim, 200) if u.action == "opened"]
    error_n, n = eng.baseline("c", "t").rates["error"]
    assert error_n / n < 0.1
    errors = []
    for i in range(150):  # a third of the calls fail from now on
        if i % 3 == 0:
            errors += eng.observe(Observation("c", "t", "p", "m", sim.next().started_at, id=f"c-x{i}",
                                              call=CallResult(error_type=ErrorType.SERVER_ERROR)))
        else:
            errors += eng.observe(sim.next())
    assert "error" in {u.event.signal for u in errors if u.action == "opened"}


def test_a_provider_that_starts_blocking_a_prompt_with_content_policy_errors_opens_a_refusal_event() -> None:
    """A content-policy 400 is the provider refusing: it counts in the refusal rate (and the refusal check), not
    only in the error rate."""
    from monitor.domain import CallResult, CheckResult, ErrorType, Observation

    def blocked(i: int) -> Observation:
        obs = Observation("c", "t", "p", "m", Sim(0).next().started_at, refusal="full", id=f"c-x{i}",
                          call=CallResult(error_type=ErrorType.CONTENT_FILTER, http_status=400))
        obs.checks = [CheckResult("refusal", "refusal", False), CheckResult("short", "length", None)]
        return obs

    assert compute_signals(blocked(0)) == {"error": True, "error_type": "content_filter", "refused": True,
                                           "check:refusal": False}
    eng = DriftEngine()
    sim = Sim(4, refusal=0.0)
    assert not [u for u in _feed(eng, sim, 200) if u.action == "opened"]
    opened = {}
    for i in range(120):  # every other call is blocked from now on
        obs = blocked(i) if i % 2 else sim.next()
        opened |= {u.event.signal: u.event for u in eng.observe(obs) if u.action == "opened"}
    assert {"refused", "error"} <= set(opened)
    assert "content-policy error" in opened["refused"].evidence["current_completion"]  # not an ordinary answer
    eng.accept("c", "t", note="the provider's new policy")  # the blocked calls are part of the new behaviour
    refused, seen = eng.baseline("c", "t").rates["refused"]
    assert 0.3 < refused / seen < 0.7, (refused, seen)
    later = [u for i in range(200) for u in eng.observe(blocked(1000 + i) if i % 2 else sim.next())]
    assert not [u for u in later if u.action == "opened" and u.event.signal in ("refused", "error")]


def test_rebuild_gives_same_events_and_baseline_round_trips() -> None:
    def run() -> tuple[DriftEngine, list[str]]:
        eng, sim = DriftEngine(), Sim(3, refusal=0.05)
        _feed(eng, sim, 200)
        sim.refusal = 0.6
        return eng, [u.event.id for u in _feed(eng, sim, 100)]

    (eng, a), (_, b) = run(), run()
    assert a == b and a
    base = eng.baseline("c", "t")
    again = Baseline.from_json(json.loads(json.dumps(base.to_json())))
    assert again.to_json() == base.to_json() and again.similarity_texts() == base.similarity_texts()
    assert eng.state("c", "t")["open"]
    eng.reset("c", "t")
    assert not eng.state("c", "t")["baseline"]["ready"] and not eng.events(state="open")


def test_load_dump_names_file_line_and_field(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_text('{"canary": "c", "target": "t", "text": "hi"}\n{"canary": "c", "target": "t", "text": 3}\n')
    with pytest.raises(DumpError, match=r"a\.jsonl:2: field 'text': expected a string"):
        load_dump(p)
    p.write_text('{"canary": "c", "target": "t", "text": "x", "checks": {"ok": "yes"}}\n')
    with pytest.raises(DumpError, match=r"a\.jsonl:1: field 'checks.ok'"):
        load_dump(p)
    p.write_text("{not json\n")
    with pytest.raises(DumpError, match=r"a\.jsonl:1: invalid JSON"):
        load_dump(p)
    row = b'{"canary": "c", "target": "t", "text": "x"}\n'
    p.write_bytes(b"\xef\xbb\xbf" + row + row.replace(b'"x"', b'"caf\xe9"'))  # a BOM, then Latin-1 on line 2
    with pytest.raises(DumpError, match=r"a\.jsonl:2: not UTF-8 text \(byte 0xe9 at column 44\)"):
        load_dump(p)
    p.write_bytes(b"\xef\xbb\xbf" + row)  # an editor's byte-order mark is not an error
    assert load_dump(p)[0]["text"] == "x"
    for field, value in (("output_tokens", -3), ("latency_s", -0.5), ("ttft_s", 1e999)):
        p.write_text(f'{{"canary": "c", "target": "t", "text": "x", "{field}": {value}}}\n'.replace("inf", "1e999"))
        with pytest.raises(DumpError, match=rf"a\.jsonl:1: field '{field}': expected a finite number of at least 0"):
            load_dump(p)


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
    assert [u.action for u in ups] == ["opened"] and ups[0].event.detail["p1"] >= 0.5


def test_mmd_decision_near_its_level_is_an_exact_permutation_test() -> None:
    from monitor.drift.mmd import features, mmd_test

    a = [features(f"the answer is {i % 3}") for i in range(20)]
    b = [features(f"a different reply number {i % 4}") for i in range(20)]
    r = mmd_test(a, b, permutations=100, alpha=1e-3)
    assert r.p_value == r.p_permutation and r.p_value <= 1e-3  # confirmed by 2,000 relabellings
    same = mmd_test(a[:10], a[10:], permutations=100, alpha=1e-3)
    assert same.p_value > 0.05


def test_an_open_completion_event_is_not_certified_again_every_round(monkeypatch) -> None:
    """The exact permutation test (thousands of relabellings, seconds on the analysis thread) decides openings;
    rounds while the whole-completion event is open show the screening p-value instead."""
    from monitor.drift import mmd

    relabellings: list[int] = []
    null = mmd._null

    def counted(k, w, count, rng):  # noqa: ANN001, ANN202
        relabellings.append(count)
        return null(k, w, count, rng)

    monkeypatch.setattr(mmd, "_null", counted)
    eng = DriftEngine()
    sim = Sim(5, refusal=0.0)
    _feed(eng, sim, 120)
    sim.probs = Sim(5, shift=7).probs  # another model's vocabulary: the completions change
    updates = _feed(eng, sim, 400)
    opened = [u for u in updates if u.action == "opened" and u.event.signal == "completion"]
    assert len(opened) == 1
    at = updates.index(opened[0])
    rounds_after = [u for u in updates[at + 1:] if u.event.signal == "completion" and u.action == "updated"]
    assert rounds_after and rounds_after[-1].event.state == "open"
    certified = [n for n in relabellings if n > eng.settings.mmd_permutations]
    assert len(certified) == 1  # the opening only, not each of the later rounds


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


def test_an_embeddings_outage_when_the_baseline_completes_costs_only_the_semantic_signal_meanwhile() -> None:
    """The baseline is embedded once the endpoint answers again; the outage's NaN vectors never become it."""
    import threading

    from monitor.embeddings import Embedder
    from monitor.sim.embeddings import embed as sim_embed

    up = threading.Event()

    def answer(body: dict, headers: dict) -> tuple[int, dict]:
        if not up.is_set():
            return 503, {"error": {"message": "down", "type": "server_error"}}
        data = [{"object": "embedding", "index": i, "embedding": sim_embed(t)} for i, t in enumerate(body["input"])]
        return 200, {"object": "list", "data": data, "model": body["model"],
                     "usage": {"prompt_tokens": 1, "total_tokens": 1}}

    with json_server(answer) as url:
        embedder = Embedder(f"{url}/v1", None, "e", timeout=5, pause_s=0)
        try:
            eng = DriftEngine(embed=embedder)
            sim = Sim(1, refusal=0.05)
            _feed(eng, sim, 40)  # the baseline (30) completes while the endpoint is down
            baseline = eng.baseline(*next(iter(eng._streams)))
            assert baseline.ready and baseline.embeddings is None
            assert "semantic_similarity" not in eng.compute_signals(sim.next())
            up.set()
            _feed(eng, sim, 1)  # the next observation embeds the baseline
            assert baseline.embeddings is not None and len(baseline.embeddings[0]) == 64
            signals = eng.compute_signals(sim.next())
            assert -1.0 <= signals["semantic_similarity"] <= 1.0  # type: ignore[operator]
            assert "refused" in signals
        finally:
            embedder.close()


def test_an_embeddings_endpoint_that_hangs_is_not_called_again_for_a_while() -> None:
    """The analysis thread would otherwise spend a whole timeout on every observation while the endpoint hangs."""
    import threading

    from monitor.embeddings import Embedder

    seen: list[str | None] = []
    release = threading.Event()

    def hang(body: dict, headers: dict) -> tuple[int, dict]:
        seen.append(headers.get("x-team"))
        release.wait(10)  # never answers in time
        return 500, {}

    now = [0.0]
    with json_server(hang) as url:
        embedder = Embedder(f"{url}/v1", None, "e", timeout=0.3, headers={"x-team": "sre"}, pause_s=60,
                            clock=lambda: now[0])
        try:
            assert np.isnan(embedder(["a", "b"])).all() and seen == ["sre"]  # the target's headers are sent
            now[0] = 59.0
            assert np.isnan(embedder(["c"])).all() and len(seen) == 1  # paused: no call, no wait
            now[0] = 61.0
            embedder(["d"])
            assert len(seen) == 2  # tried again after the pause
        finally:
            release.set()
            embedder.close()


def test_a_model_change_starts_at_the_earliest_started_observation_showing_it() -> None:
    """A run's samples are analysed as they finish: one that started earlier may come second."""
    eng = DriftEngine()
    sim = Sim(8)
    _feed(eng, sim, 60)
    sim.model = "m-2"
    early, late = sim.next(), sim.next()  # `early` started first and finished last
    [opened] = [u.event for u in eng.observe(late) if u.action == "opened"]
    assert opened.first_obs_id == late.id
    updates = eng.observe(early)
    assert [(u.action, u.event.first_obs_id) for u in updates if u.event.signal == "response_model"] == \
        [("updated", early.id)]
    assert opened.first_obs_at == early.started_at.isoformat()


def test_a_category_event_shows_the_share_that_moved() -> None:
    """"stop -> stop" said nothing of a stop share falling from 97% to 60%."""
    from monitor.drift.twosample import category_test

    res = category_test({"stop": 97, "length": 3}, {"stop": 60, "length": 40})
    assert res is not None and res.p_value < 1e-6
    assert (res.baseline_value, res.current_value) == ("stop 97%", "stop 60%")
    res = category_test({"stop": 40, "tool_calls": 10}, {"stop": 40, "tool_calls": 10, "content_filter": 10})
    assert res is not None and (res.baseline_value, res.current_value) == ("content_filter 0%", "content_filter 17%")


def test_a_category_events_updates_name_one_category_on_both_sides() -> None:
    # Found by QA: `drift` showed "refusal 0%" -> "stop 17%": an update replaced the current share with another
    # category's (the one that moved most by then) and kept the baseline share of the category it opened with.
    from datetime import UTC, datetime, timedelta

    from monitor.domain import CallResult, FinishReason, Observation, Usage

    rng = np.random.default_rng(5)
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def obs(i: int, shares: dict[FinishReason, float]) -> Observation:
        reason = FinishReason(rng.choice([r.value for r in shares], p=list(shares.values())))
        call = CallResult(text=f"answer {i}", finish_reason=reason, response_model="m", usage=Usage(output_tokens=2),
                          latency_s=1.0)
        return Observation("c", "t", "p", "m", start + timedelta(minutes=i), call, refusal="none", id=f"c-{i}")

    eng = DriftEngine()
    phases = [(60, {FinishReason.STOP: 0.5, FinishReason.LENGTH: 0.5}),  # the baseline
              (60, {FinishReason.STOP: 0.5, FinishReason.LENGTH: 0.1, FinishReason.CONTENT_FILTER: 0.4}),
              (60, {FinishReason.STOP: 0.1, FinishReason.LENGTH: 0.5, FinishReason.CONTENT_FILTER: 0.4})]
    seen, i = [], 0  # each update's values as it was told (the event object is updated in place)
    for n, shares in phases:
        for _ in range(n):
            i += 1
            seen += [(u.action, str(u.event.baseline_value), str(u.event.current_value))
                     for u in eng.observe(obs(i, shares)) if u.event.signal == "finish_reason"]
    assert seen and seen[0][0] == "opened"
    named = [(base.split()[0], current.split()[0]) for _, base, current in seen]
    assert len({current for _, current in named}) > 1, named  # the category that moved most changed
    assert all(base == current for base, current in named), named


def test_the_engine_lets_go_of_events_once_they_are_resolved_or_accepted() -> None:
    # Found by the soak test: the engine kept every event it had ever opened, resolved and accepted ones too (their
    # evidence with them), though the daemon only ever asks it for the open ones and the store keeps the history: a
    # daemon running for months grew with every event.
    eng, sim = DriftEngine(), Sim(6, refusal=0.05)
    _feed(eng, sim, 300)
    sim.refusal = 0.6
    ev = next(u.event for u in _feed(eng, sim, 100) if u.action == "opened" and u.event.signal == "refused")
    assert ev in eng.events()
    sim.refusal = 0.05
    assert [u for u in _feed(eng, sim, 600) if u.action == "resolved" and u.event.id == ev.id]
    assert ev not in eng.events() and all(e.state == "open" for e in eng.events())
    sim.model = "m-2"
    [model] = [u.event for u in _feed(eng, sim, 1) if u.event.kind == "model"]
    assert model in eng.events()
    accepted = {u.event.id for u in eng.accept("c", "t", note="planned upgrade")}
    assert model.id in accepted and eng.events() == []
