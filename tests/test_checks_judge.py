"""llm_judge (through an injected judge callable) and refusal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.checks import evaluate, parse_check
from monitor.checks.llm_judge import parse_verdict
from monitor.domain import CallResult, ErrorType, FinishReason, Observation

JUDGE = {"type": "llm_judge", "rubric": "The answer explains SIGTERM before SIGKILL.", "judge_target": "judge-4o"}
CANARY = {"messages": [{"role": "user", "content": "How do I kill a Python process?"}]}


def obs(text: str = "Send SIGTERM first, then SIGKILL.", refusal: str | None = None, **call: object) -> Observation:
    return Observation("c", "t", "sim", "m", datetime(2025, 1, 1, tzinfo=UTC), CallResult(text=text, **call),
                       refusal=refusal)


class Recorder:
    """A judge that records its prompts and answers from a script."""

    def __init__(self, reply: str):
        self.reply = reply
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.reply


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Covers both signals.\nVERDICT: PASS", True),
        ("Misses SIGTERM.\nVerdict: **FAIL**", False),
        ("verdict: fail ... on reflection\nVERDICT: PASS", True),
        ("PASS", True),
        ("no", False),
        ("It depends on the rubric.", None),
        ("", None),
    ],
)
def test_parse_verdict(reply: str, expected: bool | None) -> None:
    assert parse_verdict(reply) is expected


def test_judge_pass_and_prompt_contents() -> None:
    judge = Recorder("Good.\nVERDICT: PASS")
    r = evaluate(parse_check(JUDGE), obs(), judge=judge, canary=CANARY)
    assert r.passed is True
    assert "judge-4o" in r.detail
    [prompt] = judge.prompts
    assert "How do I kill a Python process?" in prompt
    assert "Send SIGTERM first" in prompt
    assert JUDGE["rubric"] in prompt


def test_judge_fail() -> None:
    assert evaluate(parse_check(JUDGE), obs("Just reboot."), judge=Recorder("VERDICT: FAIL")).passed is False


def test_judge_picked_by_pinned_target_from_a_mapping() -> None:
    judges = {"judge-4o": Recorder("VERDICT: PASS"), "other": Recorder("VERDICT: FAIL")}
    assert evaluate(parse_check(JUDGE), obs(), judge=judges).passed is True
    r = evaluate(parse_check({**JUDGE, "judge_target": "missing"}), obs(), judge=judges)
    assert r.passed is None
    assert "no judge available for target 'missing'" in r.detail


def test_no_judge_unparseable_and_failing_judge_give_no_verdict() -> None:
    spec = parse_check(JUDGE)
    assert evaluate(spec, obs()).passed is None
    unclear = evaluate(spec, obs(), judge=Recorder("Hard to say."))
    assert unclear.passed is None
    assert "unparseable" in unclear.detail

    def broken(prompt: str) -> str:
        raise TimeoutError("judge timed out")

    failed = evaluate(spec, obs(), judge=broken)
    assert failed.passed is None
    assert "TimeoutError" in failed.detail


@pytest.mark.parametrize(
    ("expect", "partial_as", "o", "expected"),
    [
        ("answered", "refused", obs(refusal="none"), True),
        ("answered", "refused", obs(refusal="full"), False),
        ("answered", "refused", obs(refusal="partial"), False),
        ("answered", "answered", obs(refusal="partial"), True),
        ("refused", "refused", obs(refusal="full"), True),
        ("refused", "refused", obs(refusal="none"), False),
        ("refused", "refused", obs("", refusal_text="I can't help with that."), True),
        ("refused", "refused", obs("", finish_reason=FinishReason.CONTENT_FILTER), True),
        ("refused", "refused", obs("", error_type=ErrorType.CONTENT_FILTER, http_status=400), True),
        ("refused", "refused", obs("", error_type=ErrorType.TIMEOUT), None),
        ("answered", "refused", obs("Sure."), None),
    ],
)
def test_refusal(expect: str, partial_as: str, o: Observation, expected: bool | None) -> None:
    spec = parse_check({"type": "refusal", "expect": expect, "partial_counts_as": partial_as})
    assert evaluate(spec, o).passed is expected


CALIBRATED = {**JUDGE, "recheck_every": 3, "calibration": [
    {"answer": "Send SIGTERM, wait, then SIGKILL.", "pass": True},
    {"answer": "Reboot the machine.", "pass": False},
    {"answer": "kill -9 right away.", "pass": False}]}


class Grader:
    """A judge that grades by reading the answer (PASS when it mentions SIGTERM), or answers `drifted` blindly."""

    def __init__(self) -> None:
        self.drifted: str | None = None
        self.calls = 0

    def __call__(self, prompt: str) -> str:
        self.calls += 1
        if self.drifted is not None:
            return self.drifted
        answer = prompt.split("[ANSWER]", 1)[1].split("[RUBRIC]", 1)[0]
        return "VERDICT: PASS" if "SIGTERM" in answer else "VERDICT: FAIL"


def test_a_calibrated_judge_counts_and_is_checked_again_every_recheck_every_uses() -> None:
    from monitor.checks.llm_judge import JudgeGates

    spec, judge, gates = parse_check(CALIBRATED), Grader(), JudgeGates()
    results = [evaluate(spec, obs(text), judge=judge, canary=CANARY, gates=gates).passed
               for text in ("Send SIGTERM first.", "Just reboot.", "SIGTERM then SIGKILL.")]
    assert results == [True, False, True] and judge.calls == 3 + 3  # calibrated once, then three verdicts
    evaluate(spec, obs(), judge=judge, canary=CANARY, gates=gates)
    assert judge.calls == 3 + 3 + 3 + 1  # the fourth use re-ran the calibration first


def test_a_drifted_judge_gives_no_verdict_until_it_agrees_again() -> None:
    """A judge that starts failing everything would turn check:NAME into a false drift event on the watched
    target: it fails its calibration instead, and the check gives no verdict."""
    from monitor.checks.llm_judge import JudgeGates

    spec, judge, gates = parse_check(CALIBRATED), Grader(), JudgeGates()
    judge.drifted = "VERDICT: FAIL"
    for _ in range(3):
        r = evaluate(spec, obs(), judge=judge, canary=CANARY, gates=gates)
        assert r.passed is None and ("not trusted: it agreed on 0 of 3 calibration answers (needs 100%; the other 2 "
                                     "were not asked once it could not reach that)") in r.detail
    assert judge.calls == 1  # its first answer was wrong: 100% was out of reach, the rest were not asked
    judge.drifted = None  # the provider fixed it: the next calibration trusts it again
    assert evaluate(spec, obs(), judge=judge, canary=CANARY, gates=gates).passed is True
    lenient = parse_check({**CALIBRATED, "min_agreement": 0.6})
    judge.drifted = "VERDICT: FAIL"
    assert evaluate(lenient, obs(), judge=judge, canary=CANARY, gates=JudgeGates()).passed is False


def test_a_judge_that_is_down_or_hangs_costs_one_call_and_holds_up_only_its_own_checks() -> None:
    # A judge target down had every calibration answer asked (a minute each when it hangs), under one lock that
    # every llm_judge check of every judge waited on.
    import threading

    from monitor.checks.llm_judge import JudgeGates

    gates, release, calls = JudgeGates(), threading.Event(), []

    def hanging(prompt: str) -> str:
        calls.append(prompt)
        release.wait(30)  # a hang guard, not a measurement
        raise TimeoutError("no answer")

    stuck = threading.Thread(target=evaluate, args=(parse_check(CALIBRATED), obs()),
                             kwargs={"judge": hanging, "canary": CANARY, "gates": gates})
    stuck.start()
    try:
        other = parse_check({**CALIBRATED, "judge_target": "judge-other"})
        assert evaluate(other, obs("Send SIGTERM first."), judge=Grader(), canary=CANARY, gates=gates).passed is True
    finally:
        release.set()
        stuck.join(30)
    r = evaluate(parse_check(CALIBRATED), obs(), judge=hanging, canary=CANARY, gates=gates)
    assert r.passed is None and "agreed on 0 of 3" in r.detail
    assert len(calls) == 1  # one call failed, agreement out of reach: not asked again before recheck_every uses


def test_calibration_needs_both_verdicts() -> None:
    with pytest.raises(Exception, match="at least one answer that passes and one that fails"):
        parse_check({**JUDGE, "calibration": [{"answer": "Send SIGTERM.", "pass": True}]})
    with pytest.raises(Exception, match="verdict"):
        parse_check({**JUDGE, "calibration": [{"answer": "Send SIGTERM.", "verdict": True}]})  # `pass`, not verdict


def test_a_calibration_under_way_when_the_standings_are_cleared_is_not_kept() -> None:
    # A reload clears the standings (the judge's model may have changed); a calibration of the old model that ends
    # after it must not stand for the new one until recheck_every uses.
    import threading

    from monitor.checks.llm_judge import JudgeGates

    gates, started, release = JudgeGates(), threading.Event(), threading.Event()
    grader = Grader()

    def slow(prompt: str) -> str:
        started.set()
        release.wait(30)  # a hang guard, not a measurement
        return grader(prompt)

    spec = parse_check(CALIBRATED)
    under_way = threading.Thread(target=evaluate, args=(spec, obs()),
                                 kwargs={"judge": slow, "canary": CANARY, "gates": gates})
    under_way.start()
    assert started.wait(30)
    gates.clear()
    release.set()
    under_way.join(30)
    calls = grader.calls
    evaluate(spec, obs(), judge=grader, canary=CANARY, gates=gates)
    assert grader.calls == calls + 3 + 1  # calibrated again (three answers), then the verdict
