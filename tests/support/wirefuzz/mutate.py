"""The mutations: one valid answer made into a `Case` by a seeded random choice of what to break."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from monitor.domain import MAX_TOKENS, ErrorType
from tests.support.wirefuzz.answers import anthropic_events, anthropic_whole, openai_events, openai_whole
from tests.support.wirefuzz.case import KINDS, ODD_VALUES, Case, http_head, json_body, sse
from tests.support.wirefuzz.shapes import SHAPES


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


def _usage_of(kind: str, stream: bool, value: Any) -> Any:
    """The usage object the answer ends with (the one the provider keeps), or None."""
    try:
        if not stream:
            return value.get("usage") if isinstance(value, dict) else None
        last = None
        for e in value:
            if e == "[DONE]" or (kind == "anthropic" and isinstance(e, dict) and e.get("type") == "message_stop"):
                break  # what follows is not read
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



# the timeout of a call whose error page stalls: the whole of it is waited for, so it is short (the headers come at
# once over loopback; it is long enough that they do on a busy machine too)
STALL_TIMEOUT_S = 1.0
_STATUSES = ["400 Bad Request", "401 Unauthorized", "403 Forbidden", "404 Not Found", "408 Request Timeout",
             "413 Payload Too Large", "422 Unprocessable Entity", "429 Too Many Requests",
             "500 Internal Server Error", "502 Bad Gateway", "503 Service Unavailable", "529 Overloaded",
             "418 I'm a teapot", "302 Found", "204 No Content", "201 Created", "599 Weird"]
# What an error status is, written from README's "Error types" (not taken from monitor.providers, the code under
# test, which an expectation computed by it could never catch): `rate_limited` 429; `auth` 401/403; `timeout` 408
# (the server gave up waiting for the request); `server_error` 5xx; `bad_request` other 4xx. A content-policy 400
# (`content_filter`) is told by its body, which a body cut short cannot show: a plain 400 then.
_STATUS_TYPES = {400: ErrorType.BAD_REQUEST, 401: ErrorType.AUTH, 403: ErrorType.AUTH, 404: ErrorType.BAD_REQUEST,
                 408: ErrorType.TIMEOUT, 413: ErrorType.BAD_REQUEST, 418: ErrorType.BAD_REQUEST,
                 422: ErrorType.BAD_REQUEST, 429: ErrorType.RATE_LIMITED, 500: ErrorType.SERVER_ERROR,
                 502: ErrorType.SERVER_ERROR, 503: ErrorType.SERVER_ERROR, 529: ErrorType.SERVER_ERROR,
                 599: ErrorType.SERVER_ERROR}
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
        return json_body(good)
    if choice == 1:
        return json_body(mutate_json(rng, good, []))
    if choice == 2:
        return b"<html><body>502 Bad Gateway</body></html>"
    if choice == 3:
        return b""
    if choice == 4:
        return b"\xff\xfe not utf-8 \xc3"
    if choice == 5:
        return json_body(rng.choice(ODD_VALUES))
    if choice == 6:
        return b'{"error": ' * 50 + b"1" + b"}" * 50
    if choice == 7:
        return json_body({"error": mutate_json(rng, good["error"], [])})
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
        value = (openai_events if kind == "openai" else anthropic_events)(rng) if stream else \
            (openai_whole if kind == "openai" else anthropic_whole)(rng)
        body = b"".join(sse(kind, e, False) for e in value) if stream else json_body(value)
        ctype = "text/event-stream" if stream else "application/json"
        op = rng.choice(["huge_header", "two_lengths", "chunked", "chunked_broken", "bad_status_line", "http10",
                         "continue", "nothing", "empty_200", "no_reason", "header_no_colon", "latin1_header",
                         "error_cut", "error_stall"])
        notes.append(f"http {op}")
        if op == "error_cut":  # an error page the server closes the connection on before its Content-Length
            status = rng.choice([s for s in _STATUSES if s[0] in "45"])
            page = _error_bodies(kind, rng)
            sent = page[:rng.randrange(len(page) + 1)]
            extra = [rng.choice(_ODD_HEADERS)] if rng.random() < 0.3 else []
            notes.append(f"status {status}, {len(sent)} of {len(page) + 1} bytes {sent[:40]!r} {extra}")
            case.status = int(status.split()[0])
            case.raw = http_head(status, "application/json", len(page) + 1, extra) + sent
            # typed by its status as if the body had been read (it is not, so its text cannot type it)
            case.expect = {"http_status": case.status, "error_type": _STATUS_TYPES[case.status]}
        elif op == "error_stall":  # an error page the server stops sending partway, the connection kept open
            status = rng.choice([s for s in _STATUSES if s[0] in "45"])
            page = _error_bodies(kind, rng)
            sent = page[:rng.randrange(len(page) + 1)]
            # not a Content-Encoding: a body that does not decode fails at its first bytes, before the stall
            extra = [rng.choice([h for h in _ODD_HEADERS if not h.startswith("content-encoding")])] \
                if rng.random() < 0.3 else []
            notes.append(f"status {status}, {len(sent)} of {len(page) + 1} bytes, then nothing {sent[:40]!r} {extra}")
            case.status, case.stall, case.timeout_s = int(status.split()[0]), True, STALL_TIMEOUT_S
            case.raw = http_head(status, "application/json", len(page) + 1, extra) + sent
            # a timeout (nothing says the rest will not come) that says which status came, and keeps it
            case.expect = {"http_status": case.status, "error_type": ErrorType.TIMEOUT, "error_message":
                           f"no complete answer in {STALL_TIMEOUT_S:g}s: HTTP {case.status} came, its body did not end"}
        elif op == "huge_header":
            case.raw = http_head("200 OK", ctype, len(body), ["x-big: " + "a" * 200_000]) + body
        elif op == "two_lengths":
            case.raw = http_head("200 OK", ctype, len(body), [f"content-length: {len(body) + 5}"]) + body
        elif op in ("chunked", "chunked_broken"):
            pieces = [body[i:i + 50] for i in range(0, len(body), 50)]
            chunked = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"
            if op == "chunked_broken":
                chunked = chunked.replace(b"32\r\n", b"zz\r\n", 1)
            case.raw = http_head("200 OK", ctype, None, ["transfer-encoding: chunked"]) + chunked
        elif op == "bad_status_line":
            case.raw = b"HTTP/1.1 abc OK\r\ncontent-length: 2\r\n\r\n{}"
        elif op == "http10":
            case.raw = b"HTTP/1.0 200 OK\r\ncontent-type: " + ctype.encode() + b"\r\n\r\n" + body
        elif op == "continue":
            case.raw = b"HTTP/1.1 100 Continue\r\n\r\n" + http_head("200 OK", ctype, len(body), []) + body
        elif op == "nothing":
            case.raw = b""
        elif op == "empty_200":
            case.raw = http_head("200 OK", ctype, 0, [])
        elif op == "no_reason":
            case.raw = http_head("200 OK", ctype, len(body), []).replace(b"200 OK", b"200", 1) + body
        elif op == "header_no_colon":
            case.raw = http_head("200 OK", ctype, len(body), ["this is not a header"]) + body
        else:
            case.raw = http_head("200 OK", ctype, len(body), ["x-request-id: caf\xe9\xff"]) + body
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
        case.raw = http_head(status, rng.choice(["application/json", "text/html", None]), len(body), extra) + body
        return case
    if family == "deep":
        depth = rng.choice([100, 5000, 100_000])
        inner = b"[" * depth + b"]" * depth
        notes.append(f"deep nesting {depth}")
        body = (b"data: " + inner + b"\n\n" if kind == "openai" else b"event: message_start\ndata: " + inner
                + b"\n\n") if stream else inner
        if stream and kind == "openai" and rng.random() < 0.5:
            body = b"data: " + b'{"choices": ' * depth + b"1" + b"}" * depth + b"\n\n"
        case.raw = http_head("200 OK", ctype, len(body), extra) + body
        return case
    value: Any = (openai_events if kind == "openai" else anthropic_events)(rng) if stream else \
        (openai_whole if kind == "openai" else anthropic_whole)(rng)
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
        body = b"".join(sse(kind, e, crlf) for e in value)
    else:
        body = json_body(value)
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
    case.raw = http_head("200 OK", ctype, length, extra) + body
    return case
