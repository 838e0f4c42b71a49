"""Replicas whose store connections go through a pooler in transaction mode share server sessions: the leader lock
(a session advisory lock, re-entrant within a session) must not tell two replicas that each took it."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from monitor.app import App
from monitor.config import load_config
from monitor.errors import StoreError
from monitor.sim import SimServer
from monitor.store import Store
from monitor.store.leader import Leadership
from tests.conftest import write_config

PGBOUNCER = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None)


@pytest.fixture
def pooled_url(request: pytest.FixtureRequest, tmp_path: Path, pg_url: str) -> Iterator[str]:
    """`pg_url`'s database through PgBouncer in transaction mode, with one server session (apt: pgbouncer), or as
    many as the test's `indirect` parameter says (or sessions and pool mode, as a tuple)."""
    param = getattr(request, "param", 1)
    sessions, mode = param if isinstance(param, tuple) else (param, "transaction")
    if PGBOUNCER is None:
        if os.environ.get("CI"):
            pytest.fail("CI must test the leader lock behind PgBouncer (apt-get install pgbouncer)")
        pytest.skip("pgbouncer is not installed")
    Store(pg_url).migrate()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rest, name = pg_url.rsplit("/", 1)
    user, hostport = rest.split("://", 1)[1].split("@", 1)
    host, pg_port = hostport.split(":")
    ini = tmp_path / "pgbouncer.ini"
    ini.write_text(f"[databases]\n{name} = host={host} port={pg_port} dbname={name} user={user}\n"
                   f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = any\n"
                   f"pool_mode = {mode}\ndefault_pool_size = {sessions}\nunix_socket_dir =\n"
                   "ignore_startup_parameters = extra_float_digits,options\n")
    os.chmod(tmp_path, 0o755)
    os.chmod(ini, 0o644)
    as_user = ["-u", "postgres"] if os.geteuid() == 0 else []  # pgbouncer refuses to run as root
    proc = subprocess.Popen([PGBOUNCER, *as_user, str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "pgbouncer did not start"
                time.sleep(0.05)
        yield f"postgresql+psycopg://{user}@127.0.0.1:{port}/{name}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_two_replicas_behind_a_transaction_pooler_do_not_both_lead(
        pooled_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Found by review: behind PgBouncer's pool_mode=transaction both replicas' pg_try_advisory_lock ran on the one
    server session, which already held the lock: both were told they took it, and both probed, analysed and paged
    (the check, a SELECT 1, only asked whether a connection answered). The second now sees the session already holds
    it and says why it does not lead; the first's checks ask whether its session still holds it."""
    stores = [Store(pooled_url), Store(pooled_url)]
    first, second = (Leadership(s.engine) for s in stores)
    try:
        assert first.try_acquire()
        with caplog.at_level(logging.ERROR, logger="monitor.leader"):
            assert not second.try_acquire() and not second.try_acquire()
        [line] = [r.getMessage() for r in caplog.records if r.name == "monitor.leader"]  # once, not at every try
        assert "pool_mode=transaction" in line
        assert first.still_held() and not second.still_held()
    finally:
        first.release()
        second.release()
        for s in stores:
            s.close()


@pytest.mark.parametrize("pooled_url", [2], indirect=True)
def test_a_leader_whose_check_a_transaction_pooler_moves_to_another_session_says_why_it_lost_the_lock(
        pooled_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Found by review: behind PgBouncer's pool_mode=transaction with two server sessions, a lone replica took the
    lock on one; once another client's transaction held that session, its next check ran on the other, the lock
    was lost, and it logged only "lost the leader lock (the store connection broke)" and exited 1, the lock left
    with a session no replica can release (none led again, the standbys saying "another replica holds the leader
    lock"). The check now names the pooler and the session that keeps the lock."""
    store, other = Store(pooled_url), Store(pooled_url)
    leader = Leadership(store.engine)
    busy: list[Any] = []
    try:
        assert leader.try_acquire()
        held_by = leader._pid
        # occupy the lock's server session with an open transaction, so the leader's next check runs on the other
        busy += [other.engine.connect() for _ in range(2)]
        pids = []
        for conn in busy:
            conn.begin()
            pids.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            if pids[-1] == held_by:
                break
        assert pids[-1] == held_by
        if len(pids) == 2:
            busy[0].rollback()  # free the other session for the leader's check
        with caplog.at_level(logging.ERROR, logger="monitor.leader"):
            assert not leader.still_held()
        [line] = [r.getMessage() for r in caplog.records if r.name == "monitor.leader"]
        assert "pool_mode=transaction" in line and f"session {held_by} keeps the lock" in line
    finally:
        for conn in busy:
            conn.close()
        leader.release()
        store.close()
        other.close()


def _daemon(tmp_path: Path, url: str, sim: SimServer) -> App:
    cfg = write_config(tmp_path, f"  - {{id: t, provider: openai, base_url: '{sim.openai_base_url}', model: m}}",
                       "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    schedule: {every: 1h}\n")
    cfg.write_text(cfg.read_text().replace(f"sqlite:///{tmp_path / 'm.db'}", url))
    return App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False)


@pytest.mark.parametrize("pooled_url", [1, 3], indirect=True)
async def test_a_daemon_behind_a_transaction_pooler_refuses_to_start(
        pooled_url: str, tmp_path: Path, steady_sim: SimServer) -> None:
    """Found by review: a lone replica behind PgBouncer's pool_mode=transaction took the leader lock and led, until
    another client's transaction took its server session: the lock was then lost and orphaned on that session, no
    replica leading until the pooler closed it. The start now sees that its sessions are shared and says what to do."""
    app = _daemon(tmp_path, pooled_url, steady_sim)
    with pytest.raises(StoreError, match="pool_mode=transaction") as refused:
        await app.start()
    assert "pool_mode=session" in str(refused.value) and not app.leading
    await app.stop()


@pytest.mark.parametrize("pooled_url", [(3, "session")], indirect=True)
async def test_a_daemon_behind_a_session_pooler_starts_and_leads(
        pooled_url: str, tmp_path: Path, steady_sim: SimServer) -> None:
    app = _daemon(tmp_path, pooled_url, steady_sim)
    await app.start()
    try:
        assert app.leading
    finally:
        await app.stop()
