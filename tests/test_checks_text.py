"""Text checks: contains, not_contains, regex, equals, one_of, starts_with, length."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.checks import evaluate, parse_check
from monitor.domain import CallResult, Observation


def obs(text: str) -> Observation:
    return Observation("c", "t", "sim", "m", datetime(2025, 1, 1, tzinfo=UTC), CallResult(text=text))


def run(spec: dict, text: str) -> bool | None:
    return evaluate(parse_check(spec), obs(text)).passed


@pytest.mark.parametrize(
    ("spec", "text", "expected"),
    [
        ({"type": "contains", "value": "kill"}, "Use KILL -9 or pkill", True),
        ({"type": "contains", "value": "kill", "case_sensitive": True}, "Use KILL", False),
        ({"type": "contains", "value": ["pkill", "kill -9"]}, "try pkill python", False),
        ({"type": "contains", "value": ["pkill", "kill -9"], "mode": "any"}, "try pkill python", True),
        ({"type": "contains", "value": "kill"}, "", False),
        ({"type": "not_contains", "value": ["As an AI", "I cannot"]}, "Sure: use pkill.", True),
        ({"type": "not_contains", "value": ["As an AI", "I cannot"]}, "as an ai model I won't", False),
        ({"type": "not_contains", "value": "x"}, "", True),
        ({"type": "regex", "pattern": r"\bpkill\b"}, "run pkill -f app", True),
        ({"type": "regex", "pattern": r"^\d{4}-\d{2}-\d{2}$", "mode": "fullmatch"}, " 2024-02-29\n", True),
        ({"type": "regex", "pattern": r"^\d{4}-\d{2}-\d{2}$", "mode": "fullmatch"}, "It is 2024-02-29", False),
        ({"type": "regex", "pattern": "HELLO", "flags": ["i"]}, "hello", True),
        ({"type": "regex", "pattern": "[A-Z]", "negate": True}, "all lower case here", True),
        ({"type": "regex", "pattern": "[A-Z]", "negate": True}, "Not lower", False),
        ({"type": "regex", "pattern": r"^\s*[-*] ", "flags": ["m"], "min_count": 3, "max_count": 3},
         "- a\n- b\n- c", True),
        ({"type": "regex", "pattern": r"^\s*[-*] ", "flags": ["m"], "min_count": 3, "max_count": 3},
         "- a\n- b\n- c\n- d", False),
        ({"type": "regex", "pattern": "x"}, "\x00\ud800 broken", False),
        ({"type": "equals", "value": "Canberra"}, "  **Canberra.**\n", True),
        ({"type": "equals", "value": "Canberra"}, "Sydney", False),
        ({"type": "equals", "value": "Canberra", "case_sensitive": True}, "canberra", False),
        ({"type": "equals", "value": "New  York"}, "new york!", True),
        ({"type": "equals", "value": "a, b"}, "a,b", False),
        ({"type": "equals", "value": "x"}, "", False),
        ({"type": "equals", "value": "42"}, "４２", True),  # NFKC folds full-width digits
        ({"type": "equals", "value": "42"}, "٤٢", False),  # ... not Arabic-Indic ones (the number check reads them)
        ({"type": "one_of", "values": ["[Yes]", "[No]"]}, "yes", True),
        ({"type": "one_of", "values": ["positive", "negative", "neutral"]}, "Negative.", True),
        ({"type": "one_of", "values": ["positive", "negative"]}, "It is mostly positive", False),
        ({"type": "one_of", "values": ["a"]}, "", False),
        ({"type": "starts_with", "value": "Verdict:"}, "\n**Verdict:** guilty", True),
        ({"type": "starts_with", "value": "Verdict:", "ignore_markdown": False}, "**Verdict:** x", False),
        ({"type": "starts_with", "value": "Verdict:"}, "My verdict: guilty", False),
        ({"type": "starts_with", "value": "Verdict:"}, "", False),
        ({"type": "length", "unit": "words", "max": 5}, "one two three four five", True),
        ({"type": "length", "unit": "words", "max": 5}, "one two three four five six", False),
        ({"type": "length", "unit": "chars", "min": 3, "max": 3}, "  abc \n", True),
        ({"type": "length", "min": 1}, "   ", False),
    ],
)
def test_text_checks(spec: dict, text: str, expected: bool) -> None:
    assert run(spec, text) is expected


def test_detail_says_what_was_missing() -> None:
    result = evaluate(parse_check({"type": "contains", "value": ["a", "zz"]}), obs("abc"))
    assert result.passed is False
    assert "'zz'" in result.detail
    assert result.name == "contains"
    assert result.type == "contains"


def test_count_needs_search_mode() -> None:
    with pytest.raises(ValueError, match="min_count/max_count need mode 'search'"):
        parse_check({"type": "regex", "pattern": "x", "mode": "fullmatch", "min_count": 1})
