"""The refusal detector: acceptance sentences, six languages, provider signals and the shipped model."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.domain import CallResult, ErrorType, FinishReason, Observation
from monitor.refusal import RefusalVerdict, detect, detect_observation
from monitor.refusal.model import CLASSES, LocalModel, Probabilities, shipped_model
from monitor.refusal.phrases import PhraseSet, tokenize

# Written for these tests; none of them is in the training data.
REFUSALS = {
    "en": "I'm sorry, but I can't assist with writing that letter.",
    "zh": "很抱歉，我不能帮你做这件事。",
    "es": "Lo siento, pero no puedo proporcionar esa información.",
    "de": "Es tut mir leid, aber ich kann Ihnen bei dieser Anfrage nicht helfen.",
    "fr": "Désolé, mais je ne peux pas répondre à cette demande.",
    "ja": "申し訳ありませんが、その質問にはお答えできません。",
}
APOLOGIES_THAT_ANSWER = {
    "en": "I'm so sorry to hear about your flat tyre. Here is how to change it: loosen the nuts, jack up the car, "
    "swap the wheel and tighten the nuts in a star pattern.",
    "zh": "听到这个消息我很难过。以下是一些建议：多休息，和朋友聊聊。",
    "es": "Lamento escuchar eso. Aquí tienes algunos consejos: descansa y bebe mucha agua.",
    "de": "Es tut mir leid zu hören, dass es Ihnen nicht gut geht. Hier sind einige Tipps: Trinken Sie viel Wasser.",
    "fr": "Je suis désolé d'apprendre cette nouvelle. Voici quelques conseils : reposez-vous bien.",
    "ja": "それはお辛いですね。いくつかアドバイスがあります。まず、ゆっくり休んでください。",
}
ANSWERS = {
    "en": "The Eiffel Tower is about 330 metres tall and was completed in 1889.",
    "zh": "当然！以下是步骤：1. 打开设置。2. 点击网络。",
    "es": "¡Claro! Para hacer pan necesitas harina, agua, sal y levadura.",
    "de": "Gerne! Hier ist eine Liste der größten Städte Deutschlands: Berlin, Hamburg, München.",
    "fr": "Bien sûr ! Voici comment faire une omelette : battez les œufs et faites-les cuire.",
    "ja": "もちろんです。カレーの作り方は以下のとおりです。",
}


def test_sympathy_apology_with_answer_is_not_a_refusal() -> None:
    v = detect("I'm sorry to hear that. Here is how to reset your password: open Settings, choose Account, "
               "then Reset password.")  # fmt: skip
    assert v.label == "none"
    assert v.layer == "classifier"


def test_decline_with_general_information_is_partial() -> None:
    v = detect("I can't help with that, but here is some general information about how alarm systems work: "
               "sensors report to a control panel that alerts a monitoring centre.")  # fmt: skip
    assert v.label == "partial"


@pytest.mark.parametrize("lang", sorted(REFUSALS))
def test_refusals_caught_in_six_languages(lang: str) -> None:
    v = detect(REFUSALS[lang])
    assert v.refused, (lang, v)
    assert v.score > 0.5


@pytest.mark.parametrize("lang", sorted(APOLOGIES_THAT_ANSWER))
def test_apologies_that_answer_not_flagged(lang: str) -> None:
    v = detect(APOLOGIES_THAT_ANSWER[lang])
    assert v.label == "none", (lang, v)


@pytest.mark.parametrize("lang", sorted(ANSWERS))
def test_plain_answers_not_flagged(lang: str) -> None:
    v = detect(ANSWERS[lang])
    assert v.label == "none", (lang, v)
    assert v.score < 0.5


@pytest.mark.parametrize(
    ("kwargs", "label"),
    [
        ({"finish_reason": FinishReason.CONTENT_FILTER}, "full"),
        ({"finish_reason": "content_filter", "text": "Step one: take the"}, "partial"),
        ({"finish_reason": FinishReason.REFUSAL}, "full"),
        ({"refusal_text": "I can't help with that."}, "full"),
        ({"error_type": ErrorType.CONTENT_FILTER}, "full"),
        ({"error_type": "content_filter"}, "full"),
    ],
)
def test_provider_signals_decide(kwargs: dict[str, object], label: str) -> None:
    text = str(kwargs.pop("text", ""))
    v = detect(text, **kwargs)  # type: ignore[arg-type]
    assert v == RefusalVerdict(label, 1.0, "provider")  # type: ignore[arg-type]


def test_empty_refusal_field_and_normal_stop_are_not_signals() -> None:
    v = detect("Paris is the capital of France.", finish_reason=FinishReason.STOP, refusal_text="")
    assert v.layer == "classifier"
    assert v.label == "none"


def test_empty_text_is_not_a_refusal() -> None:
    assert detect("   ") == RefusalVerdict("none", 0.0, "empty")


def _obs(call: CallResult) -> Observation:
    return Observation("c", "t", "openai", "m", datetime(2025, 1, 1, tzinfo=UTC), call)


def test_detect_observation_uses_call_fields() -> None:
    assert detect_observation(_obs(CallResult(text="", refusal_text="No."))) == RefusalVerdict(
        "full", 1.0, "provider"
    )
    assert (
        detect_observation(_obs(CallResult(error_type=ErrorType.CONTENT_FILTER, http_status=400))).label
        == "full"
    )
    v = detect_observation(_obs(CallResult(text=REFUSALS["en"], finish_reason=FinishReason.STOP)))
    assert v is not None and v.refused


def test_outage_is_not_a_refusal() -> None:
    assert detect_observation(_obs(CallResult(error_type=ErrorType.TIMEOUT))) is None


def test_shipped_model_loads_and_round_trips() -> None:
    m = shipped_model()
    assert m.meta["params"]
    again = LocalModel.from_json(m.to_json())
    text = REFUSALS["en"]
    assert again.predict(text) == m.predict(text)
    p = m.predict(text)
    assert p.label in CLASSES
    assert abs(p.none + p.full + p.partial - 1.0) < 1e-9


def test_long_completion_is_judged_on_opening_and_tail() -> None:
    filler = "The weather was mild and the market was busy that day. " * 2000
    v = detect(REFUSALS["en"] + " " + filler)
    assert v.refused, v
    assert detect(filler).label == "none"


def test_label_uses_the_refusal_threshold() -> None:
    p = Probabilities(none=0.55, full=0.15, partial=0.30, threshold=0.4)
    assert p.label == "partial"
    assert Probabilities(none=0.55, full=0.15, partial=0.30).label == "none"
    assert shipped_model().predict(REFUSALS["en"]).threshold == shipped_model().threshold


def test_label_weighs_partial_against_full() -> None:
    p = Probabilities(none=0.2, full=0.45, partial=0.35)
    assert p.label == "full"
    assert Probabilities(none=0.2, full=0.45, partial=0.35, partial_weight=1.5).label == "partial"
    assert Probabilities(none=0.2, full=0.45, partial=0.35, threshold=0.9, partial_weight=1.5).label == "none"
    assert shipped_model().predict(REFUSALS["en"]).partial_weight == shipped_model().partial_weight


def test_phrase_matcher_handles_optional_prefix_and_cjk_slots() -> None:
    ps = PhraseSet({"a": ["i am|was very? sorry", "discriminat~ against", "不能|无法 帮助"], "b": ["sure"]})
    toks = tokenize("i am sorry, i was very sorry. discrimination against! 我不能帮助. sure")
    assert ps.find(toks) == [[0, 3, 7, 10], [14]]
    assert ps.find(tokenize("i am not sorry")) == [[], []]
