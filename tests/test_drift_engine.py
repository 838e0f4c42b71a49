"""Unit tests of the streaming drift engine on simulated streams (deterministic seeds): events opened, accepted,
resolved and let go of, the baseline that failures and content-policy errors teach, rebuilds and round trips.
Its charts are tested in `test_drift_engine_charts.py`, its sample tests (MMD, categories, embeddings) and dumps in
`test_drift_engine_samples.py`."""

from __future__ import annotations

import json

from monitor.drift import Baseline, DriftEngine, DriftEvent, compute_signals
from tests.support.streams import Sim
from tests.support.streams import feed as _feed


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


def test_a_value_event_s_evidence_shows_a_completion_that_changed_not_the_window_s_typical_one() -> None:
    # A known answer that turns wrong 4 times in 10: most answers are still the old one, so the window's most
    # typical completion is `[Yes]`, and the length and similarity events showed `[Yes]` against `[Yes]`.
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from monitor.domain import CallResult, FinishReason, Observation, Usage

    rng = np.random.default_rng(3)
    eng, t = DriftEngine(), [0]

    def feed(n: int, wrong: float) -> list:
        out = []
        for _ in range(n):
            t[0] += 1
            text = "[No]" if rng.random() < wrong else "[Yes]"
            call = CallResult(text=text, finish_reason=FinishReason.STOP, response_model="m", system_fingerprint="fp",
                              usage=Usage(output_tokens=2), latency_s=float(rng.lognormal(0, 0.3)),
                              ttft_s=float(rng.lognormal(-1, 0.3)))
            at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=t[0])
            out += eng.observe(Observation("c", "t", "sim", "m", at, call, refusal="none", id=f"o-{t[0]}"))
        return out

    assert not [u for u in feed(200, 0.0) if u.action == "opened"]
    opened = [u.event for u in feed(200, 0.4) if u.action == "opened"]
    values = [e for e in opened if e.signal in ("output_chars", "similarity")]
    assert {e.signal for e in values} == {"output_chars", "similarity"}, [e.signal for e in opened]
    for e in values:
        assert e.evidence["current_completion"] == "[No]", (e.signal, e.test, e.evidence)
        assert e.evidence["diff"] == "[-[Yes]-] {+[No]+}"


def test_a_change_s_observations_never_join_the_reference_after_its_event_resolved() -> None:
    # Latency triples, its event opens, the provider goes back and the event resolves. The observations of the
    # change still among the latest 50 then aged out into the reference (the signal had no open event any more): a
    # voice swap's low similarity joined it so, and the return to the old voice opened a second event (seen live).
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from monitor.domain import CallResult, FinishReason, Observation, Usage

    rng = np.random.default_rng(0)
    eng, t, log = DriftEngine(), [0], []

    def feed(n: int, low: float) -> None:
        for _ in range(n):
            t[0] += 1
            call = CallResult(text="Send SIGTERM, then SIGKILL.", finish_reason=FinishReason.STOP, response_model="m",
                              system_fingerprint="fp", usage=Usage(output_tokens=5),
                              latency_s=float(rng.uniform(low, low + 1)))
            at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=t[0])
            log.extend((u.action, u.event.signal) for u in eng.observe(
                Observation("c", "t", "sim", "m", at, call, refusal="none", id=f"o-{t[0]}")))

    feed(50, 0.5)  # the baseline, and some history
    feed(150, 3.0)  # latency in [3, 4): a change
    feed(300, 0.5)  # back
    assert [x for x in log if x[1] == "latency_s" and x[0] != "updated"] == [("opened", "latency_s"), ("resolved", "latency_s")]
    reference = eng.baseline("c", "t").values["latency_s"]
    assert len(reference) > 200 and max(reference) < 3, sorted(reference)[-25:]
