"""How many relabellings the whole-completion test's exact permutation test draws, and which levels it can reach.

Kept apart from ``monitor.drift.mmd`` (NumPy) so that ``check-config`` can say a level is out of reach without
loading the analysis stack.
"""

from __future__ import annotations

import math

# The exact test's relabellings at most (about 5 us each on a busy 2-core machine: 10 s, paid when a change is
# there; without one it stops early). Its smallest p-value is 1 / (1 + this): a level below that is out of reach.
MAX_RELABELLINGS = 2_000_000


def exact_relabellings(alpha: float) -> int:
    """Return how many relabellings the exact test at level ``alpha`` draws at most: enough that a p-value
    (1 + exceedances) / (1 + relabellings) falls to ``alpha`` with one exceedance (2 / alpha, at least 1,000),
    capped at ``MAX_RELABELLINGS``."""
    return int(min(max(1000, math.ceil(2.0 / alpha)), MAX_RELABELLINGS))


def reachable(alpha: float) -> bool:
    """Whether the exact test can reject at ``alpha`` at all (with no exceedance among its relabellings)."""
    return 1.0 / (1 + exact_relabellings(alpha)) <= alpha


def floor() -> float:
    """The smallest p-value the exact test can return."""
    return 1.0 / (1 + MAX_RELABELLINGS)
