"""language: offline detection among en, zh, es, de, fr, ja (and a few more scripts)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.checks import evaluate, parse_check
from monitor.checks.language import detect
from monitor.domain import CallResult, Observation

SAMPLES = {
    "en": "Photosynthesis is the process by which plants turn light into chemical energy, and it happens in "
          "the leaves.",
    "es": "La fotosíntesis es el proceso por el cual las plantas convierten la luz en energía química, y "
          "ocurre en las hojas.",
    "de": "Die Photosynthese ist der Prozess, bei dem Pflanzen Licht in chemische Energie umwandeln, und sie "
          "findet in den Blättern statt.",
    "fr": "La photosynthèse est le processus par lequel les plantes transforment la lumière en énergie "
          "chimique, et elle a lieu dans les feuilles.",
    "zh": "光合作用是植物把光能转化为化学能的过程，主要发生在叶子里。",
    "ja": "光合成とは、植物が光のエネルギーを化学エネルギーに変える仕組みで、主に葉で行われます。",
    "ko": "광합성은 식물이 빛 에너지를 화학 에너지로 바꾸는 과정입니다.",
    "ru": "Фотосинтез — это процесс, при котором растения превращают свет в химическую энергию.",
}


def obs(text: str) -> Observation:
    return Observation("c", "t", "sim", "m", datetime(2025, 1, 1, tzinfo=UTC), CallResult(text=text))


@pytest.mark.parametrize("lang", sorted(SAMPLES))
def test_detects_each_language(lang: str) -> None:
    assert detect(SAMPLES[lang])[0] == lang


@pytest.mark.parametrize("lang", ["en", "es", "de", "fr", "zh", "ja"])
def test_language_check_passes_and_fails(lang: str) -> None:
    spec = parse_check({"type": "language", "expect": lang})
    assert evaluate(spec, obs(SAMPLES[lang])).passed is True
    other = "en" if lang != "en" else "fr"
    result = evaluate(spec, obs(SAMPLES[other]))
    assert result.passed is False
    assert f"detected {other}" in result.detail


def test_code_blocks_are_ignored() -> None:
    text = SAMPLES["de"] + "\n```python\nfor item in the_list:\n    print(item, 'and', 'the', 'of', 'to')\n```"
    assert evaluate(parse_check({"type": "language", "expect": "de"}), obs(text)).passed is True


def test_any_of_several_languages() -> None:
    spec = parse_check({"type": "language", "expect": ["zh", "ja"]})
    assert evaluate(spec, obs(SAMPLES["ja"])).passed is True


@pytest.mark.parametrize(("text", "expected"), [("OK", None), ("", None), ("1234 5678 !!!! ???? 9999", None),
                                                ("zxqv wrtp plkj mnbv ghjk", False)])
def test_short_or_unrecognisable_text(text: str, expected: bool | None) -> None:
    result = evaluate(parse_check({"type": "language", "expect": "en"}), obs(text))
    assert result.passed is expected
    assert result.detail
