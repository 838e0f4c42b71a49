"""What the per-pair series may be written and exported for: the canaries, targets and checks configured now.

Every series labelled by canary or target belongs to something the config declares: a canary x target pair, a
check of a pair, a target, a canary. A reload that removes one must take its series with it for good, yet work
started before the reload goes on after it: a call in flight, its checks, the drift analysis of observations
queued before it, the spend count of calls not stored yet. Rather than each of those asking whether its pair is
still configured, every per-pair collector asks the one :class:`Scope` on each write and each scrape; drift analysis
asks it before each observation (one of a pair no longer configured opens no event: monitor.analysis).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Declared:
    """One declaration: pairs (the daemon's own `_judge` and `_embeddings` ones too), checks, targets, canaries."""

    pairs: frozenset[tuple[str, str]] = frozenset()
    checks: frozenset[tuple[str, str, str]] = frozenset()
    targets: frozenset[str] = frozenset()
    canaries: frozenset[str] = frozenset()

    def pair(self, canary: str, target: str) -> bool:
        """Whether (canary, target) is configured."""
        return (canary, target) in self.pairs

    def check(self, canary: str, target: str, check: str) -> bool:
        """Whether the pair is configured with this check (by its result name)."""
        return (canary, target, check) in self.checks

    def target(self, target: str) -> bool:
        """Whether the target is configured."""
        return target in self.targets

    def canary(self, canary: str) -> bool:
        """Whether the canary is configured against some target (the daemon's own `_judge`, `_embeddings` too)."""
        return canary in self.canaries


class Scope:
    """The canaries, targets and checks whose series exist: those of the last declaration, nothing else.

    Empty until the first declaration (a standby declares nothing: it exports no per-pair series). A declaration
    replaces the one before as a whole, in one assignment, so a worker thread reading it meanwhile sees the old or
    the new one, never a mix. Collectors check a write against it under their own lock and drop the series the
    new one leaves out under that lock too (see `Metrics.declare`), so a write that raced a reload cannot
    survive it; they also filter each scrape by it.
    """

    def __init__(self) -> None:
        self.now = Declared()

    def declare(self, pairs: Iterable[tuple[str, str]], checks: Iterable[tuple[str, str, str]] = (),
                targets: Iterable[str] = ()) -> None:
        """Make these pairs, their checks and these targets (with those of the pairs) the ones configured."""
        declared = frozenset(pairs)
        self.now = Declared(declared, frozenset(c for c in checks if c[:2] in declared),
                            frozenset(targets) | {t for _, t in declared}, frozenset(c for c, _ in declared))


__all__ = ["Declared", "Scope"]
