"""A mutation fuzzer for the providers' reading of upstream answers, over a real loopback HTTP server.

Each case is a valid answer (OpenAI or Anthropic, streamed or whole, text or tool call) mutated from a fixed seed:
JSON fields removed, nulled or given values of the wrong type or range, unknown fields and events, events
duplicated, dropped or swapped, bodies truncated or broken by invalid UTF-8, 200 answers carrying errors, error
statuses with odd bodies and headers. The server (`WireServer`, asyncio) writes each case's bytes as they are and
closes the connection; the providers are the daemon's own (`build_provider`), one per kind, reused across cases
as the runner reuses them. `violations` checks the invariants the project promises of every `CallResult`.

Run many seeds (not part of the test suite; `tests/test_providers_fuzz.py` runs a few hundred)::

    .venv/bin/python -m tests.support.wirefuzz --cases 5000 --seed 1
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import math
import random
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.domain import CallResult, ErrorType, FinishReason
from monitor.providers.vet import MAX_TOKENS

KINDS = ("openai", "anthropic")
ODD_VALUES: list[Any] = [None, "", "7", "x" * 300, -1, 0, 10**30, 1.5, 2.0, True, False, [], [1, "a"], {},
                         {"a": 1}, "\ud800", "\x00", "😀", float("nan"), -(10**20)]


@dataclass
class Case:
    """One mutated answer: what the server writes, and what was done to it (for the report)."""

    id: str
    kind: str
    stream: bool
    raw: bytes
    mutations: list[str] = field(default_factory=list)
    # token counts the answer's final usage carries after mutation, by our field name (None: not sent or odd)
    bad_usage: list[str] = field(default_factory=list)
    status: int = 200  # the HTTP status the server answers with
    # for answers that are odd but well formed: what the result must say (CallResult attribute -> value)
    expect: dict[str, Any] | None = None


# ---- valid answers ----

def _openai_whole(rng: random.Random) -> dict[str, Any]:
    tools = rng.random() < 0.25
    message: dict[str, Any] = {"role": "assistant", "content": None if tools else "Hello world", "refusal": None}
    if tools:
        message["tool_calls"] = [{"id": "call_1", "type": "function",
                                  "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m", "system_fingerprint": "fp_1",
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if tools else "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10,
                      "prompt_tokens_details": {"cached_tokens": 2},
                      "completion_tokens_details": {"reasoning_tokens": 0}}}


def _openai_events(rng: random.Random) -> list[Any]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "system_fingerprint": "fp_1"}
    tools = rng.random() < 0.25
    events: list[Any] = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                               "finish_reason": None}]}]
    if tools:
        events.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
            "finish_reason": None}]})
        for piece in ('{"city"', ': "Paris"}'):
            events.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": piece}}]}, "finish_reason": None}]})
    else:
        for piece in ("Hel", "lo", " world"):
            events.append({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if tools else "stop"}]})
    events.append({**base, "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10,
                                                    "prompt_tokens_details": {"cached_tokens": 2},
                                                    "completion_tokens_details": {"reasoning_tokens": 0}}})
    events.append("[DONE]")
    return events


def _anthropic_whole(rng: random.Random) -> dict[str, Any]:
    tools = rng.random() < 0.25
    content: list[dict[str, Any]] = [{"type": "text", "text": "Hello world"}]
    if tools:
        content.append({"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}})
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": content,
            "stop_reason": "tool_use" if tools else "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 2,
                      "cache_creation_input_tokens": 0}}


def _anthropic_events(rng: random.Random) -> list[Any]:
    tools = rng.random() < 0.25
    events: list[Any] = [
        {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                                              "content": [], "stop_reason": None,
                                              "usage": {"input_tokens": 7, "output_tokens": 1,
                                                        "cache_read_input_tokens": 2,
                                                        "cache_creation_input_tokens": 0}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    for piece in ("Hel", "lo", " world"):
        events.append({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})
    events.append({"type": "content_block_stop", "index": 0})
    if tools:
        events.append({"type": "content_block_start", "index": 1,
                       "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}})
        for piece in ('{"city"', ': "Paris"}'):
            events.append({"type": "content_block_delta", "index": 1,
                           "delta": {"type": "input_json_delta", "partial_json": piece}})
        events.append({"type": "content_block_stop", "index": 1})
    events.append({"type": "message_delta", "delta": {"stop_reason": "tool_use" if tools else "end_turn",
                                                      "stop_sequence": None}, "usage": {"output_tokens": 3}})
    events.append({"type": "message_stop"})
    return events


# ---- mutations ----

def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        value = value[p]
    return value


def mutate_json(rng: random.Random, value: Any, notes: list[str]) -> Any:
    """Apply one mutation to a JSON value (a copy): remove, null, retype, add an unknown field, wrap."""
    value = copy.deepcopy(value)
    paths = _paths(value)
    if not paths:
        notes.append("whole->odd")
        return rng.choice(ODD_VALUES)
    path = rng.choice(paths)
    parent, key = _get(value, path[:-1]), path[-1]
    op = rng.choice(["remove", "null", "odd", "odd", "odd", "unknown", "wrap", "dup"])
    where = "/".join(map(str, path))
    if op == "remove":
        del parent[key]
    elif op == "null":
        parent[key] = None
    elif op == "odd":
        parent[key] = copy.deepcopy(rng.choice(ODD_VALUES))
    elif op == "unknown":
        target = parent[key] if isinstance(parent[key], dict) else parent
        if isinstance(target, dict):
            target[f"x_unknown_{rng.randint(0, 99)}"] = copy.deepcopy(rng.choice(ODD_VALUES))
        else:
            target.append(copy.deepcopy(rng.choice(ODD_VALUES)))
    elif op == "wrap":
        parent[key] = [parent[key]]
    elif op == "dup" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))
    else:
        parent[key] = str(parent[key])
    shown = repr(parent[key])[:40] if op not in ("remove",) and key in (parent if isinstance(parent, dict)
                                                                          else range(len(parent))) else ""
    notes.append(f"{op} {where} {shown}".strip())
    return value


def _sse(kind: str, event: Any, crlf: bool) -> bytes:
    nl = "\r\n" if crlf else "\n"
    if isinstance(event, bytes):
        return event
    if event == "[DONE]":
        return f"data: [DONE]{nl}{nl}".encode()
    data = json.dumps(event)
    name = event.get("type") if kind == "anthropic" and isinstance(event, dict) else None
    head = f"event: {name}{nl}" if isinstance(name, str) else ""
    return f"{head}data: {data}{nl}{nl}".encode("utf-8", "surrogatepass")


def _body_json(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


def _usage_of(kind: str, stream: bool, value: Any) -> Any:
    """The usage object the answer ends with (the one the provider keeps), or None."""
    try:
        if not stream:
            return value.get("usage") if isinstance(value, dict) else None
        last = None
        for e in value:
            if e == "[DONE]":  # what follows is not read
                break
            if kind == "openai" and isinstance(e, dict) and "usage" in e:
                last = e["usage"]
            if kind == "anthropic" and isinstance(e, dict) and e.get("type") == "message_delta":
                last = e.get("usage")
        return last
    except (AttributeError, TypeError):
        return None


_COUNTS = {"openai": ("prompt_tokens", "completion_tokens"),
           "anthropic": ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")}


def _bad_counts(kind: str, usage: Any) -> list[str]:
    if not isinstance(usage, dict):
        return []
    out = []
    for name in _COUNTS[kind]:
        if kind == "anthropic" and name.startswith("cache") and usage.get("input_tokens") is None:
            continue  # the input tokens are unknown: the cache counts are not added to anything
        if kind == "anthropic" and "input_tokens" not in usage and "output_tokens" not in usage:
            continue  # no usage at all
        if name in usage:
            v = usage[name]
            good = v is None or (type(v) is int and 0 <= v <= MAX_TOKENS) or \
                (type(v) is float and v.is_integer() and 0 <= v <= MAX_TOKENS)
            if not good:
                out.append(f"{name}={v!r}"[:60])
    return out


def _head(status: str, ctype: str | None, length: int | None, extra: list[str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", "connection: close"]
    if ctype is not None:
        lines.append(f"content-type: {ctype}")
    if length is not None:
        lines.append(f"content-length: {length}")
    lines += extra
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_STATUSES = ["400 Bad Request", "401 Unauthorized", "403 Forbidden", "404 Not Found", "408 Request Timeout",
             "413 Payload Too Large", "422 Unprocessable Entity", "429 Too Many Requests",
             "500 Internal Server Error", "502 Bad Gateway", "503 Service Unavailable", "529 Overloaded",
             "418 I'm a teapot", "302 Found", "204 No Content", "201 Created", "599 Weird"]
_ODD_HEADERS = ["retry-after: 5", "retry-after: -5", "retry-after: nan", "retry-after: 1e400", "retry-after: abc",
                "retry-after: Wed, 21 Oct 2015 07:28:00 GMT", "retry-after: Wed, 21 Oct 99999 07:28:00 GMT",
                "retry-after: Mon, 01 Jan 2001 00:00:00 +99999999", "retry-after-ms: 10", "retry-after-ms: x",
                "retry-after-ms: -1e309", "x-request-id: " + "r" * 300, "request-id: req_1",
                "x-ratelimit-remaining-requests: 0", "anthropic-ratelimit-requests-remaining: -1",
                "retry-after: 0x10", "retry-after: 1_000", "content-encoding: gzip", "content-encoding: deflate",
                "content-encoding: identity", "content-encoding: x-unknown"]


def _error_bodies(kind: str, rng: random.Random) -> bytes:
    good = ({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
            if kind == "openai" else
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    choice = rng.randrange(9)
    if choice == 0:
        return _body_json(good)
    if choice == 1:
        return _body_json(mutate_json(rng, good, []))
    if choice == 2:
        return b"<html><body>502 Bad Gateway</body></html>"
    if choice == 3:
        return b""
    if choice == 4:
        return b"\xff\xfe not utf-8 \xc3"
    if choice == 5:
        return _body_json(rng.choice(ODD_VALUES))
    if choice == 6:
        return b'{"error": ' * 50 + b"1" + b"}" * 50
    if choice == 7:
        return _body_json({"error": mutate_json(rng, good["error"], [])})
    return b"[" * 100_000 + b"]" * 100_000  # deeper than the JSON parser's recursion limit


def make_case(rng: random.Random, index: int, kind: str | None = None, stream: bool | None = None) -> Case:
    """A valid answer of a random kind, mutated: `index` names it (the model the request asks for)."""
    kind = kind or rng.choice(KINDS)
    stream = rng.random() < 0.6 if stream is None else stream
    case = Case(id=f"case{index}", kind=kind, stream=stream, raw=b"")
    notes = case.mutations
    family = rng.choices(["json", "stream", "bytes", "status", "error200", "ctype", "deep", "shape", "http"],
                         weights=[40, 25, 10, 10, 6, 5, 4, 12, 6])[0]
    if family == "http":
        value = (_openai_events if kind == "openai" else _anthropic_events)(rng) if stream else \
            (_openai_whole if kind == "openai" else _anthropic_whole)(rng)
        body = b"".join(_sse(kind, e, False) for e in value) if stream else _body_json(value)
        ctype = "text/event-stream" if stream else "application/json"
        op = rng.choice(["huge_header", "two_lengths", "chunked", "chunked_broken", "bad_status_line", "http10",
                         "continue", "nothing", "empty_200", "no_reason", "header_no_colon", "latin1_header"])
        notes.append(f"http {op}")
        if op == "huge_header":
            case.raw = _head("200 OK", ctype, len(body), ["x-big: " + "a" * 200_000]) + body
        elif op == "two_lengths":
            case.raw = _head("200 OK", ctype, len(body), [f"content-length: {len(body) + 5}"]) + body
        elif op in ("chunked", "chunked_broken"):
            pieces = [body[i:i + 50] for i in range(0, len(body), 50)]
            chunked = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"
            if op == "chunked_broken":
                chunked = chunked.replace(b"32\r\n", b"zz\r\n", 1)
            case.raw = _head("200 OK", ctype, None, ["transfer-encoding: chunked"]) + chunked
        elif op == "bad_status_line":
            case.raw = b"HTTP/1.1 abc OK\r\ncontent-length: 2\r\n\r\n{}"
        elif op == "http10":
            case.raw = b"HTTP/1.0 200 OK\r\ncontent-type: " + ctype.encode() + b"\r\n\r\n" + body
        elif op == "continue":
            case.raw = b"HTTP/1.1 100 Continue\r\n\r\n" + _head("200 OK", ctype, len(body), []) + body
        elif op == "nothing":
            case.raw = b""
        elif op == "empty_200":
            case.raw = _head("200 OK", ctype, 0, [])
        elif op == "no_reason":
            case.raw = _head("200 OK", ctype, len(body), []).replace(b"200 OK", b"200", 1) + body
        elif op == "header_no_colon":
            case.raw = _head("200 OK", ctype, len(body), ["this is not a header"]) + body
        else:
            case.raw = _head("200 OK", ctype, len(body), ["x-request-id: caf\xe9\xff"]) + body
        return case
    if family == "shape":
        name, raw, expect = rng.choice(SHAPES[(kind, stream)])
        notes.append(f"shape {name}")
        case.raw, case.expect = raw, expect
        return case
    if family == "stream" and not stream:
        family = "json"
    extra = [rng.choice(_ODD_HEADERS)] if rng.random() < 0.2 else []
    ctype = "text/event-stream" if stream else "application/json"
    if family == "status":
        status = rng.choice(_STATUSES)
        body = _error_bodies(kind, rng)
        extra.append(rng.choice(_ODD_HEADERS))
        notes.append(f"status {status} body {body[:40]!r} {extra}")
        case.status = int(status.split()[0])
        case.raw = _head(status, rng.choice(["application/json", "text/html", None]), len(body), extra) + body
        return case
    if family == "deep":
        depth = rng.choice([100, 5000, 100_000])
        inner = b"[" * depth + b"]" * depth
        notes.append(f"deep nesting {depth}")
        body = (b"data: " + inner + b"\n\n" if kind == "openai" else b"event: message_start\ndata: " + inner
                + b"\n\n") if stream else inner
        if stream and kind == "openai" and rng.random() < 0.5:
            body = b"data: " + b'{"choices": ' * depth + b"1" + b"}" * depth + b"\n\n"
        case.raw = _head("200 OK", ctype, len(body), extra) + body
        return case
    value: Any = (_openai_events if kind == "openai" else _anthropic_events)(rng) if stream else \
        (_openai_whole if kind == "openai" else _anthropic_whole)(rng)
    if family == "error200":
        if stream:
            err: Any = {"error": {"message": "Overloaded", "code": rng.choice([429, "500", "x", None, [1]])}} \
                if kind == "openai" else {"type": "error", "error": {"type": rng.choice(
                    ["overloaded_error", "rate_limit_error", "weird", 5, None, ["x"], {"a": 1}]),
                    "message": rng.choice(["Overloaded", None, 5, ["m"]])}}
            value.insert(rng.randrange(len(value) + 1), mutate_json(rng, err, []) if rng.random() < 0.3 else err)
        else:
            value = {"error": {"message": rng.choice(["Upstream failed", None, 7, {"a": 1}]),
                               "code": rng.choice([502, "429", "x", None, True])}} \
                if kind == "openai" else {"type": "error", "error": {"type": rng.choice(
                    ["api_error", 5, None, ["x"]]), "message": rng.choice(["boom", None, 3])}}
        notes.append(f"error in 200: {json.dumps(value)[:120] if not stream else 'event inserted'}")
    n = rng.choice([1, 1, 1, 2, 3]) if family in ("json", "stream") else 0
    for _ in range(n):
        if stream:
            i = rng.randrange(len(value))
            if value[i] != "[DONE]":
                sub: list[str] = []
                value[i] = mutate_json(rng, value[i], sub)
                notes.append(f"event {i}: {sub[-1] if sub else ''}")
        else:
            value = mutate_json(rng, value, notes)
    if family == "stream":
        for _ in range(rng.choice([1, 1, 2])):
            op = rng.choice(["drop", "dup", "swap", "unknown", "comment", "nonjson", "empty_data", "multiline"])
            i = rng.randrange(len(value))
            if op == "drop":
                notes.append(f"drop event {i} {value[i]!r:.60}")
                del value[i]
            elif op == "dup":
                notes.append(f"dup event {i}")
                value.insert(i, copy.deepcopy(value[i]))
            elif op == "swap" and i + 1 < len(value):
                notes.append(f"swap events {i},{i + 1}")
                value[i], value[i + 1] = value[i + 1], value[i]
            elif op == "unknown":
                notes.append(f"unknown event at {i}")
                value.insert(i, {"type": "x_future_event", "data": {"a": 1}} if kind == "anthropic" else
                             {"object": "x.unknown", "foo": [1]})
            elif op == "comment":
                notes.append(f"comment at {i}")
                value.insert(i, b": keep-alive\n\n")
            elif op == "nonjson":
                notes.append(f"non-JSON data at {i}")
                value.insert(i, b"data: {not json\n\n")
            elif op == "empty_data":
                notes.append(f"empty data at {i}")
                value.insert(i, b"data:\n\n")
            elif op == "multiline" and isinstance(value[i], dict):
                text = json.dumps(value[i], indent=1)
                notes.append(f"multi-line data at {i}")
                value[i] = ("".join(f"data: {line}\n" for line in text.splitlines()) + "\n").encode()
    if stream:
        crlf = rng.random() < 0.1
        body = b"".join(_sse(kind, e, crlf) for e in value)
    else:
        body = _body_json(value)
    case.bad_usage = _bad_counts(kind, _usage_of(kind, stream, value))
    length: int | None = len(body)
    if family == "bytes":
        op = rng.choice(["truncate", "truncate_declared", "badutf8", "badutf8", "nul", "trailing", "chunked_off"])
        at = rng.randrange(len(body) + 1)
        if op == "truncate":
            body, length = body[:at], at
        elif op == "truncate_declared":
            body = body[:at]
        elif op == "badutf8":
            body = body[:at] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"]) + body[at:]
            length = len(body)
        elif op == "nul":
            body = body[:at] + b"\x00" + body[at:]
            length = len(body)
        elif op == "trailing":
            body += b"\n\ngarbage after the end"
            length = len(body)
        else:
            length = None  # no length: the body ends with the connection
        notes.append(f"bytes {op} at {at}/{len(body)}")
    if family == "ctype":
        ctype = rng.choice(["application/json", "text/html", "text/plain; charset=latin-1", "", "text/event-stream"])
        notes.append(f"content-type {ctype!r}")
    case.raw = _head("200 OK", ctype, length, extra) + body
    return case


# ---- answers odd but well formed, with what the result must say ----

def _oa_chunk(choices: list[Any] | None = None, **over: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            **({"choices": choices} if choices is not None else {}), **over}


def _delta(finish: str | None = None, index: int = 0, **delta: Any) -> dict[str, Any]:
    return {"index": index, "delta": delta, "finish_reason": finish}


_OA_USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def _oa_stream(*chunks: Any, crlf: bool = False) -> bytes:
    body = b"".join(_sse("openai", c, crlf) for c in (*chunks, "[DONE]"))
    return _head("200 OK", "text/event-stream", len(body), []) + body


def _an_stream(*events: Any) -> bytes:
    body = b"".join(_sse("anthropic", e, False) for e in events)
    return _head("200 OK", "text/event-stream", len(body), []) + body


def _whole(value: Any) -> bytes:
    body = _body_json(value)
    return _head("200 OK", "application/json", len(body), []) + body


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
        ("no space after data", (lambda b: _head("200 OK", "text/event-stream", len(b), []) + b)(
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


# ---- the server ----

class WireServer:
    """An asyncio server on 127.0.0.1 that answers each POST with the raw bytes of the case its `model` names."""

    def __init__(self) -> None:
        self.cases: dict[str, Case] = {}
        self.url = ""
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = json.loads(await reader.readexactly(length))
            case = self.cases[body["model"]]
            writer.write(case.raw)
            await writer.drain()
        with contextlib.suppress(Exception):
            writer.close()
            await writer.wait_closed()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[WireServer]:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self
        finally:
            self._server.close()
            await self._server.wait_closed()


# ---- invariants ----

_GENERIC = re.compile(r"unhashable|can only concatenate|has no attribute|sequence item|not subscriptable|"
                      r"object is not iterable|unsupported operand|must be str, not|indices must be")


def _tokens_ok(v: Any) -> bool:
    return v is None or (type(v) is int and 0 <= v <= MAX_TOKENS)


def violations(case: Case, r: Any) -> list[str]:
    """What is wrong with the provider's answer to `case` (empty: the invariants hold)."""
    if not isinstance(r, CallResult):
        return [f"not a CallResult: {r!r}"[:200]]
    out = []
    if r.error_type is not None:
        if not isinstance(r.error_type, ErrorType):
            out.append(f"error_type {r.error_type!r}")
        if not r.error_message or not isinstance(r.error_message, str):
            out.append("failure without a message")
        if r.error_type == ErrorType.INTERNAL:
            out.append(f"internal error: {r.error_message}")
        # (an error page that does not decode as its Content-Encoding says is a bad_response: the SDK reads it
        # before it says the status)
        if case.status >= 400 and r.error_type == ErrorType.BAD_RESPONSE and \
                "does not decode" not in str(r.error_message):
            out.append(f"HTTP {case.status} typed bad_response: {r.error_message}")
        if r.error_type == ErrorType.BAD_RESPONSE and isinstance(r.error_message, str) and \
                _GENERIC.search(r.error_message):
            out.append(f"message names no field: {r.error_message}")
    elif case.status >= 400:
        out.append(f"HTTP {case.status} answered ok")
    else:
        if case.bad_usage:
            out.append(f"ok with bad token counts {case.bad_usage}: usage {r.usage}")
    for name, want in (case.expect or {}).items():
        got: Any = r
        for part in name.split("."):
            got = getattr(got, part)
        if got != want:
            out.append(f"expected {name} {want!r}, got {got!r} ({r.error_message})"[:300])
    if not isinstance(r.text, str):
        out.append(f"text {type(r.text).__name__}")
    for name in ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens"):
        if not _tokens_ok(getattr(r.usage, name)):
            out.append(f"{name}={getattr(r.usage, name)!r}")
    if r.latency_s is None or not (math.isfinite(r.latency_s) and r.latency_s >= 0):
        out.append(f"latency {r.latency_s!r}")
    for name in ("ttft_s", "first_output_s"):
        t = getattr(r, name)
        if t is not None and (not math.isfinite(t) or t < 0 or (r.latency_s is not None and t > r.latency_s)):
            out.append(f"{name} {t!r} latency {r.latency_s!r}")
    if r.finish_reason is not None and not isinstance(r.finish_reason, FinishReason):
        out.append(f"finish_reason {r.finish_reason!r}")
    if r.finish_reason is not None and not isinstance(r.raw_finish_reason, str):
        out.append(f"finish_reason {r.finish_reason} without raw {r.raw_finish_reason!r}")
    for name in ("response_model", "system_fingerprint", "request_id", "response_id", "raw_finish_reason",
                 "refusal_text", "error_message"):
        v = getattr(r, name)
        if v is not None and not isinstance(v, str):
            out.append(f"{name} {type(v).__name__}")
    strings = [r.text, r.refusal_text, r.response_model, r.system_fingerprint, r.request_id, r.response_id,
               r.raw_finish_reason, r.error_message, json.dumps(r.tool_calls), *r.ratelimit.values()]
    for s in strings:
        if isinstance(s, str):
            try:
                s.encode("utf-8")
            except UnicodeEncodeError:
                out.append(f"text that cannot be stored (lone surrogate): {s[:40]!r}")
    for c in r.tool_calls:
        if not (isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("arguments"), str)):
            out.append(f"tool call {c!r}"[:80])
    if r.retry_after_s is not None and not (math.isfinite(r.retry_after_s) and r.retry_after_s >= 0):
        out.append(f"retry_after_s {r.retry_after_s!r}")
    return out


@dataclass
class Outcome:
    case: Case
    result: Any
    problems: list[str]


async def run_cases(cases: list[Case], build: Callable[[str, str], Any], timeout_s: float = 10.0,
                    concurrency: int = 8) -> list[Outcome]:
    """Serve `cases` and call a provider per kind (`build(kind, base_url)`) for each; check every result."""
    from monitor.providers import ChatRequest

    server = WireServer()
    outcomes: list[Outcome] = []
    async with server.serving():
        server.cases = {c.id: c for c in cases}
        providers = {kind: build(kind, server.url) for kind in KINDS}
        gate = asyncio.Semaphore(concurrency)

        async def one(case: Case) -> None:
            req = ChatRequest(model=case.id, messages=[{"role": "user", "content": "hi"}], stream=case.stream,
                              timeout_s=timeout_s)
            async with gate:
                try:
                    r: Any = await providers[case.kind].complete(req)
                except Exception as e:  # the invariant under test: complete() never raises
                    r = e
            outcomes.append(Outcome(case, r, violations(case, r)))

        try:
            await asyncio.gather(*(one(c) for c in cases))
        finally:
            for p in providers.values():
                await p.aclose()
    return sorted(outcomes, key=lambda o: int(o.case.id[4:]))


def daemon_provider(kind: str, url: str) -> Any:
    """The provider the daemon builds for a target of `kind` at `url`."""
    from monitor.config.models import Target
    from monitor.providers import build_provider

    base = url + "/v1" if kind == "openai" else url
    return build_provider(Target(id=f"fuzz-{kind}", provider=kind, base_url=base, model="m"), "sk-fuzz-key")


PROBES = """\
canaries:
  - id: fuzz
    messages: [{role: user, content: hi}]
    checks: [{type: contains, value: world}, {type: length, max: 100}]
"""


async def store_cases(cases: list[Case], folder: Path, store_url: str | None = None) -> list[str]:
    """Run `cases` through the daemon (an App on SQLite under `folder`, or on the empty database `store_url`, one
    target per case, the runner making the calls and storing them); return what went wrong: an observation not
    stored or not read back as it was made."""
    from monitor.app import App
    from monitor.config import load_config
    from monitor.store.convert import storable

    problems: list[str] = []
    server = WireServer()
    async with server.serving():
        server.cases = {c.id: c for c in cases}
        (folder / "probes").mkdir(parents=True, exist_ok=True)
        (folder / "probes" / "p.yaml").write_text(PROBES)
        targets = "\n".join(
            f"  - {{id: {c.id}, provider: {c.kind}, base_url: '{server.url}{'/v1' if c.kind == 'openai' else ''}', "
            f"model: {c.id}, stream: {str(c.stream).lower()}, timeout: 10}}" for c in cases)
        cfg = folder / "monitor.yaml"
        url = store_url or f"sqlite:///{folder / 'm.db'}"
        cfg.write_text(f"targets:\n{targets}\nprobes: [./probes]\n"
                       f"storage: {{url: \"{url}\"}}\n")
        app = App(load_config(cfg, environ={}), environ={}, serve_http=False, analyse=False)
        await app.start(schedule=False)
        made: dict[str, Any] = {}
        try:
            for canary, target in app.config.pairs():
                try:
                    for obs in await app.runner.run(canary, target, trigger="manual"):
                        made[target.id] = obs
                except Exception as e:
                    problems.append(f"{target.id}: run raised {e!r}"[:200])
        finally:
            await app.stop()
        for c in cases:
            stored = app.store.observations(target=c.id, limit=5)
            obs = made.get(c.id)
            if obs is None:
                problems.append(f"{c.id}: no observation {c.mutations}")
            elif len(stored) != 1:
                problems.append(f"{c.id}: {len(stored)} observations stored {c.mutations}")
            else:
                back = stored[0]
                for name in ("error_type", "text", "raw_finish_reason", "usage", "ttft_s", "latency_s"):
                    if getattr(back.call, name) != storable(getattr(obs.call, name)):  # NUL is kept as U+FFFD
                        problems.append(f"{c.id}: stored {name} {getattr(back.call, name)!r} is not "
                                        f"{getattr(obs.call, name)!r}"[:200])
            if obs is not None and obs.call.error_type == ErrorType.INTERNAL:
                problems.append(f"{c.id}: internal: {obs.call.error_message}")
        app.store.close()
    return problems


def main() -> None:
    import argparse
    import collections

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--show", type=int, default=3, help="examples shown per kind of problem")
    ap.add_argument("--store", type=int, default=0, help="also run this many cases through the daemon's runner "
                                                          "into a SQLite store (in a temporary folder)")
    ap.add_argument("--store-url", help="with --store: an empty PostgreSQL database to store them in instead "
                                        "(postgresql+psycopg://...)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    cases = [make_case(rng, i) for i in range(args.cases)]
    outcomes = asyncio.run(run_cases(cases, daemon_provider))
    kinds: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    shown: dict[str, int] = collections.defaultdict(int)
    for o in outcomes:
        r = o.result
        errors[f"{o.case.kind}/{'stream' if o.case.stream else 'whole'}: "
               f"{getattr(getattr(r, 'error_type', None), 'value', 'ok') if isinstance(r, CallResult) else 'RAISED'}"] += 1
        for p in o.problems:
            key = p.split(":")[0][:60]
            kinds[key] += 1
            if shown[key] < args.show:
                shown[key] += 1
                print(f"{o.case.id} {o.case.kind} stream={o.case.stream} {o.case.mutations}\n  -> {p}\n"
                      f"  result: {getattr(r, 'error_type', None)} {getattr(r, 'error_message', r)!r}"[:600])
    if args.store:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            problems = asyncio.run(store_cases(cases[:args.store], Path(folder), args.store_url))
        print(f"\nstored through the runner: {args.store} cases, {len(problems)} problems")
        for p in problems[:20]:
            print("  " + p)
    print(f"\n{len(outcomes)} cases, seed {args.seed}")
    for k, n in sorted(errors.items()):
        print(f"  {n:5d} {k}")
    print("problems:" if kinds else "no problems")
    for k, n in kinds.most_common():
        print(f"  {n:5d} {k}")


if __name__ == "__main__":
    main()
