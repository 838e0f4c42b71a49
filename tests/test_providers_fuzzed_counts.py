"""Token counts the fuzzer found misread (of another type, negative, floats, null, in details of another type),
each through the daemon's own providers and a real loopback server: named in the failure, never summed or dropped."""

from __future__ import annotations

import json
from typing import Any

import pytest

from monitor.domain import ErrorType
from tests.support.replies import (
    FINISH,
    KINDS,
    answer,
    anthropic_stream,
    anthropic_whole,
    chunk,
    completion,
    events,
    reply,
)


@pytest.mark.parametrize(("usage", "words"), [
    ({"input_tokens": 7, "output_tokens": 3, "cache_creation_input_tokens": -2}, "input_tokens -2"),
    ({"input_tokens": 7, "output_tokens": 3, "cache_creation_input_tokens": ""}, "input_tokens ''"),
    ({"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": []}, "input_tokens []"),
    ({"input_tokens": True, "output_tokens": 3}, "input_tokens True"),
    ({"input_tokens": False, "output_tokens": 3, "cache_read_input_tokens": 2}, "input_tokens False"),
    ("7 tokens", "usage '7 tokens' is not an object"),
], ids=["negative-cache-write", "text-cache-write", "list-cache-read", "true", "false", "text"])
async def test_an_anthropic_answers_odd_token_counts_are_named_not_summed(usage: Any, words: str) -> None:
    """Input tokens are the sum of three counts: one that was not a count was read as 0 (`or 0`) or summed as
    it came (-2 took 2 tokens off, true counted 1), and the call stood with a wrong input count."""
    r = await answer("anthropic", False, anthropic_whole(usage))
    assert r.error_type == ErrorType.BAD_RESPONSE, (r.error_type, r.usage)
    assert r.error_message and words in r.error_message, r.error_message
    assert r.usage.input_tokens is None and r.text == "hi"


@pytest.mark.parametrize(("usage", "words"), [
    ({"output_tokens": "15"}, "output_tokens '15'"),
    ({"output_tokens": [15]}, "output_tokens [15]"),
    ({"output_tokens": 15, "cache_creation_input_tokens": -1}, "input_tokens -1"),
    ("15", "usage '15' is not an object"),
], ids=["text", "list", "negative-cache-write", "not-an-object"])
async def test_an_anthropic_streams_odd_token_counts_are_named_not_dropped(usage: Any, words: str) -> None:
    """A stream's counts that were not integers were dropped: the call stood with its output tokens unknown and
    nothing said why (the same answer whole was a bad_response)."""
    r = await answer("anthropic", True, anthropic_stream(usage))
    assert r.error_type == ErrorType.BAD_RESPONSE, (r.error_type, r.usage)
    assert r.error_message and words in r.error_message, r.error_message


async def test_an_anthropic_streams_counts_left_null_keep_the_earlier_ones() -> None:
    """message_delta may repeat the usage with counts it does not know as null: they are not counts to check."""
    r = await answer("anthropic", True, anthropic_stream(
        {"output_tokens": 15, "input_tokens": None, "cache_read_input_tokens": None, "server_tool_use": None},
        {"input_tokens": 7, "output_tokens": 1, "cache_read_input_tokens": 2, "cache_creation_input_tokens": 1}))
    assert r.ok, r.error_message
    assert (r.usage.input_tokens, r.usage.cached_input_tokens, r.usage.output_tokens) == (10, 2, 15)


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("kind", KINDS)
async def test_whole_token_counts_sent_as_floats_are_integers(kind: str, stream: bool) -> None:
    """`vet` takes 3.0 for 3 but handed on the float (3.0 == 3 read as nothing to change): a float in the
    integer columns, the trace's token attributes and the JSON API."""
    if kind == "openai":
        usage = {"prompt_tokens": 7.0, "completion_tokens": 3.0, "total_tokens": 10.0}
        if stream:
            raw = reply(events("openai", chunk(content="hi"), FINISH, {**FINISH, "choices": [], "usage": usage}),
                        ctype="text/event-stream")
        else:
            raw = reply(json.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "usage": usage,
                                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                                 "finish_reason": "stop"}]}).encode())
    else:
        usage = {"input_tokens": 7.0, "output_tokens": 3.0}
        raw = anthropic_stream(usage, usage) if stream else anthropic_whole(usage)
    r = await answer(kind, stream, raw)
    assert r.ok, r.error_message
    assert (r.usage.input_tokens, r.usage.output_tokens) == (7, 3)
    assert type(r.usage.input_tokens) is int and type(r.usage.output_tokens) is int, r.usage


@pytest.mark.parametrize(("usage", "words"), [
    ({"prompt_tokens": True, "completion_tokens": 3, "total_tokens": 4}, "input_tokens True"),
    ({"prompt_tokens": 7, "completion_tokens": False, "total_tokens": 7}, "output_tokens False"),
    ({"prompt_tokens": "7", "completion_tokens": 3, "total_tokens": 10}, "input_tokens '7'"),
], ids=["true", "false", "text"])
async def test_a_whole_openai_answers_counts_are_read_as_they_came(usage: Any, words: str) -> None:
    """The SDK's usage model takes counts leniently when the whole usage fits it: true was read as 1 token and
    false as 0, and the call stood (the same counts streamed were named as not counts)."""
    r = await answer("openai", False, completion(usage=usage))
    assert r.error_type == ErrorType.BAD_RESPONSE, (r.error_type, r.usage)
    assert r.error_message and words in r.error_message, r.error_message


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(("usage", "words"), [
    ({"prompt_tokens": 7, "completion_tokens": 3, "prompt_tokens_details": [2]},
     "usage.prompt_tokens_details [2] is not an object"),
    ({"prompt_tokens": 7, "completion_tokens": 3, "completion_tokens_details": "0"},
     "usage.completion_tokens_details '0' is not an object"),
], ids=["cached", "reasoning"])
async def test_openai_token_details_of_another_type_are_named(stream: bool, usage: Any, words: str) -> None:
    """Details that were not an object left the cached or reasoning tokens unknown without a word."""
    raw = reply(events("openai", chunk(content="hi"), FINISH, {**FINISH, "choices": [], "usage": usage}),
                ctype="text/event-stream") if stream else completion(usage=usage)
    r = await answer("openai", stream, raw)
    assert r.error_type == ErrorType.BAD_RESPONSE, (r.error_type, r.usage)
    assert r.error_message == "malformed response: " + words
