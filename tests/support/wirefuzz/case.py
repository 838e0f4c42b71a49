"""One fuzz case (`Case`) and how an answer goes on the wire: SSE events, JSON bodies, the HTTP head."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

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
    stall: bool = False  # the server keeps the connection open after `raw`, until the client closes it
    timeout_s: float | None = None  # the call's timeout, when not the run's (short for a case that stalls)


def sse(kind: str, event: Any, crlf: bool) -> bytes:
    nl = "\r\n" if crlf else "\n"
    if isinstance(event, bytes):
        return event
    if event == "[DONE]":
        return f"data: [DONE]{nl}{nl}".encode()
    data = json.dumps(event)
    name = event.get("type") if kind == "anthropic" and isinstance(event, dict) else None
    head = f"event: {name}{nl}" if isinstance(name, str) else ""
    return f"{head}data: {data}{nl}{nl}".encode("utf-8", "surrogatepass")


def json_body(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


def http_head(status: str, ctype: str | None, length: int | None, extra: list[str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", "connection: close"]
    if ctype is not None:
        lines.append(f"content-type: {ctype}")
    if length is not None:
        lines.append(f"content-length: {length}")
    lines += extra
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
