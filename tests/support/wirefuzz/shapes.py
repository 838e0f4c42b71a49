"""Answers odd but well formed (`SHAPES`), each with what the provider's result must say of it."""

from __future__ import annotations

import json
from typing import Any

from monitor.domain import ErrorType
from tests.support.wirefuzz.case import http_head, json_body, sse


def _oa_chunk(choices: list[Any] | None = None, **over: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            **({"choices": choices} if choices is not None else {}), **over}


def _delta(finish: str | None = None, index: int = 0, **delta: Any) -> dict[str, Any]:
    return {"index": index, "delta": delta, "finish_reason": finish}


_OA_USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def _oa_stream(*chunks: Any, crlf: bool = False) -> bytes:
    body = b"".join(sse("openai", c, crlf) for c in (*chunks, "[DONE]"))
    return http_head("200 OK", "text/event-stream", len(body), []) + body


def _an_stream(*events: Any) -> bytes:
    body = b"".join(sse("anthropic", e, False) for e in events)
    return http_head("200 OK", "text/event-stream", len(body), []) + body


def _whole(value: Any) -> bytes:
    body = json_body(value)
    return http_head("200 OK", "application/json", len(body), []) + body


_AN_START = {"type": "message_start", "message": {"id": "msg_1", "model": "m", "content": [],
                                                  "usage": {"input_tokens": 7, "output_tokens": 1}}}
_AN_STOP = [{"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
            {"type": "message_stop"}]


def _an_text(text: str, index: int = 0) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}


def _oa_whole(message: dict[str, Any], finish: str = "stop", **over: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
            "usage": _OA_USAGE, **over}


def _ok(text: str, finish: str = "stop", inp: int | None = 7, out: int | None = 3, **more: Any) -> dict[str, Any]:
    return {"error_type": None, "text": text, "raw_finish_reason": finish, "usage.input_tokens": inp,
            "usage.output_tokens": out, **more}


def _tool(name: str, args: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": args}]}


SHAPES: dict[tuple[str, bool], list[tuple[str, bytes, dict[str, Any]]]] = {
    ("openai", True): [
        ("usage in every chunk", _oa_stream(
            _oa_chunk([_delta(content="Hel")], usage={"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}),
            _oa_chunk([_delta("stop", content="lo")], usage=_OA_USAGE)), _ok("Hello")),
        ("usage in the finish chunk", _oa_stream(_oa_chunk([_delta(content="Hi")]),
                                                 _oa_chunk([_delta("stop")], usage=_OA_USAGE)), _ok("Hi")),
        ("usage before the finish", _oa_stream(_oa_chunk([_delta(content="Hi")]), _oa_chunk([], usage=_OA_USAGE),
                                               _oa_chunk([_delta("stop")])), _ok("Hi")),
        ("usage twice", _oa_stream(_oa_chunk([_delta("stop", content="Hi")]), _oa_chunk([], usage=_OA_USAGE),
                                   _oa_chunk([], usage=_OA_USAGE)), _ok("Hi")),
        ("no usage", _oa_stream(_oa_chunk([_delta("length", content="Hi")])), _ok("Hi", "length", None, None)),
        ("usage null", _oa_stream(_oa_chunk([_delta("stop", content="Hi")], usage=None)), _ok("Hi", inp=None,
                                                                                                out=None)),
        ("empty choices between", _oa_stream(_oa_chunk([_delta(content="A")]), _oa_chunk([]),
                                             _oa_chunk([_delta("stop", content="B")]), _oa_chunk([], usage=_OA_USAGE)),
         _ok("AB")),
        ("two choices in order", _oa_stream(_oa_chunk([_delta(content="A"), _delta(content="X", index=1)]),
                                            _oa_chunk([_delta("stop")]), _oa_chunk([], usage=_OA_USAGE)), _ok("A")),
        ("x_groq usage", _oa_stream(_oa_chunk([_delta(content="Hi")]),
                                    _oa_chunk([_delta("stop")], x_groq={"id": "g", "usage": _OA_USAGE})), _ok("Hi")),
        ("reasoning first", _oa_stream(_oa_chunk([_delta(reasoning_content="think")]),
                                       _oa_chunk([_delta("stop", content="Hi")]), _oa_chunk([], usage=_OA_USAGE)),
         _ok("Hi")),
        ("think tags", _oa_stream(_oa_chunk([_delta(content="<think>hm")]), _oa_chunk([_delta(content="</think>")]),
                                  _oa_chunk([_delta("stop", content=" Hi")]), _oa_chunk([], usage=_OA_USAGE)),
         _ok("Hi")),
        ("broken tool arguments", _oa_stream(
            _oa_chunk([_delta(tool_calls=[{"index": 0, "id": "c", "type": "function",
                                           "function": {"name": "f", "arguments": '{"city": '}}])]),
            _oa_chunk([_delta("tool_calls")]), _oa_chunk([], usage=_OA_USAGE)),
         _ok("", "tool_calls", **_tool("f", '{"city": '))),
        ("two tools interleaved", _oa_stream(
            _oa_chunk([_delta(tool_calls=[{"index": 1, "function": {"name": "g", "arguments": "{"}}])]),
            _oa_chunk([_delta(tool_calls=[{"index": 0, "function": {"name": "f", "arguments": "{}"}}])]),
            _oa_chunk([_delta(tool_calls=[{"index": 1, "function": {"arguments": "}"}}])]),
            _oa_chunk([_delta("tool_calls")]), _oa_chunk([], usage=_OA_USAGE)),
         _ok("", "tool_calls", tool_calls=[{"name": "f", "arguments": "{}"}, {"name": "g", "arguments": "{}"}])),
        ("refusal", _oa_stream(_oa_chunk([_delta(refusal="No.")]), _oa_chunk([_delta("stop")]),
                               _oa_chunk([], usage=_OA_USAGE)), _ok("", refusal_text="No.")),
        ("null content and role chunk", _oa_stream(_oa_chunk([_delta(role="assistant", content=None)]),
                                                   _oa_chunk([_delta("stop", content="Hi")]),
                                                   _oa_chunk([], usage=_OA_USAGE)), _ok("Hi")),
        ("crlf", _oa_stream(_oa_chunk([_delta("stop", content="Hi")]), _oa_chunk([], usage=_OA_USAGE), crlf=True),
         _ok("Hi")),
        ("data after done", _oa_stream(_oa_chunk([_delta("stop", content="Hi")]), _oa_chunk([], usage=_OA_USAGE),
                                       "[DONE]", _oa_chunk([_delta(content="late")])), _ok("Hi")),
        ("no space after data", (lambda b: http_head("200 OK", "text/event-stream", len(b), []) + b)(
            b'data:' + json.dumps(_oa_chunk([_delta("stop", content="Hi")])).encode() + b"\n\ndata:[DONE]\n\n"),
         _ok("Hi", inp=None, out=None)),
        ("finish error", _oa_stream(_oa_chunk([_delta("error", content="Hi")])),
         {"error_type": ErrorType.SERVER_ERROR}),
    ],
    ("openai", False): [
        ("no choices", _whole({**_oa_whole({"content": "Hi"}), "choices": []}),
         {"error_type": ErrorType.BAD_RESPONSE, "error_message": "malformed response: response has no choices"}),
        ("two choices", _whole({**_oa_whole({"content": "A"}), "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "A"}, "finish_reason": "stop"},
            {"index": 1, "message": {"role": "assistant", "content": "B"}, "finish_reason": "length"}]}), _ok("A")),
        ("no usage", _whole({k: v for k, v in _oa_whole({"content": "Hi"}).items() if k != "usage"}),
         _ok("Hi", inp=None, out=None)),
        ("broken tool arguments", _whole(_oa_whole({"content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": '}}]}, "tool_calls")),
         _ok("", "tool_calls", **_tool("f", '{"a": '))),
        ("reasoning beside content", _whole(_oa_whole({"content": "Hi", "reasoning_content": "hm"})), _ok("Hi")),
        ("think tags", _whole(_oa_whole({"content": "<think>hm</think>\n\nHi"})), _ok("Hi")),
        # Mistral's reasoning models: a thinking part, then the answer's text part
        ("content parts", _whole(_oa_whole({"content": [
            {"type": "thinking", "thinking": [{"type": "text", "text": "hm"}]}, {"type": "text", "text": "Hi"}]})),
         _ok("Hi")),
        ("error beside choices", _whole({**_oa_whole({"content": "Hi"}), "error": {"message": "boom", "code": 502}}),
         {"error_type": ErrorType.SERVER_ERROR}),
    ],
    ("anthropic", True): [
        ("pings and thinking", _an_stream(
            _AN_START, {"type": "ping"},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}},
            {"type": "content_block_stop", "index": 0}, {"type": "ping"},
            {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
            _an_text("Hi", 1), *_AN_STOP), _ok("Hi", "end_turn")),
        ("two message_delta", _an_stream(
            _AN_START, _an_text("Hi"), {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 1}},
            *_AN_STOP), _ok("Hi", "end_turn")),
        ("input in message_delta", _an_stream(
            _AN_START, _an_text("Hi"), {"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
                                        "usage": {"input_tokens": 7, "output_tokens": 3,
                                                  "cache_read_input_tokens": None}},
            {"type": "message_stop"}), _ok("Hi", "max_tokens")),
        ("broken tool json", _an_stream(
            _AN_START, {"type": "content_block_start", "index": 0,
                        "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta",
                                                                  "partial_json": '{"a": '}},
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 3}},
            {"type": "message_stop"}), _ok("", "tool_use", **_tool("f", '{"a": '))),
        ("unknown blocks and events", _an_stream(
            _AN_START, {"type": "content_block_start", "index": 0,
                        "content_block": {"type": "server_tool_use", "id": "s", "name": "web_search"}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta", "citation": {}}},
            {"type": "x_new_event", "foo": 1}, _an_text("Hi", 1), *_AN_STOP), _ok("Hi", "end_turn")),
        ("overloaded midway", _an_stream(
            _AN_START, _an_text("Hi"), {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}),
         {"error_type": ErrorType.SERVER_ERROR, "error_message": "overloaded_error: busy"}),
        ("refusal", _an_stream(_AN_START, _an_text("No."), {"type": "message_delta",
                                                            "delta": {"stop_reason": "refusal"},
                                                            "usage": {"output_tokens": 3}},
                               {"type": "message_stop"}), _ok("No.", "refusal", refusal_text="No.")),
    ],
    ("anthropic", False): [
        ("thinking and text", _whole({"id": "msg_1", "type": "message", "model": "m", "stop_reason": "end_turn",
                                      "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                                                  {"type": "text", "text": "Hi"}],
                                      "usage": {"input_tokens": 5, "cache_read_input_tokens": 2,
                                                "output_tokens": 3}}), _ok("Hi", "end_turn")),
        ("empty content", _whole({"id": "msg_1", "type": "message", "model": "m", "stop_reason": "end_turn",
                                  "content": [], "usage": {"input_tokens": 7, "output_tokens": 3}}),
         _ok("", "end_turn")),
        ("tool use", _whole({"id": "msg_1", "type": "message", "model": "m", "stop_reason": "tool_use",
                             "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}],
                             "usage": {"input_tokens": 7, "output_tokens": 3}}),
         _ok("", "tool_use", **_tool("f", '{"a": 1}'))),
        ("no usage", _whole({"id": "msg_1", "type": "message", "model": "m", "stop_reason": "end_turn",
                             "content": [{"type": "text", "text": "Hi"}]}), _ok("Hi", "end_turn", None, None)),
    ],
}
