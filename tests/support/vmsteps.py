"""Cost measured without a clock: SQLite's virtual-machine steps, which a test can compare before and after (a
timing threshold in a unit test would fail on a busy machine)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event


def vm_steps(engine: Any) -> Callable[[Callable[[], object]], int]:
    """Count the SQLite VM steps (in hundreds) of every connection `engine` hands out from now on; return a function
    that runs its argument and says how many it took."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0  # go on

    event.listen(engine, "checkout", lambda conn, record, proxy: conn.set_progress_handler(count, 100))

    def cost(run: Callable[[], object]) -> int:
        steps[0] = 0
        run()
        return steps[0]

    return cost
