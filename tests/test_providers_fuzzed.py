"""Answers the wire fuzzer (`tests/support/wirefuzz.py`) found the providers misread, each through the daemon's
own providers and a real loopback server; and a seeded run of the fuzzer itself, whose invariants must hold: a
`CallResult` for anything a server sends, failures typed and explained, no count or time that is not one."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.config.models import Target
from monitor.domain import CallResult, ErrorType
from monitor.providers import ChatRequest, build_provider
from monitor.store import Store
from tests.support.jsonserver import wire_server
from tests.support.wirefuzz import Case, daemon_provider, make_case, run_cases, store_cases

KINDS = ["openai", "anthropic"]


@pytest.mark.parametrize("seed", [1, 2])
async def test_fuzzed_answers_keep_the_invariants(seed: int) -> None:
    """1,000 mutated answers of a fixed seed: each call returns a `CallResult`, a failure is typed and explained,
    an answer that stood carries only counts and times that are such (`wirefuzz.violations`)."""
    rng = random.Random(seed)
    outcomes = await run_cases([make_case(rng, i) for i in range(1000)], daemon_provider)
    bad = [f"{o.case.id} {o.case.kind} stream={o.case.stream} {o.case.mutations}: {o.problems}" for o in outcomes
           if o.problems]
    assert not bad, "\n".join(bad[:10])
    assert len(outcomes) == 1000


async def test_fuzzed_answers_are_all_stored_by_the_runner(tmp_path: Path) -> None:
    """150 of them through the daemon's runner into SQLite: every call is one observation, read back as made."""
    rng = random.Random(3)
    assert await store_cases([make_case(rng, i) for i in range(150)], tmp_path) == []


def reply(body: bytes, *, status: str = "200 OK", ctype: str = "application/json") -> bytes:
    return (f"HTTP/1.1 {status}\r\nconnection: close\r\ncontent-type: {ctype}\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


def events(kind: str, *data: Any) -> bytes:
    """A stream of `data` events (dicts as JSON, bytes as they are), ended as `kind` ends one."""
    out = b""
    for d in data:
        raw = d if isinstance(d, bytes) else json.dumps(d).encode()
        name = f"event: {d['type']}\n".encode() if kind == "anthropic" and isinstance(d, dict) else b""
        out += name + b"data: " + raw + b"\n\n"
    return out + (b"data: [DONE]\n\n" if kind == "openai" else b"")


async def answer(kind: str, stream: bool, raw: bytes) -> CallResult:
    """What the daemon's provider of `kind` makes of a server that answers `raw`."""
    case = Case(id="case0", kind=kind, stream=stream, raw=raw)
    [outcome] = await run_cases([case], daemon_provider)
    assert isinstance(outcome.result, CallResult), f"complete() raised {outcome.result!r}"
    assert not outcome.problems, outcome.problems
    return outcome.result


DEEP = b"[" * 100_000 + b"]" * 100_000  # deeper than Python's JSON parser goes (a RecursionError, not a ValueError)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["whole", "stream", "error"])
async def test_json_nested_too_deep_is_a_bad_response_not_a_crash(kind: str, where: str) -> None:
    if where == "whole":
        r = await answer(kind, False, reply(DEEP))
    elif where == "stream":
        r = await answer(kind, True, reply(events(kind, DEEP), ctype="text/event-stream"))
    else:  # an error status keeps its type: the body only fails to say more
        r = await answer(kind, False, reply(DEEP, status="503 Service Unavailable"))
        assert r.error_type == ErrorType.SERVER_ERROR and r.http_status == 503, (r.error_type, r.error_message)
        return
    assert r.error_type == ErrorType.BAD_RESPONSE, (r.error_type, r.error_message)
    assert r.error_message == "malformed response: JSON nested too deeply to read"


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


def chunk(**delta: Any) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


FINISH = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
          "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


async def test_half_surrogate_escapes_are_stored_not_lost(tmp_path: Path) -> None:
    """JSON escapes of half a UTF-16 pair ("\\ud800") decode to text UTF-8 cannot encode: the store raised, the
    runner logged a crash and the observation was lost. Now a lone half is U+FFFD and halves split across chunks
    are joined; every call is stored."""
    lone_text = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m\ud800",
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello \ud800 world"},
                              "finish_reason": "stop"}]}
    split = events("openai", chunk(content="Hello \ud83d"), chunk(content="\ude00 world"), FINISH)
    error = events("openai", chunk(content="Hello"), {"error": {"message": "bad \udc00", "code": 500}})
    anthropic = events("anthropic", {"type": "error", "error": {"type": "api_error", "message": "x\ud800"}})
    cases = [Case("case0", "openai", False, reply(json.dumps(lone_text).encode())),
             Case("case1", "openai", True, reply(split, ctype="text/event-stream")),
             Case("case2", "openai", True, reply(error, ctype="text/event-stream")),
             Case("case3", "anthropic", True, reply(anthropic, ctype="text/event-stream"))]
    assert await store_cases(cases, tmp_path) == []
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        stored = {o.target: o.call for o in store.observations(limit=10)}
    finally:
        store.close()
    assert stored["case0"].ok and stored["case0"].text == "Hello \ufffd world"
    assert stored["case0"].response_model == "m\ufffd"
    assert stored["case1"].ok and stored["case1"].text == "Hello 😀 world"
    assert stored["case2"].error_type == ErrorType.SERVER_ERROR
    assert stored["case2"].error_message == "error in stream: bad \ufffd"
    assert stored["case3"].error_message == "api_error: x\ufffd"


def anthropic_stream(usage: Any, start_usage: Any = None) -> bytes:
    start = {"type": "message_start", "message": {"id": "msg_1", "model": "m",
                                                  "usage": start_usage or {"input_tokens": 7, "output_tokens": 1}}}
    return reply(events("anthropic", start,
                        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
                        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": usage},
                        {"type": "message_stop"}), ctype="text/event-stream")


def anthropic_whole(usage: Any) -> bytes:
    return reply(json.dumps({"id": "msg_1", "type": "message", "model": "m", "stop_reason": "end_turn",
                             "content": [{"type": "text", "text": "hi"}], "usage": usage}).encode())


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


def anthropic_events(*data: Any) -> bytes:
    start = {"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {"input_tokens": 7}}}
    stop = [{"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
            {"type": "message_stop"}]
    return reply(events("anthropic", start, *data, *stop), ctype="text/event-stream")


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


def completion(**over: Any) -> bytes:
    body = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}
    return reply(json.dumps({**body, **over}).encode())


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


@pytest.mark.parametrize(("body", "expected", "message"), [
    ({"error": {"message": "Rate limit exceeded", "code": 429}}, ErrorType.RATE_LIMITED,
     "error in stream: Rate limit exceeded"),
    ({"error": {"message": "upstream failed", "code": "502"}}, ErrorType.SERVER_ERROR,
     "error in stream: upstream failed"),
    ({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
      "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]},
     ErrorType.BAD_RESPONSE, "malformed response: expected an event stream, got application/json: '{\"id\": \"c1\""),
], ids=["rate-limit", "server-error", "whole-answer"])
async def test_a_stream_answered_with_one_json_body_says_what_came(body: Any, expected: ErrorType,
                                                                   message: str) -> None:
    """A streamed call answered 200 with one JSON body (a proxy that answers before its upstream does, a server
    that does not stream) was read as events, found none, and failed as "response broken off: stream ended
    without a finish_reason": a rate limit was no longer one, and its message was lost."""
    r = await answer("openai", True, reply(json.dumps(body).encode()))
    assert r.error_type == expected, (r.error_type, r.error_message)
    assert r.error_message and r.error_message.startswith(message), r.error_message


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_body_that_does_not_decode_as_its_content_encoding_is_a_bad_response(kind: str, stream: bool,
                                                                                     encoding: str) -> None:
    """Content-Encoding: gzip on a body that is not: the HTTP library raises DecodingError, which is neither a
    transport error nor a ValueError, and it went out of complete()."""
    if kind == "openai":
        body = events("openai", chunk(content="hi"), FINISH) if stream else \
            json.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": []}).encode()
    else:
        body = events("anthropic", {"type": "message_start", "message": {"id": "msg_1"}}) if stream else \
            json.dumps({"id": "msg_1", "type": "message", "content": []}).encode()
    head = (f"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-type: "
            f"{'text/event-stream' if stream else 'application/json'}\r\ncontent-encoding: {encoding}\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode()
    r = await answer(kind, stream, head + body)
    assert r.error_type == ErrorType.BAD_RESPONSE, (r.error_type, r.error_message)
    assert r.error_message and r.error_message.startswith(
        "malformed response: the body does not decode as its Content-Encoding says: Error -3"), r.error_message


KEY = "sk-live-0123456789abcdefghijklmnopqrstuvwxyz"


def keyed_provider(kind: str, url: str) -> Any:
    base = url + "/v1" if kind == "openai" else url
    return build_provider(Target(id="t", provider=kind, base_url=base, model="m"), KEY)


@pytest.mark.parametrize("kind", KINDS)
async def test_an_echoed_api_key_cut_short_in_a_message_is_not_kept_in_part(kind: str) -> None:
    """An error message is cut at 300 characters, the values messages show at 40: a key the cut went through
    was left as its start ("sk-live-0123…"), which the scrubbing (whole keys only) did not see."""
    padding = 1000 if kind == "openai" else 1000 - len("authentication_error: ") + len("Error code: 401 - ")
    cases = []
    for shift in range(0, 40, 4):  # the cut falls in the middle of the key at several places
        msg = "x" * (230 - shift) + " Incorrect API key provided: " + KEY + " " + "y" * padding
        body = {"error": {"message": msg, "type": "invalid_request_error"}} if kind == "openai" else \
            {"type": "error", "error": {"type": "authentication_error", "message": msg}}
        cases.append(Case(f"case{len(cases)}", kind, False, reply(json.dumps(body).encode(), status="401 Unauthorized")))
    cases.append(Case(f"case{len(cases)}", kind, True, reply(  # and in a value a message shows
        events(kind, chunk(content="hi"), {**FINISH, "usage": "x" * 20 + KEY}) if kind == "openai" else
        anthropic_events().replace(b'"input_tokens": 7', b'"input_tokens": "' + b"x" * 25 + KEY.encode() + b'"'),
        ctype="text/event-stream")))
    outcomes = await run_cases(cases, keyed_provider)
    for o in outcomes:
        message = o.result.error_message
        assert message and o.result.error_type in (ErrorType.AUTH, ErrorType.BAD_RESPONSE), message
        assert KEY[:4] not in message, message
    assert sum("<redacted>…" in o.result.error_message for o in outcomes) >= 8


async def test_a_page_that_is_no_event_stream_says_what_came() -> None:
    r = await answer("openai", True, reply(b"<html><body>502 Bad Gateway</body></html>", ctype="text/html"))
    assert r.error_type == ErrorType.BAD_RESPONSE
    assert r.error_message == "malformed response: expected an event stream, got text/html: " \
                              "'<html><body>502 Bad Gateway</body></html>'"


async def test_events_under_a_json_content_type_are_read_as_they_come() -> None:
    """An event stream that says it is application/json is still read event by event: its first content is
    timed when it came, not when the body ended."""
    later = threading.Event()

    def answer_slowly(body: dict[str, Any], send: Callable[[bytes], object]) -> None:
        send(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n")
        send(events("openai", chunk(content="hi")).removesuffix(b"data: [DONE]\n\n"))
        later.wait(0.5)  # the rest comes after a pause
        send(events("openai", FINISH))

    with wire_server(answer_slowly) as url:
        provider = daemon_provider("openai", url)
        try:
            r = await provider.complete(ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}]))
        finally:
            await provider.aclose()
    assert r.ok and r.text == "hi", r.error_message
    assert r.ttft_s is not None and r.latency_s is not None and r.ttft_s < r.latency_s


@pytest.mark.parametrize(("body", "ctype", "shown"), [
    (b"<html><body>502 Bad Gateway</body></html>", "text/html", "'<html><body>502 Bad Gateway</body></html>'"),
    (b"", "application/json", "''"),
], ids=["html", "empty"])
async def test_a_whole_anthropic_answer_that_is_no_json_says_what_came(body: bytes, ctype: str, shown: str) -> None:
    """As a whole OpenAI answer does; it failed as "Expecting value: line 1 column 1 (char 0)"."""
    r = await answer("anthropic", False, reply(body, ctype=ctype))
    assert r.error_type == ErrorType.BAD_RESPONSE
    assert r.error_message == f"malformed response: expected a message (a JSON object), got {ctype}: {shown}"


@pytest.mark.parametrize(("kind", "stream", "raw", "shown"), [
    ("openai", True, reply(events("openai", b"{not json", FINISH), ctype="text/event-stream"),
     "not JSON (Expecting property name enclosed in double quotes at character 1): '{not json'"),
    ("anthropic", True, reply(events("anthropic", b'{"type": "ping", "x": tru}'), ctype="text/event-stream"),
     "not JSON (Expecting value at character 22): '{\"type\": \"ping\", \"x\": tru}'"),
    ("openai", False, reply(b'{"id": "c1", "choices": [' + b" " * 100 + b"}"),
     "not JSON (Expecting value at character 125): ' }'"),  # (whitespace is shown as one space)
    ("anthropic", False, reply(b'{"id": "msg_1", "content": [], "stop_reason": "end_turn",, "usage": {}}'),
     "not JSON (Expecting property name enclosed in double quotes at character 57): '[], \"stop_reason\""),
], ids=["openai-event", "anthropic-event", "openai-whole", "anthropic-whole"])
async def test_json_that_does_not_parse_is_shown_where_it_breaks(kind: str, stream: bool, raw: bytes,
                                                                   shown: str) -> None:
    """A JSON syntax error said only "Expecting value: line 1 column 1 (char 0)": now where, and the text there."""
    r = await answer(kind, stream, raw)
    assert r.error_type == ErrorType.BAD_RESPONSE
    assert r.error_message and r.error_message.startswith("malformed response: " + shown), r.error_message


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
