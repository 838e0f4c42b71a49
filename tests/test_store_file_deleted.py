"""A SQLite store file deleted (or replaced) under a running daemon: writes fail and wait, rather than vanish."""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import SQLAlchemyError

from monitor.app import App
from monitor.config import load_config
from monitor.domain import CallResult, Observation, utcnow
from monitor.sim import SimServer
from monitor.store import Store
from tests.conftest import write_config
from tests.test_store_outage import PROBES, value


def _obs(i: int) -> Observation:
    return Observation(canary="c", target="t", provider="openai", request_model="m", started_at=utcnow(),
                       call=CallResult(text=f"answer {i}"), id=f"o{i}")


def _delete(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def test_a_write_after_the_file_was_deleted_fails_naming_it_and_creates_no_empty_file(tmp_path: Path) -> None:
    """Found by the chaos run: `rm llm-monitor.db*` under a running daemon left it writing into the deleted inode;
    every write succeeded, /readyz said ready, and all of it was lost."""
    db = tmp_path / "m.db"
    store = Store(f"sqlite:///{db}")
    store.migrate()
    store.save_observation(_obs(1))
    _delete(db)
    with pytest.raises(SQLAlchemyError, match="deleted or replaced while the daemon ran"):
        store.save_observation(_obs(2))
    assert not store.ping()
    assert not db.exists()  # no empty file without the schema left in its place
    store.engine.dispose()


def test_a_file_restored_in_its_place_takes_the_writes_again(tmp_path: Path) -> None:
    db, backup = tmp_path / "m.db", tmp_path / "backup.db"
    store = Store(f"sqlite:///{db}")
    store.migrate()
    store.save_observation(_obs(1))
    with sqlite3.connect(db) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)
    _delete(db)
    with pytest.raises(SQLAlchemyError):
        store.save_observation(_obs(2))
    backup.rename(db)
    store.save_observation(_obs(2))
    assert {o.id for o in store.observations(limit=10)} == {"o1", "o2"}
    store.engine.dispose()


@pytest.mark.parametrize("error", [errno.EACCES, errno.ESTALE])
def test_a_store_file_that_cannot_be_looked_at_fails_writes_as_a_store_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int) -> None:
    """Its folder made unreadable, a stale NFS handle: the look at the file raised the OSError itself out of the
    pool, where the daemon holds and retries SQLAlchemy's errors only (the write was lost, the retry task ended)."""
    db = tmp_path / "m.db"
    store = Store(f"sqlite:///{db}")
    store.migrate()
    store.save_observation(_obs(1))
    stat = os.stat

    def refused(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if str(path) == str(db):
            raise OSError(error, os.strerror(error), str(path))
        return stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", refused)
    with pytest.raises(SQLAlchemyError, match=f"store file {db} cannot be looked at .*{os.strerror(error)}"):
        store.save_observation(_obs(2))
    monkeypatch.undo()
    store.save_observation(_obs(2))  # looked at again: the same file, written
    assert {o.id for o in store.observations(limit=10)} == {"o1", "o2"}
    store.engine.dispose()


async def test_a_daemon_whose_store_file_is_deleted_holds_its_writes_and_is_not_ready(
        steady_sim: SimServer, tmp_path: Path) -> None:
    target = f"  - {{id: gpt, provider: openai, base_url: '{steady_sim.openai_base_url}', model: sim-gpt}}"
    config = load_config(write_config(tmp_path, target, PROBES), environ={})
    canary, tgt = config.pairs()[0]
    registry = CollectorRegistry()
    app = App(config, registry=registry, environ={}, serve_http=False)
    db, backup = tmp_path / "m.db", tmp_path / "backup.db"
    await app.start(schedule=False)
    try:
        await app.runner.run(canary, tgt)
        with sqlite3.connect(db) as src, sqlite3.connect(backup) as dst:
            src.backup(dst)
        _delete(db)
        made = await app.runner.run(canary, tgt)
        assert value(registry, "llm_monitor_store_pending_writes") == 3  # 2 observations, 1 run record
        assert await asyncio.to_thread(app.ready) == (False, {"store": False, "scheduler": False, "leader": True,
                                                            "draining": False})
        backup.rename(db)
        deadline = time.monotonic() + 30
        while value(registry, "llm_monitor_store_pending_writes") and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert value(registry, "llm_monitor_store_pending_writes") == 0
        assert {o.id for o in made} <= {o.id for o in app.store.observations(limit=100)}
    finally:
        await app.stop()
    assert value(registry, "llm_monitor_store_dropped_writes_total") == 0
