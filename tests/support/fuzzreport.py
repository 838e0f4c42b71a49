"""The closing summary the project's fuzzers print (`wirefuzz`, `cfgfuzz`, `dumpfuzz`): outcomes counted, then
the problems by kind, or "no problems"."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping


def print_summary(header: str, outcomes: Mapping[str, int], problems: Counter[str]) -> None:
    """Print `header`, each outcome's count (sorted by name), then the problems' kinds, most frequent first."""
    print(f"\n{header}")
    for k, n in sorted(outcomes.items()):
        print(f"  {n:5d} {k}")
    print("problems:" if problems else "no problems")
    for k, n in problems.most_common():
        print(f"  {n:5d} {k}")
