"""Answers of another shape the fuzzer found misread (an error type that is not text, a finish reason that is a
list, fields of another JSON type), each through the daemon's own providers and a real loopback server: a typed
failure whose message names the field's path and its value."""

from __future__ import annotations

import json
from typing import Any

import pytest

from monitor.domain import ErrorType
from tests.support.replies import FINISH, KINDS, answer, anthropic_events, chunk, completion, events, reply

ODD_TYPES = [["overloaded_error"], {"a": 1}, 5]


@pytest.mark.parametrize("odd", ODD_TYPES, ids=["list", "object", "number"])
@pytest.mark.parametrize("stream", [True, False])
async def test_an_anthropic_error_whose_type_is_not_text_still_types_the_call(stream: bool, odd: Any) -> None:
    """An error event (or a 200 body that is an error) whose `type` is a list used to raise TypeError out of
    complete() (the type looked up as a key); now the call is a server_error whose message shows the type."""
    error = {"type": "error", "error": {"type": odd, "message": "Overloaded"}}
    raw = reply(events("anthropic", error), ctype="text/event-stream") if stream else reply(json.dumps(error).encode())
    r = await answer("anthropic", stream, raw)
    assert r.error_type == ErrorType.SERVER_ERROR, (r.error_type, r.error_message)
    assert r.error_message == f"{json.dumps(odd)}: Overloaded"


@pytest.mark.parametrize("odd", ODD_TYPES, ids=["list", "object", "number"])
@pytest.mark.parametrize(("status", "expected"), [("429 Too Many Requests", ErrorType.RATE_LIMITED),
                                                  ("529 Overloaded", ErrorType.SERVER_ERROR),
                                                  ("401 Unauthorized", ErrorType.AUTH)])
async def test_an_anthropic_error_status_whose_body_has_an_odd_type_keeps_the_statuss_type(
        status: str, expected: ErrorType, odd: Any) -> None:
    """An error status whose body's `error.type` is not text used to become a bad_response (the type could not be
    joined to the message): a 429 was no longer a rate limit."""
    body = json.dumps({"type": "error", "error": {"type": odd, "message": "slow down"}}).encode()
    r = await answer("anthropic", True, reply(body, status=status))
    assert r.error_type == expected, (r.error_type, r.error_message)
    assert r.error_message == f"HTTP {status.split()[0]}: {json.dumps(odd)}: slow down"


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_finish_reason_that_is_a_list_is_named(kind: str, stream: bool) -> None:
    """A finish reason of a type that is no dictionary key (["stop"]) was looked up as one: the call failed as
    "malformed response: unhashable type: 'list'", naming neither the field nor the value."""
    if kind == "openai":
        finish = {**FINISH, "choices": [{"index": 0, "delta": {}, "finish_reason": ["stop"]}]}
        raw = reply(events("openai", chunk(content="hi"), finish), ctype="text/event-stream") if stream else \
            reply(json.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                              "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                           "finish_reason": ["stop"]}]}).encode())
    else:
        raw = reply(events("anthropic", {"type": "message_start", "message": {"id": "msg_1", "model": "m"}},
                           {"type": "message_delta", "delta": {"stop_reason": ["end_turn"]}},
                           {"type": "message_stop"}), ctype="text/event-stream") if stream else \
            reply(json.dumps({"id": "msg_1", "type": "message", "model": "m", "stop_reason": ["end_turn"],
                              "content": [{"type": "text", "text": "hi"}]}).encode())
    r = await answer(kind, stream, raw)
    assert r.error_type == ErrorType.BAD_RESPONSE
    assert r.error_message and "finish_reason ['" in r.error_message and "is not a name" in r.error_message, \
        r.error_message
    assert r.finish_reason is None and r.raw_finish_reason is None


OPENAI_STREAM_SHAPES = {
    "delta-list": ({"choices": [{"index": 0, "delta": ["hi"]}]}, "choices[0].delta ['hi'] is not an object"),
    "choice-text": ({"choices": ["hi"]}, "choices[0] 'hi' is not an object"),
    "choices-object": ({"choices": {"a": 1}}, "choices {'a': 1} is not a list"),
    "content-number": ({"choices": [{"index": 0, "delta": {"content": 5}}]}, "choices[0].delta.content 5 is not text"),
    "content-parts": ({"choices": [{"index": 0, "delta": {"content": [{"type": "text", "text": 5}]}}]},
                      "choices[0].delta.content[0].text 5 is not text"),
    "refusal-list": ({"choices": [{"index": 0, "delta": {"refusal": ["no"]}}]},
                     "choices[0].delta.refusal ['no'] is not text"),
    "tool-index-text": ({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": "0", "function": {}}]}}]},
                        "choices[0].delta.tool_calls[0].index '0' is not an integer"),
    "tool-args-object": ({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"name": "f", "arguments": {"a": 1}}}]}}]},
        "choices[0].delta.tool_calls[0].function.arguments {'a': 1} is not text"),
    "usage-list": ({"choices": [], "usage": [3, 2]}, "usage [3, 2] is not an object"),
}
ANTHROPIC_STREAM_SHAPES = {
    "delta-list": ({"type": "content_block_delta", "index": 0, "delta": ["hi"]},
                   "content_block_delta.delta ['hi'] is not an object"),
    "text-number": ({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 5}},
                    "content_block_delta.delta.text 5 is not text"),
    "json-list": ({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta",
                                                                        "partial_json": ["{"]}},
                  "content_block_delta.delta.partial_json ['{'] is not text"),
    "index-null": ({"type": "content_block_start", "index": None, "content_block": {"type": "tool_use", "name": "f"}},
                   "content_block_start has no index"),
    "event-list": ([1, 2], "event [1, 2] is not an object"),
    "block-text": ({"type": "content_block_start", "index": 0, "content_block": "text"},
                   "content_block_start.content_block 'text' is not an object"),
}
ANTHROPIC_WHOLE_SHAPES = {
    "content-object": ({"content": {"type": "text", "text": "hi"}}, "content {'type': 'text', 'text': 'hi'} is not"),
    "content-null": ({"content": None}, "the answer has no content"),
    "block-text": ({"content": ["hi"]}, "content[0] 'hi' is not an object"),
    "text-number": ({"content": [{"type": "text", "text": 5}]}, "content[0].text 5 is not text"),
    "answer-list": ([{"type": "text", "text": "hi"}], "the answer [{'type': 'text', 'text': 'hi'}] is not"),
}


def _shape_case(kind: str, stream: bool, odd: Any) -> bytes:
    if kind == "openai":
        return reply(events("openai", chunk(content="hi"), {**FINISH, **odd}, FINISH), ctype="text/event-stream")
    if stream:
        return anthropic_events(odd)
    body = {"id": "msg_1", "type": "message", "model": "m", "stop_reason": "end_turn",
            "content": [{"type": "text", "text": "hi"}]}
    return reply(json.dumps({**body, **odd} if isinstance(odd, dict) else odd).encode())


@pytest.mark.parametrize(("kind", "stream", "odd", "words"), [
    *[pytest.param("openai", True, *v, id=f"openai-stream-{k}") for k, v in OPENAI_STREAM_SHAPES.items()],
    *[pytest.param("anthropic", True, *v, id=f"anthropic-stream-{k}") for k, v in ANTHROPIC_STREAM_SHAPES.items()],
    *[pytest.param("anthropic", False, *v, id=f"anthropic-whole-{k}") for k, v in ANTHROPIC_WHOLE_SHAPES.items()],
])
async def test_a_field_of_another_json_type_is_named_with_its_value(kind: str, stream: bool, odd: Any,
                                                                     words: str) -> None:
    """A field of another JSON type failed the call with what Python said of the operation it broke ("'list'
    object has no attribute 'get'", "sequence item 0: expected str instance"): the message now gives the
    field's path in the answer and its value."""
    r = await answer(kind, stream, _shape_case(kind, stream, odd))
    assert r.error_type == ErrorType.BAD_RESPONSE, (r.error_type, r.error_message)
    assert r.error_message and r.error_message.startswith("malformed response: " + words), r.error_message



@pytest.mark.parametrize(("choices", "words"), [
    (["hi"], "choices[0] 'hi' is not an object"),
    ([[{"index": 0}]], "choices[0] [Choice(finish_reason=None, index=0"),  # the SDK made a list of choices
    ([{"index": 0, "message": "hi", "finish_reason": "stop"}], "choices[0].message 'hi' is not an object"),
    ([{"index": 0, "finish_reason": "stop"}], "choices[0].message None is not an object"),
    ([{"index": 0, "message": {"role": "assistant", "content": "", "tool_calls": {"a": 1}},
       "finish_reason": "tool_calls"}], "choices[0].message.tool_calls {'a': 1} is not a list"),
    ([{"index": 0, "message": {"role": "assistant", "tool_calls": ["f"]}, "finish_reason": "tool_calls"}],
     "choices[0].message.tool_calls[0] 'f' is not an object"),
    ([{"index": 0, "message": {"role": "assistant", "tool_calls": [{"type": "function", "function": ["f"]}]},
       "finish_reason": "tool_calls"}], "choices[0].message.tool_calls[0].function ['f'] is not an object"),
    (True, "choices True is not a list"),
    ({"0": {}}, "choices {'0': {}} is not a list"),
], ids=["choice-text", "choice-list", "message-text", "message-missing", "tool-calls-object", "tool-call-text",
        "function-list", "choices-true", "choices-object"])
async def test_a_whole_openai_answer_of_another_shape_is_named_with_its_value(choices: Any, words: str) -> None:
    """The SDK keeps a value of another type where its model wanted an object: reading it failed the call as
    "'str' object has no attribute 'message'", and tool calls that were an object were dropped without a word."""
    r = await answer("openai", False, completion(choices=choices))
    assert r.error_type == ErrorType.BAD_RESPONSE, (r.error_type, r.error_message)
    assert r.error_message and r.error_message.startswith("malformed response: " + words), r.error_message
