"""Reasoning written in the answer's own text, inside ``<think>`` tags, told apart from the answer.

Reasoning models served without a reasoning parser (vLLM or SGLang without ``--reasoning-parser``, TGI, older
Ollama) stream their chain of thought in ``content``: ``<think>...</think>`` and then the answer. A chat template
that opens the block itself (DeepSeek-R1's ends the prompt with ``<think>\\n``) leaves only ``</think>`` in the
text. Read as it came, the reasoning is the answer's text and its first token the answer's first.

The rule, as vLLM's ``deepseek_r1`` parser reads the same text: a block that opens the content (after
whitespace) is reasoning up to ``</think>``; content with no opening tag is reasoning up to a ``</think>`` with no
``<think>`` before it; the answer is what follows, without the whitespace that separates it. A block never closed
(an answer cut for length while the model was still thinking) is all reasoning: no answer. A ``<think>`` anywhere
else is the answer's text. Content with neither tag is the answer as it came: so a thought cut short before a
``</think>`` that only the template opened reads as the answer (nothing in the text says otherwise). Told that
the template opens the block (``always``), content is reasoning up to ``</think>`` whatever it holds, and all of it
when none comes, as vLLM's parser reads it.
"""

from __future__ import annotations

from typing import Literal

OPEN, CLOSE = "<think>", "</think>"
Kind = Literal["answer", "reasoning", "pending"]
_State = Literal["start", "opened", "unopened", "answer", "plain"]


class ThinkTags:
    """Reads content chunk by chunk and says of each whether it carries the answer, reasoning, or not yet known.

    Content with no opening tag is ``pending`` until a ``</think>`` makes it reasoning or the end (`answer`,
    `split`) leaves it the answer: a caller timing the first answer chunk keeps the time of the first pending
    chunk for that case. Each chunk is searched with the few characters before it, where a tag it ends could
    begin, so a stream costs its length, however long.
    """

    def __init__(self, *, always: bool = False) -> None:
        self._always = always  # the content starts inside a think block (the chat template opened it)
        self._parts: list[str] = []
        self._length = 0  # characters so far
        self._state: _State = "start"
        self._head = ""  # in state "start": the content so far without its leading whitespace
        self._carry = ""  # the last characters before the next chunk, where a tag it completes could begin
        self._answer_from = 0  # in state "answer": just after </think>
        self._answered = False  # in state "answer": whether text other than whitespace followed </think>

    def feed(self, delta: str) -> Kind:
        """Add a chunk of content; say what it carries."""
        self._parts.append(delta)
        window, offset = self._carry + delta, self._length - len(self._carry)  # offset: where window starts
        self._length += len(delta)
        self._carry = window[-(len(CLOSE) - 1):]
        if self._state == "start":
            self._head = (self._head + delta).lstrip()
            window, offset = self._head, self._length - len(self._head)
            if self._head.startswith(OPEN):
                self._state = "opened"
                window, offset = window[len(OPEN):], offset + len(OPEN)
            elif not OPEN.startswith(self._head):
                self._state = "opened" if self._always else "unopened"
            if self._state != "start":
                self._head = ""
        if self._state in ("opened", "unopened"):
            close = window.find(CLOSE)
            opened = window.find(OPEN) if self._state == "unopened" else -1
            if opened >= 0 and (close < 0 or opened < close):
                self._state = "plain"  # a <think> in the answer's text: no think block
            elif close >= 0:
                self._state, self._answer_from = "answer", offset + close + len(CLOSE)
                # the whitespace after </think> separates the answer from the block: the answer starts after it
                self._answered = bool(window[close + len(CLOSE):].strip())
                return "answer" if self._answered else "reasoning"
        if self._state == "answer" and not self._answered:
            self._answered = bool(delta.strip())
            return "answer" if self._answered else "reasoning"
        if self._state in ("answer", "plain"):
            return "answer"
        return "reasoning" if self._state == "opened" or self._always else "pending"

    @property
    def split(self) -> bool:
        """Whether a think block was taken off the content (pending chunks were reasoning)."""
        return self._state in ("opened", "answer") or (self._always and self._state == "start")

    def answer(self) -> str:
        """The answer: the content without its think block (all of it when there was none)."""
        if self._state == "opened" or (self._always and self._state == "start"):
            return ""
        text = "".join(self._parts)
        return text[self._answer_from:].lstrip() if self._state == "answer" else text


def answer_of(content: str, *, always: bool = False) -> str:
    """The answer of a whole content: without its leading think block."""
    tags = ThinkTags(always=always)
    tags.feed(content)
    return tags.answer()
