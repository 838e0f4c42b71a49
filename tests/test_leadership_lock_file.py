"""SQLite's leader lock is a `flock` on `<database>.leader`: a lock file deleted under the leader leaves one leader."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.store import Store
from monitor.store.leader import Leadership


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Leadership, Leadership, Path]]:
    """The leader and a second daemon on one SQLite store, and the lock file between them."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    stores = [Store(url), Store(url)]
    stores[0].migrate()
    leader, other = (Leadership(s.engine) for s in stores)
    assert leader.try_acquire() and not other.try_acquire()
    try:
        yield leader, other, tmp_path / "m.db.leader"
    finally:
        leader.release()
        other.release()
        for s in stores:
            s.close()


def test_a_leader_whose_lock_file_was_deleted_locks_it_again_before_another_daemon_can(
        pair: tuple[Leadership, Leadership, Path], caplog: pytest.LogCaptureFixture) -> None:
    """Found by the chaos run: `rm m.db.leader` (an empty file that looks like a stray) under a running daemon, then
    a second daemon started on the store: both led, each probing, spending and paging on its own."""
    leader, other, lock_file = pair
    lock_file.unlink()
    with caplog.at_level(logging.WARNING, logger="monitor.leader"):
        assert leader.still_held()  # its check, every second
    assert lock_file.exists()
    assert not other.try_acquire()
    assert "deleted or replaced: locked again" in caplog.records[0].getMessage()


def test_a_leader_whose_lock_file_another_daemon_locked_first_no_longer_leads(
        pair: tuple[Leadership, Leadership, Path]) -> None:
    leader, other, lock_file = pair
    lock_file.unlink()
    assert other.try_acquire()  # between two of the leader's checks
    assert not leader.still_held() and not leader.held
    assert not leader.try_acquire()  # as a standby now


def test_a_lock_file_replaced_by_another_is_locked_again(pair: tuple[Leadership, Leadership, Path]) -> None:
    leader, other, lock_file = pair
    lock_file.rename(lock_file.with_suffix(".old"))
    lock_file.write_bytes(b"")
    assert leader.still_held() and leader.still_held()
    assert not other.try_acquire()


def test_a_lock_file_deleted_from_another_nfs_client_is_locked_again_not_a_crash_of_the_check(
        pair: tuple[Leadership, Leadership, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """On NFS a file deleted by another host leaves the leader's descriptor stale: its fstat fails (ESTALE). That
    escaped the check, which ended the leader's watch of its lock for good: it led on, never checking again, beside
    the daemon that locked the new file."""
    leader, other, lock_file = pair
    lock_file.unlink()

    fstat, locked = os.fstat, leader._file

    def stale(fd: int) -> os.stat_result:
        if fd == locked:
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))
        return fstat(fd)

    monkeypatch.setattr(os, "fstat", stale)
    assert leader.still_held()
    assert lock_file.exists()
    assert not other.try_acquire()


def test_a_lock_file_that_cannot_be_looked_at_is_a_lock_not_confirmed(
        pair: tuple[Leadership, Leadership, Path], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Its folder made unreadable (or a stale NFS folder): as a PostgreSQL lock that no check confirms, it is lost
    (the daemon stops), said with the reason, not an exception out of the check."""
    leader, _other, lock_file = pair

    stat = os.stat

    def refused(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if str(path) == str(lock_file):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", refused)
    with caplog.at_level(logging.ERROR, logger="monitor.leader"):
        assert not leader.still_held() and not leader.held
    assert "cannot be looked at" in caplog.records[0].getMessage()
    assert "Permission denied" in caplog.records[0].getMessage()
