"""The drift baselines as the store holds them, kept current from the daemon's analysis thread.

A baseline is stored once it is complete (and each time a new one completes). While it is in force, its
reference goes on learning from in-control observations (see `Baseline.absorb`) and is stored again once it has
learned more than REFERENCE_SAVE_GROWTH of what is stored: a restart or a fail-over starts from it, and stores
are geometrically spaced, so a stream's reference is stored a few dozen times on its way to the caps. On a crash,
at most that share of what was learned is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from monitor.drift import Baseline, DriftEngine
from monitor.store.drift_repo import DriftRepository

REFERENCE_SAVE_GROWTH = 0.1  # a reference that learned this share more than what is stored is stored again

Pair = tuple[str, str]  # canary, target


def _reference_size(b: Baseline) -> int:
    """How much a baseline's reference holds: its rate counts, continuous values and category counts."""
    return (sum(r[1] for r in b.rates.values()) + sum(len(v) for v in b.values.values())
            + sum(sum(c.values()) for c in b.categories.values()))


class StoredBaselines:
    """Per canary x target: the stored baseline row in force, whether its complete baseline is stored (`ready`),
    and how much of its learned reference is. It reads and writes the engine's baselines, so it is used as the
    engine is: one call at a time (Analysis runs both on its analysis thread once started)."""

    def __init__(self, engine: DriftEngine, repo: DriftRepository):
        self.engine = engine
        self.repo = repo
        self.ready: set[Pair] = set()  # pairs whose complete baseline is stored
        self._installed: dict[Pair, str] = {}  # pair -> id of the baseline row in force
        self._stored: dict[Pair, int] = {}  # pair -> size of its reference as stored

    def load(self) -> dict[Pair, datetime]:
        """Install every stored baseline in the engine (at start-up); return the pairs whose baseline is still
        being collected, with when it began."""
        collecting: dict[Pair, datetime] = {}
        for row in self.repo.baselines():
            self.engine.set_baseline(Baseline.from_json(row["data"]))
            self._installed[(row["canary"], row["target"])] = row["id"]
            self._mark_stored((row["canary"], row["target"]))
            if self.engine.baseline(row["canary"], row["target"]).ready:
                self.ready.add((row["canary"], row["target"]))
            else:
                collecting[(row["canary"], row["target"])] = row["created_at"]
        return collecting

    def newer(self) -> Iterator[Pair]:
        """Install the baselines another process (the CLI, a replica) stored since, yielding each pair once its
        baseline is installed."""
        for row in self.repo.baselines():
            key = (row["canary"], row["target"])
            if self._installed.get(key) == row["id"]:
                continue
            self._installed[key] = row["id"]
            self.engine.set_baseline(Baseline.from_json(row["data"]))
            self._mark_stored(key)
            if self.engine.baseline(*key).ready:
                self.ready.add(key)
            else:  # a reset: the baseline that forms next is stored when complete
                self.ready.discard(key)
            yield key

    def superseded(self, canary: str, target: str) -> bool:
        """Whether another process stored a baseline for the pair since the one installed (`newer` installs it)."""
        stored = self.repo.active_baseline_id(canary, target)
        return stored is not None and stored != self._installed.get((canary, target))

    def save(self, canary: str, target: str, b: Baseline, source: str, note: str) -> None:
        """Store `b` as the baseline in force."""
        self._installed[(canary, target)] = self.repo.save_baseline(canary, target, b.to_json(), source=source,
                                                                    note=note)
        self._mark_stored((canary, target))

    def progress(self, canary: str, target: str) -> None:
        """Store the baseline once it is complete (and each time a new one completes), then as it learns."""
        b = self.engine.baseline(canary, target)
        if b.ready and (canary, target) not in self.ready:  # marked stored only once it is (else: tried again)
            self.save(canary, target, b, b.source, b.note)
            self.ready.add((canary, target))
        elif (canary, target) in self.ready:
            self.save_learned((canary, target), REFERENCE_SAVE_GROWTH)

    def save_learned(self, key: Pair, growth: float) -> None:
        """Store the baseline's reference once it has learned more than `growth` of what is stored."""
        size = _reference_size(self.engine.baseline(*key))
        bid = self._installed.get(key)
        if bid is None or size <= self._stored.get(key, 0) * (1 + growth):
            return
        self.repo.update_baseline(bid, self.engine.baseline(*key).to_json())
        self._stored[key] = size

    def _mark_stored(self, key: Pair) -> None:
        self._stored[key] = _reference_size(self.engine.baseline(*key))
