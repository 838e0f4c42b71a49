"""Regular expressions from probe files, matched with a time limit.

A pattern with nested quantifiers (``(a|aa)+$``) can backtrack for hours on an ordinary completion, and Python's
``re`` holds the GIL while it does: the whole daemon (scheduler, /metrics, signal handling) would stop. The
``regex`` module accepts the same syntax, releases the GIL while matching (``concurrent``) and gives up after
``TIMEOUT_S``; the check then gives no verdict and says why. It is imported on first use (1.4 MB resident that
a daemon without patterns does not need).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import regex

TIMEOUT_S = 1.0  # per match (a whole search or scan of one completion)
FLAG_NAMES = {"i": "IGNORECASE", "m": "MULTILINE", "s": "DOTALL", "x": "VERBOSE"}


def _regex() -> Any:
    import regex

    return regex


def flags(letters: Iterable[str]) -> int:
    """The flags value of letters i, m, s, x."""
    value = 0
    for letter in letters:
        value |= int(getattr(_regex(), FLAG_NAMES[letter]))
    return value


# A pattern's length at most (a regex check's, a JSON Schema's): one of 1M characters took about a minute to compile
MAX_PATTERN = 10_000


class PatternTimeout(Exception):
    """A pattern did not finish matching a completion within TIMEOUT_S."""

    def __init__(self, pattern: str, length: int):
        super().__init__(f"pattern {pattern[:60]!r} did not finish on the {length:,}-character text within "
                         f"{TIMEOUT_S:g} s (catastrophic backtracking: nested quantifiers such as (a+)+)")


def compile_pattern(pattern: str, flags: int = 0) -> regex.Pattern[str]:
    """Compile `pattern` with ``re``-compatible syntax; raise ValueError naming the problem."""
    rx = _regex()
    try:
        return rx.compile(pattern, flags)  # type: ignore[no-any-return]
    except rx.error as e:
        raise ValueError(f"invalid regular expression {pattern!r}: {e}") from None


def search(rx: regex.Pattern[str], text: str) -> regex.Match[str] | None:
    try:
        return rx.search(text, concurrent=True, timeout=TIMEOUT_S)
    except TimeoutError:
        raise PatternTimeout(rx.pattern, len(text)) from None


def fullmatch(rx: regex.Pattern[str], text: str) -> regex.Match[str] | None:
    try:
        return rx.fullmatch(text, concurrent=True, timeout=TIMEOUT_S)
    except TimeoutError:
        raise PatternTimeout(rx.pattern, len(text)) from None


def count(rx: regex.Pattern[str], text: str) -> int:
    """The number of non-overlapping matches."""
    try:
        return sum(1 for _ in _iter(rx, text))
    except TimeoutError:
        raise PatternTimeout(rx.pattern, len(text)) from None


def _iter(rx: regex.Pattern[str], text: str) -> Iterator[regex.Match[str]]:
    return rx.finditer(text, concurrent=True, timeout=TIMEOUT_S)

