"""`counted`: a count and its noun agreeing, as the reload reply, check-config and the landing page print them."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.counted import counted


@pytest.mark.parametrize(("args", "text"), [
    ((1, "target"), "1 target"),
    ((0, "target"), "0 targets"),
    ((1, "canary"), "1 canary"),
    ((2, "canary"), "2 canaries"),
    ((1000, "pair"), "1,000 pairs"),
    ((1.0, "event", ".2g", "/day"), "1 event/day"),  # check-config said "1 events/day"
    ((0.9999, "event", ".2g", "/day"), "1 event/day"),  # as printed, not as computed
    ((0.086, "event", ".2g", "/day"), "0.086 events/day"),
    ((1728.0, "observation", ",.0f", "/day"), "1,728 observations/day"),
])
def test_the_noun_agrees_with_the_count_as_printed(args: tuple[Any, ...], text: str) -> None:
    assert counted(*args) == text

