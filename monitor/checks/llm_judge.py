"""llm_judge: a pinned judge model grades the completion against a rubric.

The judge is injected (``judge(prompt) -> str``); this module builds the prompt, parses the verdict and keeps
the judge honest. A judge drifts too: with ``calibration`` (frozen answers whose verdict under the rubric is
known, at least one passing and one failing) its verdicts count only while it agrees with at least
``min_agreement`` of them, checked before its first verdict and again every ``recheck_every`` uses. An
untrusted judge gives no verdict (``passed`` None), so its drift cannot open a drift event on the watched
target. The trust state lives in a :class:`JudgeGates` the caller owns (one per daemon).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from monitor.checks.base import BaseCheck, Context, Judge, Verdict, clip, one_name_each
from monitor.domain import Observation

PROMPT_VERSION = "1"
_PROMPT = """You are grading one answer from an AI assistant against a rubric. Be strict and literal.

[PROMPT]
{prompt}

[ANSWER]
{answer}

[RUBRIC]
{rubric}

Think briefly, then end with exactly one final line: "VERDICT: PASS" if the answer meets every point of the
rubric, otherwise "VERDICT: FAIL"."""
_VERDICT = re.compile(r"verdict\s*[:=]?\s*[*_`\"']*\s*(pass|fail)\b", re.I)
_BARE = re.compile(r"^\W*(pass|fail|yes|no)\W*$", re.I)


class JudgeExample(BaseModel):
    """One calibration answer and whether it meets the rubric (``pass``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    answer: str = Field(min_length=1)
    passes: bool = Field(alias="pass")

    @model_validator(mode="before")
    @classmethod
    def _one_name_each(cls, data: Any) -> Any:
        one_name_each(cls, data)
        return data


class LlmJudgeCheck(BaseCheck):
    """Pass when the judge target answers ``VERDICT: PASS`` for the completion under ``rubric``.

    ``judge_target`` pins the target id the runner must use as the judge; no judge means no verdict.
    ``include_prompt`` shows the judge the canary's prompt beside the completion. ``calibration`` holds answers
    with known verdicts: the judge grades them before its first verdict and again every ``recheck_every`` uses,
    and while it gets fewer than ``min_agreement`` of them right its verdicts do not count (no verdict).
    """

    type: Literal["llm_judge"]
    rubric: str = Field(min_length=1)
    judge_target: str = Field(min_length=1)
    include_prompt: bool = True
    calibration: tuple[JudgeExample, ...] = ()
    min_agreement: float = Field(default=1.0, gt=0, le=1)
    recheck_every: int = Field(default=200, ge=1)

    @model_validator(mode="after")
    def _both_verdicts(self) -> LlmJudgeCheck:
        if self.calibration and len({ex.passes for ex in self.calibration}) < 2:
            raise ValueError("calibration needs at least one answer that passes and one that fails (a judge "
                             "that always says the same would pass it)")
        return self


@dataclass(slots=True)
class _Trust:
    agreed: int
    n: int
    trusted: bool
    asked: int
    uses: int = 0


class JudgeGates:
    """Whether each calibrated llm_judge check may trust its judge now (thread-safe; checks run in threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[Any, threading.Lock] = {}
        self._state: dict[Any, _Trust] = {}
        self._cleared = 0  # how many times the standings were forgotten

    def clear(self) -> None:
        """Forget every judge's standing (a reload may have changed the judge target's model)."""
        with self._lock:
            self._state.clear()
            self._cleared += 1

    def check(self, spec: LlmJudgeCheck, judge: Judge, messages: list[dict]) -> str | None:
        """Return None when the judge may be trusted for `spec` now, else why not (calibrating when due)."""
        key = (spec.judge_target, spec.rubric, spec.include_prompt, spec.calibration)
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        # One calibration of a judge and rubric at a time (the checks that need it wait for its outcome rather than
        # repeat it); a judge that hangs holds up only its own checks.
        with lock:
            with self._lock:
                trust, cleared = self._state.get(key), self._cleared
            if trust is None or trust.uses >= spec.recheck_every:
                trust = _calibrate(spec, judge, messages)
                with self._lock:
                    if cleared == self._cleared:  # not kept past a clear() that came meanwhile (another model)
                        self._state[key] = trust
            trust.uses += 1
        if trust.trusted:
            return None
        unasked = (f"; the other {trust.n - trust.asked} were not asked once it could not reach that"
                   if trust.asked < trust.n else "")
        return (f"judge {spec.judge_target} not trusted: it agreed on {trust.agreed} of {trust.n} calibration "
                f"answers (needs {spec.min_agreement:.0%}{unasked}); no verdict")


def _calibrate(spec: LlmJudgeCheck, judge: Judge, messages: list[dict]) -> _Trust:
    n, need = len(spec.calibration), spec.min_agreement * len(spec.calibration)
    agreed = asked = 0
    for ex in spec.calibration:
        asked += 1
        with contextlib.suppress(Exception):  # an unreachable judge agrees with nothing
            agreed += parse_verdict(judge(build_prompt(spec, ex.answer, messages)) or "") == ex.passes
        if agreed + n - asked < need:  # out of reach: a judge that is down or hangs is not asked the rest
            break
    return _Trust(agreed, n, agreed >= need, asked)


def build_prompt(spec: LlmJudgeCheck, answer: str, messages: list[dict]) -> str:
    """Render the judge prompt for one completion."""
    shown = ""
    if spec.include_prompt:
        shown = "\n\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages) or "(not given)"
    return _PROMPT.format(prompt=shown or "(withheld)", answer=answer, rubric=spec.rubric)


def parse_verdict(reply: str) -> bool | None:
    """Return True/False from the judge's reply (last explicit verdict wins), or None when unparseable."""
    hits = _VERDICT.findall(reply)
    if hits:
        return hits[-1].lower() == "pass"
    lines = [ln for ln in reply.strip().splitlines() if ln.strip()]
    bare = _BARE.match(lines[-1]) if lines else None
    if bare:
        return bare.group(1).lower() in ("pass", "yes")
    return None


def _pick(judge: Judge | Mapping[str, Judge] | None, target: str) -> Judge | None:
    if isinstance(judge, Mapping):
        return judge.get(target)
    return judge


def llm_judge(spec: LlmJudgeCheck, obs: Observation, ctx: Context) -> Verdict:
    """Ask the pinned judge to grade the completion and parse its verdict."""
    judge = _pick(ctx.judge, spec.judge_target)
    if judge is None:
        return None, f"no judge available for target {spec.judge_target!r}"
    if spec.calibration:
        gates = ctx.gates if isinstance(ctx.gates, JudgeGates) else JudgeGates()  # none kept: calibrate now
        why = gates.check(spec, judge, ctx.messages)
        if why is not None:
            return None, why
    try:
        reply = judge(build_prompt(spec, obs.call.text, ctx.messages))
    except Exception as e:  # the judge is an upstream call: its failure is data, not our crash
        return None, f"judge {spec.judge_target} failed: {type(e).__name__}: {clip(str(e), 100)}"
    verdict = parse_verdict(reply or "")
    if verdict is None:
        return None, f"unparseable judge verdict from {spec.judge_target}: {clip(reply or '', 80)!r}"
    return verdict, f"judge {spec.judge_target} (prompt v{PROMPT_VERSION}): {'PASS' if verdict else 'FAIL'}"


__all__ = ["PROMPT_VERSION", "JudgeExample", "JudgeGates", "LlmJudgeCheck", "build_prompt", "llm_judge",
           "parse_verdict"]
