"""Acceptance tests of the drift replay on real recordings: LLMDrift GPT-4 March (0314) vs June (0613)."""

from __future__ import annotations

import json
import random

import pytest

from monitor.domain import Observation
from monitor.drift import DriftSettings, replay
from tests.support.data import LLMDRIFT, require

DATA = LLMDRIFT
LABELS = {"sensitive_questions": "answered", "prime_composite": "correct", "leetcode_easy": "directly_executable"}
FAST = DriftSettings(mmd_permutations=100, replay_max_texts=60)



@pytest.fixture(autouse=True)
def _data() -> None:
    require(DATA)


def _rows(task: str, version: str, limit: int | None = None) -> list[dict]:
    out = []
    with open(DATA / f"{task}.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["model_version"] != version:
                continue
            label = LABELS[task]
            out.append({"canary": task, "target": "gpt-4", "text": r["response"] or "",
                        "checks": {label: bool(r["labels"][label])}})
    return out[:limit] if limit else out


def _refused(obs: Observation) -> bool | None:
    """Refusal label from the authors' `answered` label (None for tasks without it)."""
    for c in obs.checks:
        if c.name == "answered":
            return None if c.passed is None else not c.passed
    return None


@pytest.fixture(scope="module")
def march() -> list[dict]:
    return [r for t in LABELS for r in _rows(t, "gpt-4-0314")]


def test_march_vs_june_opens_the_published_changes(march: list[dict]) -> None:
    june = [r for t in LABELS for r in _rows(t, "gpt-4-0613")]
    events = replay(march, june, FAST, refusal=_refused)
    got = {(e.canary, e.signal): e for e in events}
    refused = got[("sensitive_questions", "refused")]
    assert (refused.baseline_value, refused.current_value) == pytest.approx((0.79, 0.95))
    chars = got[("sensitive_questions", "output_chars")]
    assert chars.baseline_value == pytest.approx(652.4, abs=0.1) and chars.current_value == pytest.approx(141.4, abs=0.1)
    correct = got[("prime_composite", "check:correct")]
    assert (correct.baseline_value, correct.current_value) == pytest.approx((0.84, 0.511))
    pchars = got[("prime_composite", "output_chars")]
    assert pchars.baseline_value == pytest.approx(638.3, abs=0.1) and pchars.current_value == pytest.approx(3.9, abs=0.1)
    leet = got[("leetcode_easy", "check:directly_executable")]
    assert (leet.baseline_value, leet.current_value) == pytest.approx((0.52, 0.10))
    for e in events:
        assert e.kind == "behaviour" and e.state == "open" and e.p_value is not None and e.p_value <= 0.01
        assert e.evidence["baseline_completion"] and e.evidence["current_completion"] is not None
    assert "{+" in pchars.evidence["diff"] or "[-" in pchars.evidence["diff"]


def test_random_halves_of_march_open_at_most_one_event_in_20_seeds(march: list[dict]) -> None:
    by_task: dict[str, list[dict]] = {}
    for r in march:
        by_task.setdefault(r["canary"], []).append(r)
    by_task["prime_composite"] = random.Random(99).sample(by_task["prime_composite"], 400)  # keep it fast
    total = []
    for seed in range(20):
        rng = random.Random(seed)
        a, b = [], []
        for rows in by_task.values():
            rows = list(rows)
            rng.shuffle(rows)
            half = len(rows) // 2
            a += rows[:half]
            b += rows[half:]
        total += [(seed, e.canary, e.signal, e.p_value) for e in replay(a, b, FAST, refusal=_refused)]
    assert len(total) <= 1, total
