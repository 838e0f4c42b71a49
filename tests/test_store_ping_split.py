"""The idle ping on PostgreSQL (`_select_1_within`) when the server stops between a result and the end of its answer.

Found by reading its second `get_result`: once the first result came (CommandComplete), it asked libpq for the next
without waiting for the socket, and libpq then blocks until the server's ReadyForQuery, unbounded; psycopg's C build
holds the GIL through it, so every thread of the daemon stopped with it (its event loop, the HTTP server, the leader
lock's checks), where a server that stopped answering was to cost the ping `storage.connect_timeout` at most.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from monitor.store import Store
from monitor.store.engine import Timeouts

HOLD_S = 20.0  # how long the relay holds the answer's end: a ping waiting on it takes this long


@pytest.fixture
def split_relay(pg_url: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    u = make_url(pg_url)
    relay = subprocess.Popen([sys.executable, "-m", "tests.support.split_relay", u.host or "127.0.0.1",
                              str(u.port or 5432), str(HOLD_S)], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).parent.parent)
    try:
        assert relay.stdout is not None
        port = int(relay.stdout.readline())
        via = u.set(host="127.0.0.1", port=port).update_query_dict({"sslmode": "disable", "gssencmode": "disable"})
        yield relay, via.render_as_string(hide_password=False)
    finally:
        relay.kill()
        relay.wait()


def test_an_idle_ping_whose_answer_stops_after_its_result_is_bounded_and_stops_no_other_thread(
        split_relay: tuple[subprocess.Popen[str], str], monkeypatch: pytest.MonkeyPatch) -> None:
    relay, url = split_relay
    monkeypatch.setattr("monitor.store.engine.PING_IDLE_S", 0.2)
    store = Store(url, timeouts=Timeouts(connect_s=2))
    try:
        store.reach()
        time.sleep(0.5)  # idle past PING_IDLE_S: pinged at its next checkout
        relay.send_signal(signal.SIGUSR1)  # its next SELECT 1 answer stops after the result
        time.sleep(0.3)
        ticks: list[float] = []
        stop = threading.Event()

        def tick() -> None:
            while not stop.is_set():
                ticks.append(time.monotonic())
                time.sleep(0.05)

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        start = time.monotonic()
        store.reach()  # the ping gives up within connect_s: a fresh connection answers
        took = time.monotonic() - start
        stop.set()
        ticker.join()
        assert took < HOLD_S / 2, f"the ping waited {took:.1f} s for the end of an answer"
        gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
        assert max(gaps, default=0.0) < 1.0, f"another thread stood still {max(gaps):.1f} s"
    finally:
        store.close()
