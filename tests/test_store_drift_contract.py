"""Drift events and baselines in the store, on SQLite and PostgreSQL; events and notifications commit together."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from monitor.alerts import AlertEvent, AlertsConfig
from monitor.alerts.outbox import Outbox
from monitor.alerts.service import Alerting
from monitor.analysis import Analysis
from monitor.config.models import DriftConfig
from monitor.domain import utcnow
from monitor.store import Store
from monitor.store.drift_repo import DriftRepository, EventKey
from monitor.telemetry.metrics import Metrics


def event(signal: str = "refused", state: str = "open", **extra: Any) -> dict[str, Any]:
    return {"id": f"ev-{signal}", "canary": "c", "target": "t", "signal": signal, "kind": "behaviour", "state": state,
            "test": "cusum", "baseline_value": 0.02, "current_value": 0.4, "effect_size": 0.38, "statistic": 9.1,
            "p_value": None, "threshold": 5.0, "baseline_n": 30, "current_n": 12, "first_obs_id": "o1",
            "first_obs_at": "2026-11-01T12:00:00+00:00", "opened_at": "2026-11-01T12:05:00+00:00",
            "resolved_at": None, "accepted_at": None, "note": "", "evidence": {"diff": "[-a-] {+b+}"},
            "detail": {}, **extra}


def test_events_upsert_filter_and_get(store: Store) -> None:
    repo = DriftRepository(store.engine)
    repo.save_events([event("refused"), event("output_chars")])
    repo.save_events([event("refused", state="resolved", resolved_at="2026-11-01T13:00:00+00:00")])
    assert {e["signal"] for e in repo.events()} == {"refused", "output_chars"}
    assert [e["signal"] for e in repo.events(state="open")] == ["output_chars"]
    got = repo.event("ev-refused")
    assert got is not None and got["state"] == "resolved" and got["evidence"]["diff"] == "[-a-] {+b+}"
    assert repo.event("nope") is None
    # a closed event is final: a process that still holds it open does not reopen it
    assert repo.save_events([event("refused"), event("output_chars", current_value=0.5)]) == {"ev-output_chars"}
    assert repo.event("ev-refused")["state"] == "resolved"  # type: ignore[index]


def test_baseline_history_keeps_one_active(store: Store) -> None:
    repo = DriftRepository(store.engine)
    first = repo.save_baseline("c", "t", {"count": 30}, source="first_n")
    second = repo.save_baseline("c", "t", {"count": 12}, source="accepted", note="upgrade")
    (active,) = repo.baselines(canary="c", target="t")
    assert active["id"] == second and active["note"] == "upgrade" and active["data"] == {"count": 12}
    assert {r["id"] for r in repo.baselines(active_only=False)} == {first, second}


def test_event_and_notification_commit_together(store: Store) -> None:
    repo = DriftRepository(store.engine)
    cfg = AlertsConfig.model_validate({"sinks": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/x"}]})
    alerting = Alerting(cfg, Outbox(store.engine), None, utcnow)  # type: ignore[arg-type]
    ev = AlertEvent(kind="drift.opened", canary="c", target="t", signal="refused", event_id="ev-refused")
    repo.save_events([event()], lambda s, written: alerting.enqueue(s, [ev]))
    assert Outbox(store.engine).pending_count() == 1

    def boom(session: Any, written: set[str]) -> None:
        alerting.enqueue(session, [AlertEvent(kind="drift.opened", canary="c", target="t", signal="x",
                                              event_id="ev-x")])
        raise RuntimeError("crash between the event and its commit")

    with pytest.raises(RuntimeError):
        repo.save_events([event("x")], boom)
    assert repo.event("ev-x") is None  # neither the event...
    with store.engine.connect() as conn:  # ...nor its notification was stored
        assert conn.execute(text("SELECT count(*) FROM notifications")).scalar_one() == 1


@pytest.mark.postgres
def test_events_are_locked_in_one_order_so_concurrent_writers_cannot_deadlock(pg_url: str) -> None:
    # The daemon and `baseline accept` write the same events in whatever order each holds them; PostgreSQL
    # broke the cycle by failing one of them (a lost batch, or a traceback). Written in id order, a writer that
    # waits for the first row holds none of the others.
    import threading
    import time

    import psycopg

    store = Store(pg_url)
    store.migrate()
    repo = DriftRepository(store.engine)
    repo.save_events([event("a"), event("b")])  # ids ev-a < ev-b
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as other:  # another writer holds ev-a
        other.execute("SELECT id FROM drift_events WHERE id = 'ev-a' FOR UPDATE")
        writer = threading.Thread(target=repo.save_events, args=([event("b", current_value=0.5),
                                                                  event("a", current_value=0.5)],))
        writer.start()
        with psycopg.connect(dsn, autocommit=True) as watch:
            while writer.is_alive() and not watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'").fetchone()[0]:  # type: ignore[index]
                time.sleep(0.01)
        # the writer waits for ev-a holding nothing: the other writer can take ev-b (else: a deadlock)
        other.execute("SELECT id FROM drift_events WHERE id = 'ev-b' FOR UPDATE NOWAIT")
        other.rollback()
    writer.join()
    assert {e["signal"]: e["current_value"] for e in repo.events()} == {"a": 0.5, "b": 0.5}
    store.close()


def test_paging_events_after_a_key_reads_every_event_once_through_exact_ties(store: Store) -> None:
    repo = DriftRepository(store.engine)
    # 3 opening times, 5 events each, in an id order that is not the insertion order
    events = [event(f"s{i}", id=f"ev-{(7 * i) % 15:02d}", opened_at=f"2026-11-01T12:0{i // 5}:00.000001+00:00")
              for i in range(15)]
    repo.save_events(events)
    expected = [e["id"] for e in sorted(events, key=lambda e: (-int(e["opened_at"][15]), e["id"]))]
    assert [e["id"] for e in repo.events()] == expected
    for limit in (1, 4, 5, 14, 15):
        ids: list[str] = []
        after = None
        while page := repo.events(limit=limit, after=after):
            ids += [e["id"] for e in page]
            after = EventKey.of(page[-1])
        assert ids == expected, limit
    resolved = repo.events(state="open", after=EventKey.of(repo.events()[6]))
    assert [e["id"] for e in resolved] == expected[7:]


def test_a_restart_restores_every_open_event_however_many_a_fleet_wide_change_opened(store: Store) -> None:
    # a model swap across 400 pairs opens two model-change events each: 800 open events, more than a page
    pairs = [(f"c{i}", f"t{i % 4}") for i in range(400)]
    DriftRepository(store.engine).save_events([
        event(signal, id=f"ev-{c}-{t}-{signal}", canary=c, target=t, kind="model")
        for c, t in pairs for signal in ("response_model", "system_fingerprint")])
    analysis = Analysis(store, Metrics(CollectorRegistry()), DriftConfig().settings())
    try:
        analysis.restore(pairs)
        assert len(analysis.engine.events(state="open")) == 800
    finally:
        analysis.close()


def test_an_accept_committed_between_the_daemons_read_and_its_write_stays_accepted(store: Store) -> None:
    """`baseline accept` (another process) commits between the daemon's read of an open event and its update of it:
    the update must not write the event open again (it did: the accepted event came back open, its receivers told
    "accepted", and the CLI's note lost; seen in the end-to-end alerting test on a loaded machine)."""
    daemon = DriftRepository(store.engine)
    daemon.save_events([event()])
    other = Store(store.url)
    accepted = event(state="accepted", accepted_at="2026-11-01T13:00:00+00:00", note="intended")
    fired: list[bool] = []

    def accept_now(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not fired and statement.lstrip().upper().startswith("SELECT") and "drift_events" in statement:
            fired.append(True)  # the daemon has read the event: the CLI's accept commits now
            DriftRepository(other.engine).save_events([accepted])

    sqlalchemy.event.listen(store.engine, "after_cursor_execute", accept_now)
    try:
        assert daemon.save_events([event(current_value=0.5)]) == set()
    finally:
        sqlalchemy.event.remove(store.engine, "after_cursor_execute", accept_now)
        other.close()
    got = daemon.event("ev-refused")
    assert fired and got is not None and (got["state"], got["note"]) == ("accepted", "intended")
