"""llm_judge: a pinned judge model grades the completion against a rubric.

The judge is injected (``judge(prompt) -> str``); this module only builds the prompt and parses the verdict.
A judge drifts too: pin its target and calibrate it on a frozen set before trusting its verdicts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import Field

from monitor.checks.base import BaseCheck, Context, Judge, Verdict, clip
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


class LlmJudgeCheck(BaseCheck):
    """Pass when the judge target answers ``VERDICT: PASS`` for the completion under ``rubric``.

    ``judge_target`` pins the target id the runner must use as the judge; no judge means no verdict.
    """

    type: Literal["llm_judge"]
    rubric: str = Field(min_length=1)
    judge_target: str = Field(min_length=1)
    include_prompt: bool = True


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
    try:
        reply = judge(build_prompt(spec, obs.call.text, ctx.messages))
    except Exception as e:  # the judge is an upstream call: its failure is data, not our crash
        return None, f"judge {spec.judge_target} failed: {type(e).__name__}: {clip(str(e), 100)}"
    verdict = parse_verdict(reply or "")
    if verdict is None:
        return None, f"unparseable judge verdict from {spec.judge_target}: {clip(reply or '', 80)!r}"
    return verdict, f"judge {spec.judge_target} (prompt v{PROMPT_VERSION}): {'PASS' if verdict else 'FAIL'}"


__all__ = ["PROMPT_VERSION", "LlmJudgeCheck", "build_prompt", "llm_judge", "parse_verdict"]
