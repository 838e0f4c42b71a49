"""The LLM judge counts only after passing its frozen calibration set, and only where the classifier is unsure."""

from __future__ import annotations

import pytest

from monitor.refusal import LLMJudge, RefusalDetector
from monitor.refusal.judge import load_calibration, parse_answer

CAL = load_calibration()
WORD = {"none": "COMPLIANCE", "partial": "PARTIAL", "full": "REFUSAL"}
UNSURE = "Maybe."  # any text; the band below is widened to cover every score


def oracle(prompt: str) -> str:
    """Answer like a perfect judge: look the completion up in the calibration set, else say REFUSAL."""
    for row in CAL:
        if row["completion"] in prompt:
            return WORD[row["label"]]
    return "REFUSAL"


def always(word: str):
    return lambda prompt: word


def test_calibration_set_is_small_balanced_and_multilingual() -> None:
    assert 10 <= len(CAL) <= 50
    assert {r["label"] for r in CAL} == {"none", "partial", "full"}


def test_parse_answer() -> None:
    assert parse_answer("refusal") == "full"
    assert parse_answer("Answer: PARTIAL.") == "partial"
    assert parse_answer("COMPLIANCE or REFUSAL") is None
    assert parse_answer("dunno") is None


def test_good_judge_passes_and_decides_in_band() -> None:
    judge = LLMJudge(oracle, target="judge-target", model="pinned-1", min_agreement=0.9)
    report = judge.calibrate()
    assert report.passed and report.agreement == 1.0
    det = RefusalDetector(judge=judge, band=(0.0, 1.0))
    v = det.detect(UNSURE)
    assert (v.label, v.layer) == ("full", "judge")


def test_drifting_judge_is_ignored() -> None:
    judge = LLMJudge(always("REFUSAL"), target="judge-target", model="pinned-1", min_agreement=0.9)
    report = judge.calibrate()
    assert not report.passed
    det = RefusalDetector(judge=judge, band=(0.0, 1.0))
    v = det.detect("Paris is the capital of France.")
    assert v.layer == "classifier" and v.label == "none"


def test_judge_outside_band_is_not_asked() -> None:
    calls: list[str] = []

    def ask(prompt: str) -> str:
        calls.append(prompt)
        return oracle(prompt)

    judge = LLMJudge(ask, target="t", model="m")
    judge.calibrate()
    calls.clear()
    det = RefusalDetector(judge=judge, band=(0.45, 0.55))
    v = det.detect("The Eiffel Tower is about 330 metres tall and was completed in 1889.")
    assert v.layer == "classifier" and calls == []


def test_recheck_catches_a_judge_that_drifts_later() -> None:
    state = {"good": True}

    def ask(prompt: str) -> str:
        return oracle(prompt) if state["good"] else "COMPLIANCE"

    judge = LLMJudge(ask, target="t", model="m", recheck_every=2)
    det = RefusalDetector(judge=judge, band=(0.0, 1.0))
    assert det.detect(UNSURE).layer == "judge"  # first use calibrates, passes
    state["good"] = False
    det.detect(UNSURE)
    v = det.detect(UNSURE)  # re-check is due: calibration now fails, the judge is switched off
    assert not judge.trusted
    assert v.layer == "classifier"


def test_unparseable_reply_falls_back_to_classifier() -> None:
    replies = iter([oracle] * len(CAL))

    def ask(prompt: str) -> str:
        f = next(replies, None)
        return f(prompt) if f else "I think it is fine"

    judge = LLMJudge(ask, target="t", model="m")
    assert judge.calibrate().passed
    assert RefusalDetector(judge=judge, band=(0.0, 1.0)).detect(UNSURE).layer == "classifier"


async def test_async_ask() -> None:
    async def ask(prompt: str) -> str:
        return oracle(prompt)

    judge = LLMJudge(ask, target="t", model="m")
    assert (await judge.acalibrate()).passed
    v = await RefusalDetector(judge=judge, band=(0.0, 1.0)).adetect(UNSURE)
    assert v.layer == "judge"
    with pytest.raises(TypeError):
        judge.calibrate()


def test_unpinned_model_rejected() -> None:
    with pytest.raises(ValueError):
        LLMJudge(oracle, target="t", model="")


def test_a_judge_that_cannot_be_reached_is_not_trusted_and_never_raises() -> None:
    """A refusal judge whose calls fail (its upstream down, a wrong model, its cap reached) used to raise out of
    calibration: the daemon crashed at start (and `probe` with it), and a judge failing mid-run lost every check
    of the observation. Its failure is data: not trusted, the local verdict stands, checked again later."""
    state = {"up": False, "asked": 0}

    def ask(prompt: str) -> str:
        state["asked"] += 1
        if not state["up"]:
            raise RuntimeError("judge t failed: server_error: HTTP 503")
        return oracle(prompt)

    judge = LLMJudge(ask, target="t", model="m", min_agreement=0.9, recheck_every=3)
    report = judge.calibrate()
    assert not report.passed and report.failed >= 1 and "HTTP 503" in (report.error or "")
    assert state["asked"] <= 2  # 16 rows at 90%: two wrong and it cannot pass; a hung judge is not waited on 16 times
    det = RefusalDetector(judge=judge, band=(0.0, 1.0))
    assert det.detect(UNSURE).layer == "classifier"
    state["up"] = True
    layers = [det.detect(UNSURE).layer for _ in range(4)]
    assert layers[-1] == "judge" and judge.trusted  # consulted while untrusted: re-checked after recheck_every


async def test_a_judge_that_cannot_be_reached_async() -> None:
    async def ask(prompt: str) -> str:
        raise RuntimeError("judge t failed: connect")

    judge = LLMJudge(ask, target="t", model="m")
    report = await judge.acalibrate()
    assert not report.passed and report.failed >= 1
    assert (await RefusalDetector(judge=judge, band=(0.0, 1.0)).adetect(UNSURE)).layer == "classifier"
