"""How an event's deciding test reads, the same in the `drift` table and in alert messages.

A window test decided with a p-value (`mann_whitney+ks p=0.0031`); a sequential chart with its level against its
threshold (`rank_cusum 14.2/11.8`, `bernoulli_cusum 6.1/5.3`). While a chart's event is open the window tests go
on testing its signal: the latest one's p-value is kept in the event's detail as ``window`` ({test, p_value}) and
shown after the chart's figure under its own test's name (`rank_cusum 14.2/11.8; mann_whitney+ks p=0.0031`),
never as the chart's. An event stored before that carried the window's p-value in its own ``p_value``: shown so,
it is labelled `window` (which window test gave it was not kept).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

WINDOW = "window"  # the detail (and alert evidence) key of the latest window test of a chart's open event
CHARTS = frozenset({"bernoulli_cusum", "rank_cusum", "zero_tolerance"})  # the tests whose figure is a level/threshold
BACK = "back"  # the detail (and alert evidence) key of what showed a resolved rate event back: {n, hits, rate}


def decision(e: Mapping[str, Any]) -> str:
    """The test that decided and its figure: a p-value for window tests, level/threshold for charts; `e` is an
    event (its ``detail`` holding ``window``) or an alert's evidence (``window`` at its top)."""
    test, p, stat, limit = e.get("test") or "", e.get("p_value"), e.get("statistic"), e.get("threshold")
    charted = isinstance(stat, int | float) and isinstance(limit, int | float)
    if not charted or (isinstance(p, int | float) and test not in CHARTS):  # replay's window tests: threshold alpha
        return f"{test} p={p:.2g}" if isinstance(p, int | float) else test
    out = f"{test} {stat:.3g}/{limit:.3g}"
    later = e.get(WINDOW) or (e.get("detail") or {}).get(WINDOW)
    if isinstance(later, Mapping) and isinstance(later.get("p_value"), int | float):
        return f"{out}; {later.get('test') or WINDOW} p={later['p_value']:.2g}"
    if isinstance(p, int | float):  # stored before the window's test was kept apart from the chart's
        return f"{out}; {WINDOW} p={p:.2g}"
    return out
