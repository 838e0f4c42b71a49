"""Contract tests for the outbox repository, run against SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import Session

from monitor.alerts.events import DEAD, DELIVERED, FAILED, PENDING, Notification
from monitor.alerts.outbox import Outbox, enqueue
from monitor.store import Store

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def note(sink: str = "hook", kind: str = "drift.opened", group: str = "c/t", signal: str = "refusal",
         at: datetime = T0, **payload: object) -> Notification:
    return Notification(id=uuid.uuid4().hex, message_id=f"msg_{uuid.uuid4().hex}", sink=sink, kind=kind,
                        group_key=group, signal=signal, payload={"summary": "s", **payload}, created_at=at,
                        next_attempt_at=at)


def test_enqueue_joins_the_callers_transaction(store: Store) -> None:
    ob = Outbox(store.engine)
    with Session(store.engine) as s:
        enqueue(s, [note()])
        s.rollback()
    assert ob.pending_count() == 0
    with Session(store.engine) as s:
        ids = enqueue(s, [note(), note(sink="slack")])
        s.commit()
    assert ob.pending_count() == 2
    assert {n.id for n in ob.list_pending()} == set(ids)


def test_round_trip_keeps_payload_and_times(store: Store) -> None:
    ob = Outbox(store.engine)
    n = note(evidence={"p_value": 0.001, "diff": "- a\n+ b"})
    ob.add([n])
    got = ob.get(n.id)
    assert got is not None
    assert got.payload == n.payload and got.message_id == n.message_id
    assert got.created_at == T0 and got.status == PENDING and got.attempts == 0


def test_due_claims_with_a_lease(store: Store) -> None:
    ob = Outbox(store.engine)
    ob.add([note(group=f"c/t{i}") for i in range(3)])
    assert ob.claim(T0 - timedelta(seconds=1))[0] == []
    first = ob.claim(T0, limit=2, lease=60)[0]
    assert len(first) == 2
    rest = ob.claim(T0, lease=60)[0]
    assert len(rest) == 1 and rest[0].id not in {n.id for n in first}
    assert ob.claim(T0 + timedelta(seconds=30))[0] == []
    again = ob.claim(T0 + timedelta(seconds=61))[0]  # the lease ran out (a crashed sender): due again
    assert len(again) == 3


def test_marks_and_counts(store: Store) -> None:
    ob = Outbox(store.engine)
    a, b, c = note(group="g/a"), note(group="g/b"), note(group="g/c")
    ob.add([a, b, c])
    ob.mark_delivered(a.id, T0)
    ob.mark_retry(b.id, T0 + timedelta(minutes=5), "HTTP 503")
    ob.mark_dead(c.id, "HTTP 410")
    ga, gb, gc = ob.get(a.id), ob.get(b.id), ob.get(c.id)
    assert ga and ga.status == DELIVERED and ga.delivered_at == T0 and ga.attempts == 1
    assert gb and gb.status == FAILED and gb.last_error == "HTTP 503" and gb.attempts == 1
    assert gb.next_attempt_at == T0 + timedelta(minutes=5)
    assert gc and gc.status == DEAD
    assert ob.pending_count() == 1
    assert [n.id for n in ob.list_pending()] == [b.id]
    assert ob.claim(T0 + timedelta(minutes=4))[0] == []
    assert [n.id for n in ob.claim(T0 + timedelta(minutes=5))[0]] == [b.id]


def test_a_resolve_never_overtakes_its_firing_message(store: Store) -> None:
    ob = Outbox(store.engine)
    opened = note(kind="drift.opened", at=T0)
    resolved = note(kind="drift.resolved", at=T0 + timedelta(seconds=1))
    other = note(group="c/other", at=T0 + timedelta(seconds=1))
    ob.add([opened, resolved, other])
    now = T0 + timedelta(seconds=2)
    assert {n.id for n in ob.claim(now)[0]} == {opened.id, other.id}
    ob.mark_retry(opened.id, now + timedelta(seconds=10), "HTTP 503")
    assert ob.claim(now + timedelta(seconds=5))[0] == []  # the resolve waits behind the backing-off firing message
    assert [n.id for n in ob.claim(now + timedelta(seconds=10))[0]] == [opened.id]
    ob.mark_delivered(opened.id, now)
    assert [n.id for n in ob.claim(now + timedelta(seconds=10))[0]] == [resolved.id]


def test_concurrent_claims_never_hand_out_a_row_twice(store: Store) -> None:
    ob = Outbox(store.engine)
    ob.add([note(group=f"c/t{i}") for i in range(40)])
    barrier = threading.Barrier(4)
    got: list[list[str]] = []

    def claim() -> None:
        barrier.wait()
        got.append([n.id for n in ob.claim(T0, limit=15)[0]])

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for batch in got for i in batch]
    assert len(ids) == len(set(ids))
    assert len(ids) + len(ob.claim(T0, limit=100)[0]) == 40


def test_firing_state_per_sink(store: Store) -> None:
    ob = Outbox(store.engine)
    a_open = note(sink="am", signal="refusal", at=T0)
    a_done = note(sink="am", kind="drift.resolved", signal="refusal", at=T0 + timedelta(minutes=1))
    b_open = note(sink="am", signal="length", at=T0)
    c_open = note(sink="am", signal="tone", at=T0)  # not delivered yet: the sender will send it anyway
    ob.add([a_open, a_done, b_open, c_open])
    for n in (a_open, a_done, b_open):
        ob.mark_delivered(n.id, T0)
    assert [n.id for n in ob.firing("am")] == [b_open.id]
    assert ob.firing("other") == []
    last = ob.last_firing(T0 - timedelta(hours=1))
    assert last[("am", "c/t", "refusal")] == (T0, False, True)
    assert last[("am", "c/t", "length")] == (T0, True, False)


def test_the_model_values_announced_in_the_cooldown_are_read_back(store: Store) -> None:
    ob = Outbox(store.engine)

    def change(value: str, at: datetime, sink: str = "hook", signal: str = "system_fingerprint") -> Notification:
        n = note(sink=sink, kind="model.changed", group="*/t", signal="model", at=at, evidence={"current_value": value})
        n.payload["signal"] = signal  # the change's own; the row's is the group of a target's changes
        return n

    rows = [change("fp_old", T0 - timedelta(hours=2)), change("fp_b", T0), change("fp_a", T0 + timedelta(minutes=1)),
            change("fp_b", T0 + timedelta(minutes=2)), change("gpt-b", T0, signal="response_model"),
            change("fp_b", T0, sink="chat"), note(at=T0)]
    ob.add(rows)
    assert ob.model_announced(T0 - timedelta(hours=1)) == {
        ("hook", "*/t", "model"): {("system_fingerprint", "fp_b"): T0 + timedelta(minutes=2),
                                   ("system_fingerprint", "fp_a"): T0 + timedelta(minutes=1),
                                   ("response_model", "gpt-b"): T0},
        ("chat", "*/t", "model"): {("system_fingerprint", "fp_b"): T0}}


def test_prune_keeps_the_latest_state_of_each_alert(store: Store) -> None:
    ob = Outbox(store.engine)
    old_open = note(sink="am", signal="refusal", at=T0)
    old_info = note(sink="am", kind="model.changed", signal="model", at=T0)
    long_open = note(sink="am", signal="length", at=T0)
    newer = note(sink="am", kind="drift.resolved", signal="refusal", at=T0 + timedelta(days=2))
    waiting = note(sink="am", kind="test", signal="x", at=T0)
    ob.add([old_open, old_info, long_open, newer, waiting])
    for n in (old_open, old_info, long_open, newer):
        ob.mark_delivered(n.id, T0)
    assert ob.prune(T0 + timedelta(days=1)) == 2
    left = {n.id for n in ob.query(limit=100)}
    assert left == {long_open.id, newer.id, waiting.id}


def test_a_backing_off_oldest_row_is_found_behind_a_full_batch_of_younger_ones(store: Store) -> None:
    # Found by QA: the oldest row of a group backing off, and `limit` younger rows of the same group due before
    # its retry, filled every batch with rows that may not go yet, so the sink never sent anything again.
    ob = Outbox(store.engine)
    oldest = note(kind="model.changed", signal="model", at=T0)
    younger = [note(kind="model.changed", signal="model", at=T0 + timedelta(seconds=i)) for i in (1, 2, 3)]
    ob.add([oldest, *younger])
    assert [n.id for n in ob.claim(T0, limit=3)[0]] == [oldest.id]
    ob.mark_retry(oldest.id, T0 + timedelta(seconds=60), "HTTP 503")
    assert ob.claim(T0 + timedelta(seconds=30), limit=3)[0] == []  # the younger rows still wait behind it
    assert [n.id for n in ob.claim(T0 + timedelta(seconds=60), limit=3)[0]] == [oldest.id]


def test_a_canary_down_and_a_drift_on_its_error_rate_are_two_alerts(store: Store) -> None:
    # Found by QA: canary.down / canary.recovered carried signal "error", as does the drift engine's error-rate
    # event of the same canary x target. The webhook's cooldown took the canary.down for a repeat of the
    # drift.opened sent a moment before (the receiver later got a canary.recovered it was never told was down),
    # and for Alertmanager the recovery became the latest state of the drift alert, which stopped being re-sent.
    from monitor.alerts.config import AlertsConfig
    from monitor.alerts.events import AlertEvent
    from monitor.alerts.policy import Policy
    from monitor.domain import CallResult, ErrorType, Observation
    from monitor.health import HealthWatch

    cfg = AlertsConfig.model_validate({"cooldown": "30m", "sinks": [
        {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:1/h"},
        {"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:2"}]})
    policy, ob, watch = Policy(cfg), Outbox(store.engine), HealthWatch(now=lambda: T0)

    def run(ok: bool) -> list[AlertEvent]:
        call = CallResult(text="hi") if ok else CallResult(error_type=ErrorType.SERVER_ERROR, error_message="500")
        return watch.run_finished("c", "t", [Observation("c", "t", "openai", "m", T0, call)])

    drift = AlertEvent(kind="drift.opened", canary="c", target="t", signal="error", severity="warning",
                       event_id="e1", opened_at=T0, evidence={"baseline_value": 0.0, "current_value": 1.0})
    told = policy.notifications(drift, T0)
    [down] = run(False) + run(False) + run(False)
    told += policy.notifications(down, T0 + timedelta(seconds=1))
    assert sorted((n.sink, n.kind) for n in told) == [("am", "canary.down"), ("am", "drift.opened"),
                                                       ("hook", "canary.down"), ("hook", "drift.opened")]
    [recovered] = run(True) + run(True) + run(True)
    told += policy.notifications(recovered, T0 + timedelta(minutes=1))
    ob.add(told)
    for n in told:
        ob.mark_delivered(n.id, n.created_at)
    assert [(n.kind, n.signal) for n in ob.firing("am")] == [("drift.opened", "error")]  # still re-sent


def test_the_upgrade_moves_health_alerts_written_before_it(tmp_path: Path) -> None:
    # A canary down before the upgrade (its row under signal "error") is still ended by its recovery after it.
    from monitor.store.engine import make_engine
    from monitor.store.schema import HEAD
    from tests.support.schema import add_notifications, upgrade_to

    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade_to(engine, "0004")
    ob = Outbox(engine)
    rows = [note(sink="am", kind="canary.down", signal="error"), note(sink="am", kind="drift.opened", signal="error")]
    add_notifications(engine, rows)  # as a build at 0004 wrote them
    for n in rows:
        ob.mark_delivered(n.id, T0)
    upgrade_to(engine, HEAD)
    assert sorted((n.kind, n.signal) for n in ob.firing("am")) == [("canary.down", "health"), ("drift.opened", "error")]
    engine.dispose()


async def test_a_canary_down_an_older_leader_wrote_after_the_upgrade_is_still_ended_by_its_recovery(
        store: Store) -> None:
    # Found by QA: in a rolling update the new replica upgrades the schema while the old leader runs on; a canary
    # down the old one wrote then went in under signal "error", the new leader's recovery under "health", and
    # Alertmanager got LLMMonitorCanaryDown re-sent every resend_interval for ever after the canary recovered.
    from monitor.alerts import AlertEvent, AlertsConfig, build_alerting

    ob = Outbox(store.engine)
    old = note(sink="am", kind="canary.down", group="c/t", signal="error", canary="c", target="t")
    ob.add([old])
    ob.mark_delivered(old.id, T0)
    cfg = AlertsConfig.model_validate({"sinks": [{"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:9"}]})
    al = build_alerting(cfg, store, environ={})
    await al.start([("c", "t")])
    try:
        assert [(n.kind, n.signal) for n in ob.firing("am")] == [("canary.down", "health")]
        await al.publish([AlertEvent(kind="canary.recovered", canary="c", target="t", signal="health")])
        assert ob.firing("am") == []
    finally:
        await al.stop()


_LEGACY_DOWN = """INSERT INTO notifications (id, message_id, sink, kind, group_key, signal, payload, status, attempts,
    next_attempt_at, last_error, created_at, delivered_at)
  VALUES ('n1', 'msg_1', 'hook', 'canary.down', 'c/t', 'error',
    '{"kind": "canary.down", "status": "firing", "canary": "c", "target": "t", "signal": "error",
      "evidence": {"signal": "error", "error_types": ["connect"]}}',
    'failed', 3, '2025-03-01 12:00:00', 'ConnectError', '2025-03-01 12:00:00', NULL)"""


def test_a_health_alert_queued_before_the_upgrade_is_sent_saying_signal_health(tmp_path: Path) -> None:
    # Found by QA (a 0004 release's canary.down queued behind a receiver that was down, then the current daemon on
    # the same store): migration 0005 moved the row's signal column, but its payload, the webhook's `data`, still
    # said signal "error", while the recovery the upgraded daemon sent said "health", as the README says both do.
    from monitor.store.engine import make_engine
    from monitor.store.schema import HEAD
    from tests.support.schema import upgrade_to

    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade_to(engine, "0004", then=_LEGACY_DOWN)
    upgrade_to(engine, HEAD)
    ob = Outbox(engine)
    ob.adopt_legacy_health()
    got = ob.get("n1")
    assert got is not None and got.signal == "health"
    assert got.payload["signal"] == "health" and got.payload["evidence"]["signal"] == "health"
    assert got.payload["evidence"]["error_types"] == ["connect"] and got.message_id == "msg_1"
    engine.dispose()


def test_a_health_alert_an_older_leader_queued_after_the_upgrade_is_sent_saying_signal_health(store: Store) -> None:
    ob = Outbox(store.engine)
    # a rolling update: the old leader runs on after the new replica upgraded the schema, writing as it always did
    old = note(kind="canary.down", signal="error", canary="c", target="t", evidence={"signal": "error"})
    old.payload["signal"] = "error"
    done = note(kind="canary.down", group="c/u", signal="error", canary="c", target="u")
    done.payload.update(signal="error")
    ob.add([old, done])
    ob.mark_delivered(done.id, T0)
    assert ob.adopt_legacy_health() == 2
    got = ob.get(old.id)
    assert got is not None and got.payload["signal"] == "health" and got.payload["evidence"] == {"signal": "health"}
    kept = ob.get(done.id)  # what was delivered is history: it stays as it was sent
    assert kept is not None and kept.payload["signal"] == "error"
