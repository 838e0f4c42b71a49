"""A PostgreSQL store that hangs rather than refusing is bounded: a connection's opening, a statement, a lock wait.

A server that takes the TCP connection and never answers (stopped, a paused VM, a proxy whose backend hangs), or
a lock another session holds and never lets go, held the thread that wanted the store for good, and with it the
write, the readiness check, the reload or the shutdown waiting on it. Each is made real here: a socket that never
answers, a real lock on a real server. The bounds asserted are generous: they tell "finishes" from "hangs".
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from monitor.config.loader import load_config, restart_only
from monitor.store import Store
from monitor.store.engine import Timeouts
from monitor.store.leader import Leadership
from tests.support.frozen import FrozenRelay

HANGS = 60.0  # a call still going after this long waits for good


def finishes(call: Callable[[], Any], within: float = HANGS) -> tuple[bool, Any]:
    """Run `call` on a daemon thread; return whether it ended within `within` seconds, and its result or error."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(call())
        except Exception as e:
            out.append(e)

    t = threading.Thread(target=run, daemon=True)  # left behind if it hangs: the test says so and goes on
    t.start()
    t.join(within)
    return not t.is_alive(), out[0] if out else None


def _at(url: str, port: int) -> str:
    return make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


def test_a_server_that_never_answers_fails_the_connection_instead_of_holding_it(pg_url: str) -> None:
    with FrozenRelay(None) as silent:
        store = Store(_at(pg_url, silent.port), timeouts=Timeouts(connect_s=2))
        try:
            done, answer = finishes(store.ping)
            assert done, "the readiness check waited for good on a server that never answers"
            assert answer is False
        finally:
            store.close()


def test_a_standby_whose_server_never_answers_fails_its_try_for_the_lock(pg_url: str) -> None:
    with FrozenRelay(None) as silent:
        store = Store(_at(pg_url, silent.port), timeouts=Timeouts(connect_s=2))
        lock = Leadership(store.engine, connect_timeout_s=2)
        try:
            done, took = finishes(lock.try_acquire)
            assert done, "the try for the leader lock waited for good on a server that never answers"
            assert took is False
        finally:
            store.close()


def test_a_reload_keeps_the_store_timeouts_the_engine_was_made_with(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text("targets: [{id: t, provider: openai, base_url: 'http://127.0.0.1:1/v1', model: m}]\nprobes: []\n")
    running = load_config(path, environ={})
    path.write_text(path.read_text() + "storage: {connect_timeout: 3s}\n")
    loaded = load_config(path, environ={})
    assert loaded.storage.connect_timeout == 3
    kept, changed = restart_only(running, loaded)
    assert changed == ["storage.connect_timeout"]
    assert kept.storage.connect_timeout == running.storage.connect_timeout == 10
