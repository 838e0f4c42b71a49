"""A PostgreSQL store behind a network path that went silent: the daemon's connections fail, they do not hang.

A partition, a dropped NAT or firewall entry or a paused VM acknowledges nothing and resets nothing: a statement
already sent waited for its answer for good (the server's statement_timeout never reaches the client), and the
write thread with it. libpq's TCP keepalives and tcp_user_timeout on the daemon's pool end such a connection.
Made real with a relay in a network namespace of its own whose loopback is taken down (tests/support/partition.py);
a relay that only stops passing bytes on (tests/support/frozen.py) is a stopped server: its kernel still answers.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from monitor.domain import CallResult, Observation, utcnow
from monitor.store import Store
from monitor.store.engine import Timeouts
from tests.support.partition import CutRelay, why_not

HANGS = 60.0  # a call still going after this long waits for good (the bound under test is 3 s)


@pytest.fixture
def can_cut() -> None:
    reason = why_not()
    if reason:
        pytest.skip(reason)


def _at(url: str, port: int) -> str:
    return make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _waiting_on_a_lock(admin: psycopg.Connection[Any]) -> bool:
    return admin.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                         "AND query LIKE 'INSERT INTO observations%'").fetchone() == (1,)


def test_a_write_sent_before_the_path_went_silent_fails_instead_of_waiting_for_good(pg_url: str, can_cut: None) -> None:
    Store(pg_url).migrate()
    u = make_url(pg_url)
    with CutRelay((u.host or "127.0.0.1", u.port or 5432)) as relay, \
            psycopg.connect(_dsn(pg_url), autocommit=True) as admin, psycopg.connect(_dsn(pg_url)) as locker:
        store = Store(_at(pg_url, relay.port), timeouts=Timeouts(dead_peer_s=3))
        out: list[Any] = []

        def write() -> None:
            relay.enter()  # its connections, and the one retry_disconnect opens, go through the relay
            try:
                store.save_observation(Observation(canary="c", target="t", provider="openai", request_model="m",
                                                   started_at=utcnow(), call=CallResult(text="hi"), id="o1"))
                out.append(None)
            except Exception as e:
                out.append(e)

        try:
            locker.execute("LOCK TABLE observations IN ACCESS EXCLUSIVE MODE")  # the insert waits on the server
            writer = threading.Thread(target=write, daemon=True)  # left behind if it hangs: the test says so
            writer.start()
            for _ in range(500):
                if _waiting_on_a_lock(admin):
                    break
                time.sleep(0.02)
            assert _waiting_on_a_lock(admin), out
            relay.cut()  # the statement is sent; its answer will never come back
            locker.rollback()  # the server does the insert and answers into the silence
            writer.join(HANGS)
            assert not writer.is_alive(), "a write sent before the path went silent waited for good"
            assert isinstance(out[0], OperationalError), out  # a store error: Unsaved holds the write and retries
        finally:
            store.close()


def test_the_pool_s_keepalives_yield_to_those_the_url_sets(pg_url: str) -> None:
    store = Store(pg_url + "?keepalives_idle=7&tcp_user_timeout=1234", timeouts=Timeouts(dead_peer_s=25))
    try:
        with store.engine.connect() as conn:
            raw: Any = conn.connection.dbapi_connection
            got = {o.keyword.decode(): (o.val or b"").decode() for o in raw.pgconn.info}
    finally:
        store.close()
    assert {k: got[k] for k in ("keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
                                "tcp_user_timeout")} == {"keepalives": "1", "keepalives_idle": "7",
                                                         "keepalives_interval": "5", "keepalives_count": "3",
                                                         "tcp_user_timeout": "1234"}
