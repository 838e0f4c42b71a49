"""The PostgreSQL pool keeps the connections the daemon's threads use at once, instead of churning sessions."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import event, text

from monitor.store import Store


def test_postgresql_sessions_are_kept_across_peaks_of_the_daemons_threads(pg_url: str) -> None:
    # Found by the PostgreSQL soak: the pool kept 5 connections while up to 7 threads used the store at once (the
    # event loop's executor and the drift thread), so every peak closed the extra connections on their return
    # and opened new ones at the next: ~30 new server sessions a minute, forked and torn down.
    store = Store(pg_url)
    store.migrate()
    store.engine.dispose()  # count from an empty pool
    opened: list[int] = []
    event.listen(store.engine, "connect", lambda *_: opened.append(1))
    threads = min(32, (os.cpu_count() or 1) + 4) + 1  # asyncio.to_thread's workers and the drift thread
    barrier = threading.Barrier(threads)

    def use() -> None:
        with store.engine.connect() as conn:  # every thread holds its connection at the same time
            barrier.wait(timeout=30)
            conn.execute(text("SELECT 1"))

    try:
        with ThreadPoolExecutor(threads) as pool:
            for _ in range(4):  # four peaks
                list(pool.map(lambda _: use(), range(threads)))
        assert len(opened) == threads, f"{len(opened)} sessions opened for {threads} threads over four peaks"
    finally:
        store.close()
