"""Drift events: what changed, by how much, since when, with evidence. Plain values, JSON round-trip."""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any

BEHAVIOUR = "behaviour"
MODEL = "model"
OPEN, RESOLVED, ACCEPTED = "open", "resolved", "accepted"
# Scripts written without spaces between words (Chinese, Japanese kana, Korean syllables, Thai; CJK punctuation and
# fullwidth forms): each character is a word of the diff, or a sentence was one word and a changed character showed
# it all replaced. Other text splits at whitespace, each word keeping the whitespace after it.
_UNSPACED = ("\u0e00-\u0e7f\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
             "\uff00-\uffef\U00020000-\U0003134f")
_WORDS = re.compile(f"[{_UNSPACED}]\\s*|[^\\s{_UNSPACED}]+\\s*")
_EVIDENCE_CHARS = 2000


@dataclass(slots=True)
class DriftEvent:
    """One detected change of one signal of one canary x target.

    ``kind`` is "behaviour" for completions and rates, "model" for a change of served model or fingerprint.
    ``statistic`` is the test statistic (for sequential tests the CUSUM level, with ``threshold`` beside);
    ``p_value`` is set for window tests, only the one that opened the event (a chart's event keeps the latest window
    test of its signal in ``detail["window"]``, ``monitor.decision``). ``first_obs_id``/``first_obs_at`` name the first observation after
    the estimated change point. There is at most one open event per canary x target x signal; its ``id`` is
    derived from those and the first observation, so rebuilding the engine from stored observations yields
    the same ids.
    """

    canary: str
    target: str
    signal: str
    kind: str
    test: str
    baseline_value: float | str | None
    current_value: float | str | None
    effect_size: float | None
    statistic: float | None
    p_value: float | None
    threshold: float | None
    baseline_n: int
    current_n: int
    first_obs_id: str | None
    first_obs_at: str | None
    opened_at: str
    state: str = OPEN
    resolved_at: str | None = None
    accepted_at: str | None = None
    note: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            key = f"{self.canary}\x00{self.target}\x00{self.signal}\x00{self.first_obs_id}\x00{self.opened_at}"
            self.id = hashlib.sha256(key.encode()).hexdigest()[:24]

    def to_json(self) -> dict[str, Any]:
        """Return the event as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DriftEvent:
        """Rebuild an event stored with ``to_json``."""
        return cls(**data)


@dataclass(frozen=True, slots=True)
class EventUpdate:
    """A change of one event: "opened", "updated" or "resolved" (accepting is done by the caller)."""

    action: str
    event: DriftEvent


def cut(text: str, limit: int = _EVIDENCE_CHARS) -> str:
    """`text`, or its first `limit` characters saying so: `… (cut: 2,000 of 5,312 characters shown)`."""
    return text if len(text) <= limit else f"{text[:limit]}… (cut: {limit:,} of {len(text):,} characters shown)"


def word_diff(before: str, after: str) -> str:
    """Word-level diff: unchanged words as is, removals as [-...-], insertions as {+...+}; of texts longer than
    2,000 characters their first 2,000, saying so at the end (a change further on is not in it)."""
    a = _WORDS.findall(before[:_EVIDENCE_CHARS])
    b = _WORDS.findall(after[:_EVIDENCE_CHARS])
    notes = [f"{_EVIDENCE_CHARS:,} of {len(text):,} {which} characters"
             for which, text in (("baseline", before), ("current", after)) if len(text) > _EVIDENCE_CHARS]
    out: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append("".join(a[i1:i2]))
            continue
        if op in ("replace", "delete"):
            out.append("[-" + "".join(a[i1:i2]).rstrip() + "-]" + _after(a[i2 - 1] if op == "delete" else " "))
        if op in ("replace", "insert"):
            out.append("{+" + "".join(b[j1:j2]).rstrip() + "+}" + _after(b[j2 - 1]))
    said = "".join(out).rstrip()
    return f"{said}… (cut: {' and '.join(notes)} compared)" if notes else said


def _after(last: str) -> str:
    """What follows a change's closing marker, by the change's last word: a space where whitespace followed it, and
    nothing where none did (in text without spaces: `今天天气[-很-] {+不+}好`)."""
    return " " if last != last.rstrip() else ""


def evidence(baseline_text: str, current_text: str) -> dict[str, Any]:
    """Build the evidence block: representative completions and their word-level diff, each text cut at 2,000
    characters saying so (`cut`)."""
    return {
        "baseline_completion": cut(baseline_text),
        "current_completion": cut(current_text),
        "diff": word_diff(baseline_text, current_text),
    }
