"""Outages while a baseline forms: runs of failed calls held aside, counted if short, left out if long."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.drift.signals import SignalValue

CONTENT_FILTER = "content_filter"  # the provider answered, with a refusal: behaviour, never part of an outage


@dataclass(slots=True)
class OutageRuns:
    """The failed calls a forming baseline has not decided about yet, and those it left out as outages.

    A baseline describes how the provider behaves when it is up: an isolated failure (1 call in 50) is part of
    that and counts in the error rate, an hour of failures in a row is not, and counted it would teach the
    baseline an error rate that hides every later rise up to it. So a failed call is held aside while it is part
    of a run of failures in a row; when an answer ends the run, a run shorter than ``threshold`` (the setting
    ``baseline_outage_run``) is counted and a longer one is left out as an outage. A run still open when the
    baseline completes is judged the same way by its length so far. A content-policy error is the provider
    answering (with a refusal): it ends a run as an answer does. A failure of llm-monitor's own (no signals)
    neither extends nor ends one.

    Only the run's first ``threshold - 1`` failures are held (a run that reaches the threshold is left out
    whatever follows), so the state is bounded however long an outage lasts.
    """

    held: list[dict[str, SignalValue]] = field(default_factory=list)  # the open run's failures, while short
    run: int = 0  # failed calls in a row so far (0: no run open)
    left_out: int = 0  # failed calls left out as outages
    outages: int = 0  # runs left out

    def fail(self, signals: Mapping[str, SignalValue], threshold: int) -> None:
        """Hold a failed call aside as part of the open run."""
        self.run += 1
        if self.run < threshold:
            self.held.append(dict(signals))
        else:
            self.held.clear()

    def end(self, threshold: int) -> list[dict[str, SignalValue]]:
        """Close the open run (an answer came, or the baseline completes); return the failures to count."""
        counted = self.held if 0 < self.run < threshold else []
        if self.run >= threshold:
            self.left_out += self.run
            self.outages += 1
        self.held, self.run = [], 0
        return counted

    @property
    def idle(self) -> bool:
        """Tell whether there is nothing to store: no run open and nothing left out."""
        return not (self.run or self.held or self.left_out or self.outages)

    def to_json(self) -> dict[str, Any]:
        """Return the state as a JSON-ready dict."""
        return {"held": self.held, "run": self.run, "left_out": self.left_out, "outages": self.outages}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutageRuns:
        """Rebuild the state stored with ``to_json``."""
        return cls([dict(s) for s in data.get("held", [])], int(data.get("run", 0)), int(data.get("left_out", 0)),
                   int(data.get("outages", 0)))


def outage_failure(signals: Mapping[str, SignalValue]) -> bool | None:
    """Tell whether a failed call's signals can be part of an outage (None: they say nothing about the upstream,
    llm-monitor's own failure)."""
    if not signals:
        return None
    return signals.get("error_type") != CONTENT_FILTER
