"""Drift events and baselines in the store, on SQLite and PostgreSQL; events and notifications commit together."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from monitor.alerts import AlertEvent, AlertsConfig
from monitor.alerts.outbox import Outbox
from monitor.alerts.service import Alerting
from monitor.domain import utcnow
from monitor.store import Store
from monitor.store.drift_repo import DriftRepository


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
