"""Numeric checks: number, tokens, latency, ttft."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.checks import evaluate, parse_check
from monitor.checks.number import extract_number
from monitor.domain import CallResult, Observation, Usage


def obs(text: str = "", **call: object) -> Observation:
    return Observation("c", "t", "sim", "m", datetime(2025, 1, 1, tzinfo=UTC), CallResult(text=text, **call))


@pytest.mark.parametrize(
    ("text", "how", "expected"),
    [
        ("347 * 29 = 10,063", "answer", 10063),
        ("First 3*4 = 12, then add 5.\nAnswer: 17", "answer", 17),
        ("We get \\boxed{-2.5} in the end; 7 steps", "answer", -2.5),
        ("[Answer] 59 (since 59 x 61 = 3599)", "answer", 59),
        ("The answer is **1,024**.", "answer", 1024),
        ("There are 3 apples and 4 pears, 7 fruits", "answer", 7),
        ("There are 3 apples and 4 pears, 7 fruits", "first", 3),
        ("  42.\n", "only", 42),
        ("It is 42", "only", None),
        (".5", "only", 0.5),  # its point is not a full stop to strip (it was read as 5)
        ("**-.25.**", "only", -0.25),
        ("．５", "only", 0.5),
        ("no digits here", "answer", None),
        ("1.5e3", "last", 1500),
    ],
)
def test_extract_number(text: str, how: str, expected: float | None) -> None:
    assert extract_number(text, how) == expected


@pytest.mark.parametrize(
    ("text", "how", "expected"),
    [
        # any script's decimal digits are the same number (deliberate: a multilingual answer is not a wrong one)
        ("４２", "only", 42),
        ("The answer is ٤٢.", "answer", 42),
        ("उत्तर ४२ है", "last", 42),
        # their own separators and signs: these were read as 234, 14, 42 (the sign lost) and 5
        ("١٬٢٣٤", "only", 1234),
        ("π ≈ ٣٫١٤", "answer", 3.14),
        ("－４２", "only", -42),
        ("合計は１，２３４．５円", "answer", 1234.5),
        ("６×７＝４２", "answer", 42),
        ("４２。", "only", 42),
        # a number touching the letters of scripts written without spaces: there was none
        ("答えは４２です", "answer", 42),
        ("6乘以7等于42。", "answer", 42),
        ("6乘以7等于42。", "first", 6),
        ("정답은 42입니다", "last", 42),
        # touching other letters, it is part of a word still
        ("x42 and 42abc", "last", None),
        ("答えはx42です", "last", None),
    ],
)
def test_extract_number_of_any_script(text: str, how: str, expected: float | None) -> None:
    assert extract_number(text, how) == expected


@pytest.mark.parametrize(
    ("spec", "text", "expected"),
    [
        ({"type": "number", "value": 10063}, "Step by step... so the result is 10,063.", True),
        ({"type": "number", "value": 10063}, "The answer is 10036.", False),
        ({"type": "number", "value": 3.1416, "tolerance": 0.001}, "pi is about 3.14159", True),
        ({"type": "number", "value": 1000, "rel_tolerance": 0.01}, "roughly 1,009", True),
        ({"type": "number", "value": 1000, "rel_tolerance": 0.01}, "roughly 1,011", False),
        ({"type": "number", "value": 5}, "I'd rather not say.", False),
        ({"type": "number", "value": 5}, "", False),
        ({"type": "number", "value": 42}, "６かける７は４２です。", True),
        ({"type": "number", "value": 42, "extract": "only"}, "٤٢", True),
        ({"type": "number", "value": 1234}, "١٬٢٣٤", True),
    ],
)
def test_number(spec: dict, text: str, expected: bool) -> None:
    assert evaluate(parse_check(spec), obs(text)).passed is expected


@pytest.mark.parametrize(
    ("usage", "spec", "expected"),
    [
        (Usage(output_tokens=420), {"min": 300, "max": 800}, True),
        (Usage(output_tokens=120), {"min": 300, "max": 800}, False),
        (Usage(output_tokens=900), {"max": 800}, False),
        (Usage(), {"max": 800}, None),
        (Usage(output_tokens=400, estimated=True), {"max": 800}, None),
        (Usage(output_tokens=400, estimated=True), {"max": 800, "allow_estimated": True}, True),
    ],
)
def test_tokens(usage: Usage, spec: dict, expected: bool | None) -> None:
    r = evaluate(parse_check({"type": "tokens", **spec}), obs("x", usage=usage))
    assert r.passed is expected
    if expected is None:
        assert r.detail


@pytest.mark.parametrize(
    ("kind", "call", "spec", "expected"),
    [
        ("latency", {"latency_s": 1.2}, {"max_s": 5}, True),
        ("latency", {"latency_s": 6.0}, {"max_s": 5}, False),
        ("latency", {"latency_s": 0.01}, {"min_s": 0.05}, False),
        ("latency", {}, {"max_s": 5}, None),
        ("ttft", {"ttft_s": 0.3, "stream": True}, {"max_s": 2}, True),
        ("ttft", {"ttft_s": 2.5, "stream": True}, {"max_s": 2}, False),
        ("ttft", {"latency_s": 1.0}, {"max_s": 2}, None),
    ],
)
def test_latency_and_ttft(kind: str, call: dict, spec: dict, expected: bool | None) -> None:
    assert evaluate(parse_check({"type": kind, **spec}), obs("x", **call)).passed is expected
