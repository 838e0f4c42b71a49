"""The store holds at most one open drift event per canary x target x signal, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from monitor.store import Store
from monitor.store.drift_repo import DriftRepository
from monitor.store.engine import make_engine
from monitor.store.schema import HEAD
from tests.support.schema import upgrade_to
from tests.test_store_drift_contract import event


def _other(state: str = "open", **extra: object) -> dict[str, object]:
    """A second event of the same key (another replica's: another first observation)."""
    return {**event(), "id": "ev-other", "first_obs_id": "o2", "opened_at": "2026-11-01T12:06:00+00:00",
            "state": state, **extra}


def test_a_second_open_event_for_one_key_is_not_stored(store: Store) -> None:
    """Found by reproducing a fail-over with real processes: an old leader draining its analyses stored an open
    event after the new leader had loaded the open events, and the new one stored its own: two open rows for one
    key. Besides the old leader's fence (tests/test_leadership_fence.py) the store now refuses the second."""
    repo = DriftRepository(store.engine)
    assert repo.save_events([event()]) == {"ev-refused"}
    assert repo.save_events([_other()]) == set()
    assert repo.save_events([_other(state="resolved", resolved_at="2026-11-01T13:00:00+00:00")]) == set()
    assert [(e["id"], e["state"]) for e in repo.events()] == [("ev-refused", "open")]
    assert repo.save_events([event(current_value=0.5)]) == {"ev-refused"}  # the open one's updates go on
    # two writers racing past that check: the store's unique index refuses the second row
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(text("INSERT INTO drift_events (id, canary, target, signal, kind, state, opened_at, data) "
                          "SELECT 'raw', canary, target, signal, kind, state, opened_at, data FROM drift_events"))
    # once the first is resolved, a new event of that key opens
    repo.save_events([event(state="resolved", resolved_at="2026-11-01T13:00:00+00:00")])
    third = {**_other(), "id": "ev-third"}
    assert DriftRepository(store.engine).save_events([third]) == {"ev-third"}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_store_holding_duplicates_upgrades_and_loses_none(request: pytest.FixtureRequest, tmp_path: Path,
                                                            backend: str) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    engine = make_engine(url)
    upgrade_to(engine, "0005")
    old = DriftRepository(engine)  # as 0005 stored them: nothing refused the duplicates
    for e in (event(), _other(), event("error"), {**_other(), "id": "ev-closed", "state": "resolved"}):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO drift_events (id, canary, target, signal, kind, state, opened_at, data) "
                              "VALUES (:id, :canary, :target, :signal, :kind, :state, :opened_at, :data)"),
                         {**{k: e[k] for k in ("id", "canary", "target", "signal", "kind", "state", "opened_at")},
                          "data": json.dumps(e)})
    upgrade_to(engine, HEAD)
    events = {e["id"]: e for e in old.events()}
    assert set(events) == {"ev-refused", "ev-other", "ev-error", "ev-closed"}  # no row lost
    assert sorted(e["id"] for e in old.events(state="open")) == ["ev-error", "ev-refused"]  # the oldest stays
    closed = events["ev-other"]  # the younger duplicate: resolved, saying why, in its row and its data
    assert closed["state"] == "resolved" and closed["resolved_at"] and "ev-refused" in closed["note"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT state FROM drift_events WHERE id = 'ev-other'")).scalar_one() == "resolved"
    engine.dispose()
