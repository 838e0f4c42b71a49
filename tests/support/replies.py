"""Raw HTTP replies for the provider tests (`reply`, `events` and the answers they are built into), and what the
daemon's provider makes of one (`answer`): through `tests/support/wirefuzz`'s loopback server and invariants."""

from __future__ import annotations

import json
from typing import Any

from monitor.domain import CallResult
from tests.support.wirefuzz import Case, daemon_provider, run_cases

KINDS = ["openai", "anthropic"]


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


def chunk(**delta: Any) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


FINISH = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
          "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


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


def anthropic_events(*data: Any) -> bytes:
    start = {"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {"input_tokens": 7}}}
    stop = [{"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
            {"type": "message_stop"}]
    return reply(events("anthropic", start, *data, *stop), ctype="text/event-stream")


def completion(**over: Any) -> bytes:
    body = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}
    return reply(json.dumps({**body, **over}).encode())
