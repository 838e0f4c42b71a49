"""A whole-completion opening whose exact permutation test is deferred: decided later, on another thread.

The exact test that certifies an opening of the whole-completion test draws up to 2 / level relabellings (millions
at a fleet's level: seconds of CPU when a change is there, since it stops early only when it cannot reject). Inline,
a provider-wide model swap queued hundreds of those on the daemon's one analysis thread, and every other stream's
analysis waited behind them. A `DriftEngine(defer_certification=True)` instead records a `Certification` at the
round: the test still to run (`mmd.Exact`: kernel matrix, weights, statistic, level, the round's generator where the
screening left it) and the event the round would open, built from the window as it was then (change start,
evidence, sample, observation count, time). `run` needs nothing of the stream, so it can go on another thread while
the stream moves on; `DriftEngine.certified` then opens the event if it rejected, exactly as the inline test would
with the same draws.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from monitor.drift import mmd
from monitor.drift.state import _Open


@dataclass(eq=False, slots=True)
class Certification:
    """The exact test of one stream's whole-completion opening, still to run (`run`), and the event it opens."""

    canary: str
    target: str
    test: mmd.Exact
    opening: _Open  # the event the round would open, and its sample (p-value still the screening's)
    result: mmd.MmdResult | None = None  # once `run`: the exact test's; None if never run or it failed

    def __post_init__(self) -> None:
        # waiting (a model swap over a fleet queues one per canary), it holds no kernel matrix: built when it runs
        self.test.shed()

    def run(self, stop: Callable[[], bool] | None = None) -> None:
        """Draw the exact test's relabellings (seconds when a change is there; NumPy releases the GIL in them), on
        the kernel matrix built now and let go after. Touches no engine state, so it may run on any thread; `stop`
        gives it up (raises `mmd.Stopped`)."""
        try:
            self.result = mmd.certify(self.test, stop)
        finally:
            self.test.shed()

    @property
    def rejects(self) -> bool:
        """Whether the exact test rejected at its level: the event opens."""
        return self.result is not None and self.result.p_value <= self.test.alpha
