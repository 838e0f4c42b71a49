"""Routing, grouping, cooldown and resolve rules (pure: time passed in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.alerts.config import AlertsConfig
from monitor.alerts.events import AlertEvent
from monitor.alerts.policy import Policy, plan, route

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def cfg(**extra: object) -> AlertsConfig:
    return AlertsConfig.model_validate({
        "cooldown": "30m", "external_url": "https://monitor.example.com",
        "sinks": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:1/h"},
                  {"name": "chat", "type": "slack", "url_env": "SLACK_URL"},
                  {"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:2"}],
        **extra})


def ev(kind: str = "drift.opened", **kw: object) -> AlertEvent:
    base: dict = {"canary": "kill-python", "target": "gpt-mini", "signal": "refusal_rate", "severity": "warning",
                  "event_id": "e1", "opened_at": T0, "tags": ("over-refusal",),
                  "evidence": {"baseline_value": 0.02, "current_value": 0.4, "p_value": 1e-5}}
    base.update(kw)
    return AlertEvent(kind=kind, **base)


def test_no_routes_sends_everything_everywhere() -> None:
    assert route(ev(), cfg()) == ["hook", "chat", "am"]


def test_routes_match_severity_kind_target_tags_and_add_up() -> None:
    c = cfg(routes=[
        {"match": {"severity": "critical"}, "sinks": ["am"]},
        {"match": {"kind": "drift.*", "tags": ["over-refusal"]}, "sinks": ["chat"]},
        {"match": {"target": "claude-*", "canary": ["x", "y"]}, "sinks": ["hook"]},
    ])
    assert route(ev(), c) == ["chat"]
    assert route(ev(severity="critical"), c) == ["chat", "am"]
    assert route(ev(kind="model.changed", tags=()), c) == []
    assert route(ev(target="claude-haiku", canary="y", tags=()), c) == ["hook"]


def test_a_severity_may_be_a_glob_like_every_match_key() -> None:
    # The README says each match key takes shell globs; severity refused them ("unknown severity '*'").
    c = cfg(routes=[{"match": {"severity": ["crit*"]}, "sinks": ["am"]}])
    assert route(ev(severity="critical"), c) == ["am"] and route(ev(), c) == []


def test_payload_carries_evidence_and_api_link() -> None:
    [n, *_] = plan(ev(), cfg(), T0, {}).notifications
    p = n.payload
    assert p["link"] == "https://monitor.example.com/api/drift/e1"
    assert p["evidence"]["p_value"] == 1e-5 and p["status"] == "firing"
    assert n.group_key == "kill-python/gpt-mini" and n.signal == "refusal_rate"
    assert "0.02 -> 0.4" in p["summary"]


def test_message_ids_are_stable_per_event_and_sink() -> None:
    a = plan(ev(), cfg(), T0, {}).notifications
    b = plan(ev(), cfg(), T0, {}).notifications
    assert [n.message_id for n in a] == [n.message_id for n in b]
    assert len({n.message_id for n in a}) == 3


def test_cooldown_suppresses_repeat_firing_for_push_sinks_only() -> None:
    pol = Policy(cfg())
    first = pol.notifications(ev(event_id="e1"), T0)
    assert {n.sink for n in first} == {"hook", "chat", "am"}
    again = pol.notifications(ev(event_id="e2"), T0 + timedelta(minutes=10))
    assert {n.sink for n in again} == {"am"}  # Alertmanager de-duplicates itself and needs every state change
    # the receivers were told "firing" and never "resolved": the resolve reaches them
    resolved = pol.notifications(ev("drift.resolved", event_id="e2"), T0 + timedelta(minutes=15))
    assert {n.sink for n in resolved} == {"hook", "chat", "am"}
    # a second resolve has nothing left to end there
    assert {n.sink for n in pol.notifications(ev("drift.resolved", event_id="e2"), T0 + timedelta(minutes=16))} \
        == {"am"}


@pytest.mark.parametrize("ending", ["drift.resolved", "drift.accepted"])
def test_a_firing_after_a_resolve_or_accept_is_always_sent(ending: str) -> None:
    pol = Policy(cfg())
    pol.notifications(ev(event_id="e1"), T0)
    assert {n.sink for n in pol.notifications(ev(ending, event_id="e1"), T0 + timedelta(minutes=5))} \
        == {"hook", "chat", "am"}
    # within the cooldown, but the receivers' last word is "resolved": they must hear it is open again
    reopened = pol.notifications(ev(event_id="e2"), T0 + timedelta(minutes=10))
    assert {n.sink for n in reopened} == {"hook", "chat", "am"}
    assert {n.sink for n in pol.notifications(ev(ending, event_id="e2"), T0 + timedelta(minutes=12))} \
        == {"hook", "chat", "am"}
    # the same after a restart, with the memory seeded from the outbox
    seeded = Policy(cfg())
    seeded.seed({("hook", "kill-python/gpt-mini", "refusal_rate"): (T0, False, True)})
    assert "hook" in {n.sink for n in seeded.notifications(ev(event_id="e3"), T0 + timedelta(minutes=6))}


def test_cooldown_is_per_group_and_signal() -> None:
    pol = Policy(cfg())
    pol.notifications(ev(), T0)
    assert len(pol.notifications(ev(signal="length", event_id="e9"), T0)) == 3
    assert len(pol.notifications(ev(target="claude", event_id="e8"), T0)) == 3


def test_resolve_follows_a_sent_firing_message() -> None:
    pol = Policy(cfg())
    pol.notifications(ev(), T0)
    out = pol.notifications(ev("drift.resolved", resolved_at=T0 + timedelta(minutes=3)), T0 + timedelta(minutes=3))
    assert {n.sink for n in out} == {"hook", "chat", "am"}
    assert out[0].payload["status"] == "resolved"


def test_seeded_memory_survives_a_restart() -> None:
    pol = Policy(cfg())
    pol.seed({("hook", "kill-python/gpt-mini", "refusal_rate"): (T0, True)})
    assert {n.sink for n in pol.notifications(ev(event_id="e5"), T0 + timedelta(minutes=1))} == {"chat", "am"}


def test_test_events_ignore_cooldown() -> None:
    pol = Policy(cfg())
    for _ in range(3):
        assert len(pol.notifications(ev("test", event_id=""), T0)) == 3


def test_notifications_whose_transaction_rolled_back_are_forgotten_by_the_cooldown() -> None:
    p = Policy(cfg())
    p.notifications(ev(signal="other", event_id="e0"), T0 - timedelta(minutes=5))  # an earlier message stays
    undo: dict = {}
    assert len(p.notifications(ev(), T0, undo)) == 3
    p.restore(undo)  # the drift event and these notifications were not stored: written again later
    assert [n.sink for n in p.notifications(ev(), T0 + timedelta(seconds=1))] == ["hook", "chat", "am"]
    assert [n.sink for n in p.notifications(ev(signal="other", event_id="e0"), T0)] == ["am"]


def test_merged_resolves_of_a_baseline_reset_say_an_operator_closed_them() -> None:
    # `baseline reset --note` ends every open event of a pair: one message. Each end says "closed by an operator:
    # NOTE"; the merged one said "2 signals resolved: NOTE", which reads as the provider back at baseline.
    from monitor.alerts.policy import merge_drift, payload

    c = cfg()
    ends = [payload(ev("drift.resolved", signal=s, event_id=f"e-{s}", resolved_at=T0, note="latency known",
                       summary=f"kill-python @ gpt-mini: {s} resolved, closed by an operator: latency known"), c, T0)
            for s in ("ttft_s", "latency_s")]
    assert merge_drift(ends)["summary"] == ("kill-python @ gpt-mini: 2 signals resolved, closed by an operator: "
                                            "latency known (ttft_s, latency_s)")
    back = payload(ev("drift.resolved", signal="similarity", event_id="e-sim", resolved_at=T0), c, T0)
    assert merge_drift([back, *ends])["summary"] == (
        "kill-python @ gpt-mini: 3 signals resolved, closed by an operator: latency known (ttft_s, latency_s); "
        "back at baseline (similarity)")
    assert merge_drift([back, back | {"signal": "x"}])["summary"] == \
        "kill-python @ gpt-mini: 2 signals resolved (similarity, x)"


def test_a_merged_end_says_which_checks_a_reload_removed_beside_the_signals_that_resolved() -> None:
    # Found by review: a check's end a reload wrote (the check removed, the canary kept) merged with another signal's
    # resolve within group_wait said "2 signals resolved": the receiver read the check as back at baseline, where its
    # own end says it is no longer monitored, the check removed. Each part says how its events ended.
    from monitor.alerts.policy import merge_drift, payload

    c = cfg()

    def retired(signal: str) -> dict:  # as the reload writes it (monitor.alerts.reconcile)
        return payload(ev("drift.resolved", signal=signal, event_id=f"e-{signal}", resolved_at=T0,
                          summary=f"kill-python@gpt-mini: {signal} no longer monitored (the check was removed from "
                                  "the configuration)",
                          evidence={"signal": signal, "reason": "no longer configured", "removed": "check"}), c, T0)

    back = payload(ev("drift.resolved", signal="similarity", event_id="e-sim", resolved_at=T0), c, T0)
    assert merge_drift([back, retired("check:cites")])["summary"] == (
        "kill-python @ gpt-mini: 1 signal resolved (similarity); check:cites no longer monitored (the check was "
        "removed from the configuration)")
    assert merge_drift([retired("check:cites"), retired("check:json")])["summary"] == (
        "kill-python @ gpt-mini: check:cites, check:json no longer monitored (the checks were removed from the "
        "configuration)")


def model(value: str, baseline: str, canary: str = "c1", signal: str = "system_fingerprint",
          event_id: str = "") -> AlertEvent:
    return ev("model.changed", canary=canary, signal=signal, event_id=event_id or f"{canary}-{value}", tags=(),
              evidence={"baseline_value": baseline, "current_value": value})


def test_a_model_change_back_within_the_cooldown_is_sent() -> None:
    # Found by an operator review: A -> B was sent, then B -> A within the cooldown was dropped, the receiver left
    # believing B was still served.
    pol = Policy(cfg())
    assert {n.sink for n in pol.notifications(model("fp_b", "fp_a"), T0)} == {"hook", "chat", "am"}
    back = pol.notifications(model("fp_a", "fp_b"), T0 + timedelta(minutes=10))
    assert {n.sink for n in back} == {"hook", "chat", "am"}
    assert back[0].payload["evidence"]["current_value"] == "fp_a"


def test_a_flapping_model_sends_one_message_per_new_value_per_cooldown() -> None:
    pol = Policy(cfg())
    sent = []
    for minute, (new, old) in enumerate([("fp_b", "fp_a"), ("fp_a", "fp_b")] * 4):
        out = pol.notifications(model(new, old), T0 + timedelta(minutes=5 * minute))
        sent += [(5 * minute, new) for n in out if n.sink == "hook"]
    # fp_b announced at 0 and again once its cooldown ran out (30), fp_a at 5 and at 35
    assert sent == [(0, "fp_b"), (5, "fp_a"), (30, "fp_b"), (35, "fp_a")]


def test_a_repeated_model_change_of_another_canary_within_the_cooldown_is_dropped() -> None:
    pol = Policy(cfg())
    pol.notifications(model("fp_b", "fp_a", canary="c1"), T0)
    # within group_wait it joins the message still collecting, past it the same change is a repeat
    assert {n.sink for n in pol.notifications(model("fp_b", "fp_a", canary="c2"), T0 + timedelta(seconds=10))} \
        == {"hook", "chat", "am"}
    assert {n.sink for n in pol.notifications(model("fp_b", "fp_a", canary="c3"), T0 + timedelta(minutes=5))} \
        == {"am"}
    # another signal's new value is news
    assert {n.sink for n in pol.notifications(model("gpt-b", "gpt-a", canary="c3", signal="response_model"),
                                              T0 + timedelta(minutes=6))} == {"hook", "chat", "am"}


def test_the_announced_model_values_survive_a_restart() -> None:
    pol = Policy(cfg())
    pol.seed({("hook", "*/gpt-mini", "model"): (T0, False, False)},
             announced={("hook", "*/gpt-mini", "model"): {("system_fingerprint", "fp_b"): T0}})
    assert {n.sink for n in pol.notifications(model("fp_b", "fp_a"), T0 + timedelta(minutes=5))} \
        == {"chat", "am"}
    assert {n.sink for n in pol.notifications(model("fp_a", "fp_b"), T0 + timedelta(minutes=6))} \
        == {"hook", "chat", "am"}


def test_what_the_cooldown_drops_is_reported_with_until_when() -> None:
    pol = Policy(cfg())
    pol.notifications(model("fp_b", "fp_a"), T0)
    dropped: list = []
    assert {n.sink for n in pol.notifications(model("fp_b", "fp_a", canary="c2"), T0 + timedelta(minutes=5),
                                              suppressed=dropped)} == {"am"}
    assert [(s.sink, s.event.canary, s.until) for s in dropped] == [("hook", "c2", T0 + timedelta(minutes=30)),
                                                                     ("chat", "c2", T0 + timedelta(minutes=30))]
    # a repeated drift.opened of the same canary x target x signal, its first one never resolved there
    pol.notifications(ev(), T0 + timedelta(minutes=1))
    dropped = []
    assert {n.sink for n in pol.notifications(ev(event_id="e2"), T0 + timedelta(minutes=11), suppressed=dropped)} \
        == {"am"}
    assert [(s.sink, s.event.event_id, s.until) for s in dropped] == [("hook", "e2", T0 + timedelta(minutes=31)),
                                                                      ("chat", "e2", T0 + timedelta(minutes=31))]
    # the end of a model change is not sent to them by design (a notice, not an alert): no suppression
    dropped = []
    end = ev("drift.accepted", signal="system_fingerprint", event_id="c1-fp_b", evidence={"test": "first_seen"})
    assert {n.sink for n in pol.notifications(end, T0 + timedelta(minutes=13), suppressed=dropped)} == {"am"}
    assert dropped == []
