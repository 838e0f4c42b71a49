"""The think-block rule on whole texts, and the same answers however the text is cut into chunks."""

from __future__ import annotations

import pytest

from monitor.providers.thinktags import ThinkTags, answer_of

CASES = [
    ("<think>\nplan the answer\n</think>\n\n{\"a\": 1}", "{\"a\": 1}"),  # vLLM/SGLang without a reasoning parser
    ("\n<think>x</think>answer", "answer"),
    ("plan the answer\n</think>\n\nanswer", "answer"),  # DeepSeek-R1's template opened the block
    ("<think>\nstill thinking when max_tokens", ""),  # cut for length inside the block: no answer
    ("<think>\n\n</think>\n\n", ""),  # Qwen3 with thinking off, and nothing after
    ("<think>a <think> b</think>c", "c"),
    ("<think>a</think>b </think> c", "b </think> c"),  # only the leading block
    ("Wrap reasoning in <think> and </think> tags.", "Wrap reasoning in <think> and </think> tags."),  # not reasoning
    ("The answer is 42. <think>later</think>", "The answer is 42. <think>later</think>"),
    ("a plain answer", "a plain answer"),
    ("  \n", "  \n"),
    ("<thin", "<thin"),
    ("", ""),
]


@pytest.mark.parametrize(("content", "answer"), CASES)
def test_the_answer_of_a_whole_content(content: str, answer: str) -> None:
    assert answer_of(content) == answer


@pytest.mark.parametrize(("content", "answer"), CASES)
def test_chunks_cut_anywhere_give_the_same_answer_and_the_first_answer_chunk(content: str, answer: str) -> None:
    """Tags cut across chunks are found; the first chunk said to carry the answer is the one with its first
    character (none before: a caller times TTFT by it), or every chunk is pending when no think block came."""
    for step in (1, 2, 3, 5):
        tags = ThinkTags()
        chunks = [content[i: i + step] for i in range(0, len(content), step)]
        kinds = [tags.feed(c) for c in chunks]
        assert tags.answer() == answer, (step, chunks)
        if tags.split and answer:
            first = kinds.index("answer")
            assert "pending" not in kinds[first:]
            assert sum(map(len, chunks[: first + 1])) > len(content) - len(answer) >= sum(map(len, chunks[:first]))
        elif not tags.split:
            assert "reasoning" not in kinds


ALWAYS = [  # the chat template opened the block: reasoning up to </think>, whatever it holds
    ("plan the answer\n</think>\n\nanswer", "answer"),
    ("<think>\nplan</think>\n\nanswer", "answer"),
    ("a thought cut short by max_tokens", ""),
    ("it mentions <think> tags\n</think>\n\nanswer", "answer"),
    ("<thin", ""),
    ("", ""),
]


@pytest.mark.parametrize(("content", "answer"), ALWAYS)
def test_a_block_the_template_opened_is_reasoning_up_to_its_end(content: str, answer: str) -> None:
    assert answer_of(content, always=True) == answer
    for step in (1, 3):
        tags = ThinkTags(always=True)
        kinds = [tags.feed(content[i: i + step]) for i in range(0, len(content), step)]
        assert tags.answer() == answer and tags.split and "pending" not in kinds
