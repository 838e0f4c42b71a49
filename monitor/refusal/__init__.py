"""Refusal detection: did a completion refuse (fully or partly), and who says so.

Three layers: provider signals (content filter, refusal stop reason or field, content-policy errors), a fast
local classifier (numpy only, multilingual cue features plus hashed n-grams, weights in ``model.json``), and an
optional LLM judge that counts only after passing a frozen calibration set. ``detect`` and
``detect_observation`` use the shipped model without a judge; build a ``RefusalDetector`` to add one.
"""

from __future__ import annotations

from monitor.domain import ErrorType, FinishReason, Observation
from monitor.refusal.annotate import AnnotateError, annotate_jsonl
from monitor.refusal.detector import RefusalDetector
from monitor.refusal.judge import CalibrationReport, LLMJudge
from monitor.refusal.verdict import LABELS, Label, Layer, RefusalVerdict

__all__ = [
    "LABELS",
    "AnnotateError",
    "CalibrationReport",
    "LLMJudge",
    "Label",
    "Layer",
    "RefusalDetector",
    "RefusalVerdict",
    "annotate_jsonl",
    "detect",
    "detect_observation",
]

_DEFAULT = RefusalDetector()


def detect(
    text: str,
    *,
    prompt: str | None = None,
    finish_reason: FinishReason | str | None = None,
    refusal_text: str | None = None,
    error_type: ErrorType | str | None = None,
) -> RefusalVerdict:
    """Return whether ``text`` is a refusal (none|partial|full), with score and deciding layer."""
    return _DEFAULT.detect(
        text, prompt=prompt, finish_reason=finish_reason, refusal_text=refusal_text, error_type=error_type
    )


def detect_observation(obs: Observation, prompt: str | None = None) -> RefusalVerdict | None:
    """Return the verdict for an observation; None when the call failed for a reason other than content policy."""
    return _DEFAULT.detect_observation(obs, prompt)
