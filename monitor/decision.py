"""How an event's deciding test reads, the same in the `drift` table and in alert messages.

A window test decided with a p-value (`mann_whitney+ks p=0.0031`); a sequential chart with its level against its
threshold (`rank_cusum 14.2/11.8`, `bernoulli_cusum 6.1/5.3`). While a chart's event is open the window tests go
on testing its signal: the latest one's p-value is kept in the event's detail as ``window`` ({test, p_value}) and
shown after the chart's figure under its own test's name (`rank_cusum 14.2/11.8; mann_whitney+ks p=0.0031`),
never as the chart's. An event stored before that carried the window's p-value in its own ``p_value``: shown so,
it is labelled `window` (which window test gave it was not kept).
A zero-tolerance event's level and threshold say nothing (a declaration, not a chart: always 1/1): it reads as
its violations of the observations since it opened (`zero_tolerance 3 of 40`), from the event's detail
(``violations``, ``observations``) or, in an alert's evidence, from its current value (the violations' share)
and count; the stored figures are unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

WINDOW = "window"  # the detail (and alert evidence) key of the latest window test of a chart's open event
CHARTS = frozenset({"bernoulli_cusum", "rank_cusum", "zero_tolerance"})  # the tests whose figure is a level/threshold
ZERO = "zero_tolerance"  # the operator's declaration (monitor.drift.zero); not imported: this module stays light
BACK = "back"  # the detail (and alert evidence) key of what showed a resolved rate event back: {n, hits, rate}


def decision(e: Mapping[str, Any]) -> str:
    """The test that decided and its figure: a p-value for window tests, level/threshold for charts; `e` is an
    event (its ``detail`` holding ``window``) or an alert's evidence (``window`` at its top)."""
    test, p, stat, limit = e.get("test") or "", e.get("p_value"), e.get("statistic"), e.get("threshold")
    if test == ZERO and (seen := _violations(e)) is not None:
        return f"{test} {seen[0]} of {seen[1]}"
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


def _violations(e: Mapping[str, Any]) -> tuple[int, int] | None:
    """A zero-tolerance event's violations and observations since it opened: its detail's, else (an alert's
    evidence) its current value and count, whose share they are; None when neither is there."""
    d = e.get("detail") or {}
    k, n = d.get("violations"), d.get("observations")
    if isinstance(k, int) and isinstance(n, int):
        return k, n
    rate, n = e.get("current_value"), e.get("current_n")
    if isinstance(rate, int | float) and isinstance(n, int) and n > 0:
        return round(rate * n), n
    return None
