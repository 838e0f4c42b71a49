"""language: detect the completion's language with a light offline heuristic and compare it.

Scripts decide first (kana means Japanese, Han without kana Chinese, Hangul Korean, Cyrillic Russian, ...);
Latin-script text is scored by frequent function words plus a few telltale letters. No model, no network.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from monitor.checks.base import BaseCheck, Context, Verdict
from monitor.checks.fences import without_blocks
from monitor.domain import Observation


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOPWORDS: dict[str, frozenset[str]] = {
    "en": _words("the and of to is in that it for you with was are this be on not as have but they at "
                 "by from or an which can what will there their if would about has more when your been "
                 "were one all so also into its these how than we"),
    "es": _words("el la los las de que y en un una es por con para del se no al lo como más pero sus "
                 "le ya o este esta son entre cuando muy sin sobre también me hasta hay donde quien "
                 "desde todo nos durante todos uno les ni contra otros ese eso ante ellos porque"),
    "de": _words("der die das und ist nicht ein eine zu den mit sich des auf für im dem von es auch "
                 "als an werden aus er hat dass sie nach wird bei einer um am sind noch wie einem über "
                 "einen so zum war haben nur oder aber vor zur bis mehr durch kann ich wir"),
    "fr": _words("le la les de des et est un une du en que qui dans pour pas sur au avec ce il elle "
                 "ne se plus par sont ou mais nous vous leur aux été cette ces son sa ses être comme "
                 "fait tout on très aussi je"),
    "it": _words("il lo la gli le di che e è un una per non con del della sono si da al nel anche "
                 "come più ma questo questa dei alla gli ha essere nella tra"),
    "pt": _words("o a os as de que e do da em um uma para com não é por se na no mais dos das como "
                 "mas ao ele ela isso também são foi está pelo pela você"),
    "nl": _words("de het een en van is dat in te op niet zijn voor met die ook als er maar om aan "
                 "bij nog wordt worden heeft kan naar hij zij we deze dit"),
}
_LETTER_HINTS = {"es": "ñ¿¡", "de": "ßäöü", "fr": "çœèêàùâîôûëï", "pt": "ãõ"}
_SCRIPTS = {
    "han": r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff",
    "kana": r"\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f",
    "ko": r"\uac00-\ud7af\u1100-\u11ff\u3130-\u318f",
    "ru": r"\u0400-\u04ff",
    "ar": r"\u0600-\u06ff",
    "hi": r"\u0900-\u097f",
    "el": r"\u0370-\u03ff",
    "he": r"\u0590-\u05ff",
    "th": r"\u0e00-\u0e7f",
    "latin": r"A-Za-z\u00c0-\u024f",
}
_SCRIPT_RX = {k: re.compile(f"[{v}]") for k, v in _SCRIPTS.items()}
_WORD = re.compile(r"[a-zà-öø-ÿœ]+(?:'[a-zà-öø-ÿ]+)?")
_URL = re.compile(r"https?://\S+")

SUPPORTED = frozenset({"en", "es", "de", "fr", "it", "pt", "nl", "zh", "ja", "ko", "ru", "ar", "hi", "el",
                       "he", "th"})


def detect(text: str) -> tuple[str | None, float, str]:
    """Return (language code or None, confidence 0..1, how it was decided)."""
    body = _URL.sub(" ", without_blocks(text))
    counts = {k: len(rx.findall(body)) for k, rx in _SCRIPT_RX.items()}
    cjk = counts["han"] + counts["kana"]
    letters = sum(counts.values())
    if letters == 0:
        return None, 0.0, "no letters"
    if cjk >= 0.3 * letters:
        if counts["kana"] >= max(2, 0.05 * cjk):
            return "ja", counts["kana"] / cjk, f"{counts['kana']} kana of {cjk} CJK chars"
        return "zh", counts["han"] / letters, f"{counts['han']} Han chars, no kana"
    script, n = max(((k, v) for k, v in counts.items() if k not in ("han", "kana")), key=lambda kv: kv[1])
    if script != "latin":
        return script, n / letters, f"{n} {script} script chars"
    words = _WORD.findall(body.lower())
    scores: dict[str, float] = {}
    for w in words:
        for lang, stop in _STOPWORDS.items():
            if w in stop:
                scores[lang] = scores.get(lang, 0.0) + 1
    for lang, hints in _LETTER_HINTS.items():
        hits = sum(body.lower().count(c) for c in hints)
        if hits:
            scores[lang] = scores.get(lang, 0.0) + hits * 0.5
    if not scores:
        return None, 0.0, f"no function words among {len(words)} words"
    (best, top), *rest = sorted(scores.items(), key=lambda kv: -kv[1])
    confidence = top / sum(scores.values())
    return best, confidence, f"function-word score {top:g} vs {rest[0][1]:g} ({rest[0][0]})" if rest else \
        f"function-word score {top:g}"


class LanguageCheck(BaseCheck):
    """Pass when the detected language of the prose (code blocks ignored) is one of ``expect``.

    Texts with fewer than ``min_letters`` letters are too short to judge and yield no verdict.
    """

    type: Literal["language"]
    expect: str | list[str]
    min_letters: int = Field(default=12, ge=1)

    @field_validator("expect")
    @classmethod
    def _known(cls, v: str | list[str]) -> str | list[str]:
        codes = [v] if isinstance(v, str) else v
        unknown = [c for c in codes if c not in SUPPORTED]
        if not codes or unknown:
            raise ValueError(f"unsupported language code(s) {unknown or v!r}; supported: {sorted(SUPPORTED)}")
        return v


def language(spec: LanguageCheck, obs: Observation, ctx: Context) -> Verdict:
    """Check the language of the completion."""
    body = without_blocks(obs.call.text)
    letters = sum(ch.isalpha() for ch in body)
    if letters < spec.min_letters:
        return None, f"too short to detect the language ({letters} letters)"
    want = [spec.expect] if isinstance(spec.expect, str) else spec.expect
    lang, confidence, why = detect(body)
    if lang is None:
        return False, f"language not recognised: {why}"
    return lang in want, f"detected {lang} ({confidence:.2f}; {why}), expected {'/'.join(want)}"


__all__ = ["SUPPORTED", "LanguageCheck", "detect", "language"]
