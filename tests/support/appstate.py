"""Read a running App's state in tests: a metric sample, and the daemon's own calls once they are stored."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from monitor.app import App


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """The value of one series (0 when it does not exist)."""
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def recorded(app: App, canary: str = "_judge") -> None:
    """Wait until the daemon's own calls under `canary` recorded so far are stored: none arriving for 0.3 s.

    They are recorded on the event loop after their results are used (a judge's verdict, an embedding)."""
    count, still, deadline = -1, 0.0, asyncio.get_running_loop().time() + 10
    while still < 0.3 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        now = len(app.store.observations(canary=canary, limit=1000))
        still = still + 0.05 if now == count else 0.0
        count = now
