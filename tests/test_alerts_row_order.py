"""An alert's opening and its resolve made in the same microsecond (one clock reading) are sent and read in the
order they were made: the outbox orders an alert's rows by (created_at, id), and the ids were random. Real local
receiver, over SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.alerts import AlertEvent, AlertsConfig, build_alerting
from monitor.alerts.policy import row_id
from monitor.store import Store
from tests.support.receiver import Receiver

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CANARIES = [f"c{i:02d}" for i in range(24)]  # random ids put each pair in order with odds 1/2: all of them, 2**-24


def health(kind: str, canary: str) -> AlertEvent:
    return AlertEvent(kind=kind, canary=canary, target="t", signal="health", severity="critical", opened_at=NOW)


async def test_a_down_and_its_recovery_made_at_one_instant_go_out_and_read_in_order(store: Store) -> None:
    with Receiver() as rx:
        cfg = AlertsConfig.model_validate({"cooldown": "0s", "group_wait": "0s",
                                           "sinks": [{"name": "hook", "type": "webhook", "url": rx.url + "/hook"}]})
        al = build_alerting(cfg, store, environ={}, now=lambda: NOW)  # a frozen clock: every row at one instant
        for canary in CANARIES:
            await al.publish([health("canary.down", canary)])
            await al.publish([health("canary.recovered", canary)])
        assert [n.kind for n in al.outbox.latest_states()] == ["canary.recovered"] * len(CANARIES)
        assert al.outbox.open_alerts() == []
        await al.sender.flush()
        told = [(r.json["data"]["canary"], r.json["type"]) for r in rx.delivered]
        for canary in CANARIES:
            assert [k for c, k in told if c == canary] == ["canary.down", "canary.recovered"]
        await al.stop()


def test_row_ids_sort_in_the_order_they_are_made() -> None:
    ids = [row_id() for _ in range(10_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) and {len(i) for i in ids} == {32}
