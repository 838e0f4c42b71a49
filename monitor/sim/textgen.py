"""Simulated text: tokens, filler answers in a voice, and realistic refusals in the prompt's language.

One token is one whitespace-separated word with its punctuation attached; :func:`tokens` splits a text so that
``"".join(tokens(t)) == t.strip()``. Usage counts reported by the simulator are exactly these counts.
"""

from __future__ import annotations

import re

import numpy as np

from monitor.sim.scenario import Voice

_TOKEN = re.compile(r"\s*\S+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")
_STOP = {"what", "which", "when", "where", "with", "that", "this", "have", "does", "there", "your", "about",
         "would", "could", "should", "please", "tell", "explain", "from", "into", "their", "they", "will"}


def _words(text: str) -> list[str]:
    return text.split()


BUILTIN_VOICES: dict[str, Voice] = {
    "plain": Voice(
        words=_words("the a process system value file command result answer simple usually first then you can use "
                     "this that step it is to run check which signal option output input list time memory data "
                     "program when if and or not only also each way method call works returns"),
        openers=["Sure.", "Here is how.", "In short:"],
        closers=["That should do it.", "Hope this helps."],
        sentence_words=(7, 14),
    ),
    "formal": Voice(
        words=_words("accordingly the procedure respective mechanism therefore consequently one may utilise "
                     "applicable furthermore identifier termination operating system administrator privileges "
                     "subsequently recommended practice considerations approach ensure verify documentation "
                     "configuration environment resource process respectively nevertheless moreover shall "
                     "established parameters corresponding"),
        openers=["Certainly.", "The following outlines the recommended approach.", "To address this request:"],
        closers=["Please consult the official documentation for further details.",
                 "I trust this clarifies the matter."],
        sentence_words=(14, 26),
    ),
    "casual": Voice(
        words=_words("yeah so basically just grab the thing and kill it honestly super easy you totally can "
                     "gonna wanna pretty quick nice cool stuff like hit run it works no worries tbh okay "
                     "quick tip handy trick real fast"),
        openers=["Oh, easy one!", "Great question!", "Gotcha!"],
        closers=["Have fun!", "Let me know if you get stuck!"],
        sentence_words=(5, 10),
        echo_p=0.12,
    ),
    "markdown": Voice(
        words=_words("use the command to stop process run check list option flag signal output example "
                     "note step configure set value return code default alternatively via shell script tool"),
        openers=["## Overview", "**Short answer:**"],
        closers=["**Note:** test this first."],
        sentence_words=(6, 12),
        bullet_p=0.45,
    ),
}


def tokens(text: str) -> list[str]:
    """Split text into tokens (a word with its leading whitespace); joining them restores the text."""
    return _TOKEN.findall(text.strip())


def count_tokens(text: str) -> int:
    """Count the tokens of a text the way the simulator reports them in usage."""
    return len(text.split())


_THOUGHT = "Let me think about what is asked and check each step before I answer."


def thinking(n: int) -> list[str]:
    """Return ``n`` tokens of a model's reasoning (the same words each time: nothing checks them)."""
    words = _THOUGHT.split()
    return [(" " if i else "") + words[i % len(words)] for i in range(n)]


def filler(voice: Voice, n: int, prompt: str, rng: np.random.Generator) -> str:
    """Generate an answer of exactly ``n`` tokens in ``voice``, echoing some of the prompt's words."""
    echo = [w.lower() for w in _WORD.findall(prompt) if w.lower() not in _STOP]
    words: list[str] = []
    if voice.openers and n > 6:
        words += str(rng.choice(voice.openers)).split()
    while len(words) < n:
        length = int(rng.integers(voice.sentence_words[0], voice.sentence_words[1] + 1))
        sentence = []
        for _ in range(length):
            pool = echo if echo and rng.random() < voice.echo_p else voice.words
            sentence.append(str(pool[int(rng.integers(len(pool)))]))
        sentence[0] = sentence[0][:1].upper() + sentence[0][1:]
        sentence[-1] += "."
        if voice.bullet_p and rng.random() < voice.bullet_p:
            sentence[0] = "\n- " + sentence[0]
        words += sentence
    if voice.closers and n > 20:
        closer = str(rng.choice(voice.closers)).split()
        words = words[: max(0, n - len(closer))] + closer
    words = words[:n]
    if words and not words[-1].endswith((".", "!", ":")):
        words[-1] += "."
    return " ".join(words).replace(" \n", "\n").strip()


_REFUSALS: dict[str, list[str]] = {
    "en": ["I'm sorry, but I can't help with that request.",
           "I can't assist with that. If you have another question, I'm happy to help.",
           "Sorry, I'm not able to provide help with that."],
    "de": ["Es tut mir leid, aber dabei kann ich nicht helfen.",
           "Dabei kann ich Ihnen leider nicht weiterhelfen."],
    "fr": ["Je suis désolé, mais je ne peux pas vous aider avec cette demande.",
           "Désolé, je ne peux pas répondre à cette question."],
    "es": ["Lo siento, pero no puedo ayudar con esa solicitud.",
           "Lo siento, no puedo ayudarte con eso."],
    "it": ["Mi dispiace, ma non posso aiutarti con questa richiesta."],
    "pt": ["Desculpe, mas não posso ajudar com esse pedido."],
    "nl": ["Het spijt me, maar daar kan ik je niet mee helpen."],
}
_HEDGES: dict[str, str] = {
    "en": "I can't give step-by-step instructions for everything here, but in general:",
    "de": "Ich kann hier nicht alles im Detail erklären, aber grundsätzlich:",
    "fr": "Je ne peux pas tout détailler ici, mais en général :",
    "es": "No puedo dar todos los detalles aquí, pero en general:",
    "it": "Non posso dare tutti i dettagli qui, ma in generale:",
    "pt": "Não posso dar todos os detalhes aqui, mas em geral:",
    "nl": "Ik kan hier niet alles uitleggen, maar in het algemeen:",
}
_LANG_WORDS: dict[str, set[str]] = {
    "de": {"der", "die", "das", "und", "ich", "wie", "nicht", "ein", "eine", "ist", "mit", "kann", "einen"},
    "fr": {"le", "la", "les", "et", "je", "comment", "un", "une", "est", "pas", "avec", "pour", "des"},
    "es": {"el", "la", "los", "y", "yo", "cómo", "como", "un", "una", "es", "no", "con", "para", "puedo"},
    "it": {"il", "lo", "gli", "e", "io", "come", "un", "una", "è", "non", "con", "per", "posso"},
    "pt": {"o", "os", "as", "e", "eu", "como", "um", "uma", "é", "não", "com", "para", "posso"},
    "nl": {"de", "het", "een", "en", "ik", "hoe", "niet", "is", "met", "voor", "kan", "je"},
    "en": {"the", "and", "i", "how", "a", "is", "not", "with", "for", "can", "do", "to", "what"},
}


def detect_language(text: str) -> str:
    """Guess the prompt's language from common words (en, de, fr, es, it, pt, nl); default en."""
    words = re.findall(r"\w+", text.lower())
    scores = {lang: sum(w in vocab for w in words) for lang, vocab in _LANG_WORDS.items()}
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] > scores["en"] else "en"


def refusal_text(prompt: str, language: str, rng: np.random.Generator) -> str:
    """Pick a refusal in the prompt's language (``language="auto"``) or in English."""
    lang = detect_language(prompt) if language == "auto" else "en"
    options = _REFUSALS[lang]
    return options[int(rng.integers(len(options)))]


def hedge_text(prompt: str, language: str) -> str:
    """Return the opening of a partial refusal in the prompt's language."""
    return _HEDGES[detect_language(prompt) if language == "auto" else "en"]
