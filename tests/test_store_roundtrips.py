"""Round trips to PostgreSQL on the daemon's hot path: each observation, its signals and its run records are one
statement each, sent without BEGIN, COMMIT or a ping (a managed PostgreSQL is 1-2 ms away, and the pool's pre-ping
and the transaction around single statements made each write 4 round trips). A pool session the server ended
costs none of those writes: they run again once on a fresh connection, and a connection idle for a while is
pinged before use. Counted on the wire by a proxy (see `benchmarks/store_roundtrips.py` for the daemon's
whole breakdown)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from monitor.domain import CallResult, Observation
from monitor.store import Run, Store
from monitor.store import engine as store_engine
from tests.conftest import PG_ADMIN
from tests.support.wire import RoundTrips

ADMIN_DSN = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")


def observation(i: int) -> Observation:
    return Observation(canary="c", target="t", provider="openai", request_model="m",
                       started_at=datetime(2026, 1, 1, tzinfo=UTC), call=CallResult(text=f"answer {i}"),
                       run_id="r1", sample_index=i)


@pytest.fixture
def proxied(pg_url: str) -> Iterator[tuple[Store, RoundTrips]]:
    u = make_url(pg_url)
    wire = RoundTrips(u.host or "127.0.0.1", u.port or 5432)
    store = Store(u.set(host="127.0.0.1", port=wire.port).render_as_string(hide_password=False))
    store.migrate()
    try:
        yield store, wire
    finally:
        store.close()
        wire.close()


def end_pool_sessions(store: Store) -> int:
    """pg_terminate_backend every session of the store's database but this one (the pool's)."""
    database = store.engine.url.database
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND "
                            "pid <> pg_backend_pid()", (database,)).fetchall()
    return len(rows)


@pytest.mark.postgres
def test_an_observation_its_signals_and_its_run_records_are_one_round_trip_each(
        proxied: tuple[Store, RoundTrips]) -> None:
    store, wire = proxied
    run = Run(id="r1", canary="c", target="t", started_at=datetime(2026, 1, 1, tzinfo=UTC))
    store.save_run(run)  # the pool has its connection now
    counts = []
    for write in (lambda: store.save_run(run), lambda: store.save_observation(observation(0)),
                  lambda: store.save_signals(observation(0).id, {"length": 2.0}), lambda: store.save_run(run)):
        before = wire.count
        write()
        counts.append(wire.count - before)
    assert counts == [1, 1, 1, 1]  # was 4 each: pre-ping, BEGIN, the statement, COMMIT


@pytest.mark.postgres
def test_writes_on_sessions_the_server_ended_run_again_on_fresh_ones(proxied: tuple[Store, RoundTrips]) -> None:
    store, _ = proxied
    run = Run(id="r1", canary="c", target="t", started_at=datetime(2026, 1, 1, tzinfo=UTC))
    store.save_run(run)
    obs = [observation(i) for i in range(3)]
    assert end_pool_sessions(store) >= 1
    store.save_observation(obs[0])  # no exception: its connection was dead, the write ran again on a new one
    assert end_pool_sessions(store) >= 1
    store.save_signals(obs[0].id, {"length": 3.0})
    assert end_pool_sessions(store) >= 1
    run.status = "done"
    store.save_run(run)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT id, signals FROM observations")).all() == [(obs[0].id, {"length": 3.0})]
    assert [r.status for r in store.runs()] == ["done"]


@pytest.mark.postgres
def test_a_connection_idle_past_the_ping_threshold_is_pinged_and_replaced_if_dead(
        proxied: tuple[Store, RoundTrips], monkeypatch: pytest.MonkeyPatch) -> None:
    store, wire = proxied
    store.save_observation(observation(0))
    before = wire.count
    assert store.count_observations() == 1
    assert wire.count - before == 3  # BEGIN, the count, ROLLBACK: a connection just handed back is not pinged
    monkeypatch.setattr(store_engine, "PING_IDLE_S", 0.0)  # every connection handed back counts as idle now
    before = wire.count
    assert store.count_observations() == 1
    assert wire.count - before == 4  # the ping, BEGIN, the count, ROLLBACK
    assert end_pool_sessions(store) >= 1
    assert store.count_observations() == 1  # a read does not run again: the ping found the dead session first
