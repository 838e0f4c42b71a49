"""Server-sent events of an OpenAI-style stream, as JSON objects, read straight off the SDK's HTTP response.

The SDK's own stream builds a pydantic model per chunk: about a tenth of a millisecond each, which with 64
streams in flight queues first chunks behind other streams' parsing and inflates the measured time to first
token. Here a chunk costs one ``json.loads``. Semantics follow the SDK's ``AsyncStream``: ``data: [DONE]`` ends
the stream (the rest of the body is drained so the connection can be reused, for `DRAIN_S` at most), an object
with an ``error`` member raises ``openai.APIError``, and transport failures surface as the SDK's timeout and
connection errors. An event whose data is empty (``data:``, a keep-alive some relays send) is skipped, as the SSE
standard has it; the SDK parsed it as JSON and failed the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, NoReturn

import httpx
import openai

from monitor.providers.base import short
from monitor.providers.capped import ReplyTooLarge

try:  # openai >= 3 runs on httpx2, earlier releases on httpx: catch the transport errors of whichever it uses
    import httpx2

    TIMEOUTS: tuple[type[Exception], ...] = (httpx.TimeoutException, httpx2.TimeoutException)
    _BROKEN: tuple[type[Exception], ...] = (httpx.TransportError, httpx.StreamError, httpx2.TransportError,
                                           httpx2.StreamError)
    UNDECODABLE: tuple[type[Exception], ...] = (httpx.DecodingError, httpx2.DecodingError)
except ImportError:  # pragma: no cover - depends on the installed SDK
    TIMEOUTS, _BROKEN = (httpx.TimeoutException,), (httpx.TransportError, httpx.StreamError)
    UNDECODABLE = (httpx.DecodingError,)


def broken() -> tuple[type[Exception], ...]:
    """The errors of a connection that broke: the HTTP libraries' transport and stream errors, and socksio's
    `SOCKSError`, a SOCKS proxy's handshake broken, which neither library wraps. socksio is loaded by httpcore for a
    SOCKS proxy only, and none of its errors exists before, so it is not imported here (every process would carry
    it); an `except broken()` clause is evaluated as an exception is matched."""
    socks = sys.modules.get("socksio.exceptions")
    return _BROKEN if socks is None else (*_BROKEN, socks.SOCKSError)


STRAY_MAX = 65_536  # characters kept of a body with no event, to say what it was
# Seconds the end of a body is waited for after [DONE] (it comes with it, or just after, from a server that ends it)
DRAIN_S = 1.0
# How long the usage asked for is waited for once the answer stands (its finish reason came): a server sends it
# right after, so a stream that stalls there instead (a proxy holding the connection open) ends as an answer of
# unknown token counts, not as the call's timeout with its answer lost
USAGE_WAIT_S = 5.0
_FIELDS = ("event:", "id:", "retry:", ":")  # the other lines of an event stream (":" starts a comment)


class CutEvent(json.JSONDecodeError):
    """The body ended inside its last event (no blank line after it), whose data does not parse: a stream cut in
    the middle of an event, by a proxy that then ended the body cleanly. Before an answer stood it is as malformed
    as any data that does not parse; after it (`ending`), the cut of a tail, as a connection broken there."""


# What ends the events after an answer ended (`ending`): the time left run out, a connection broken or stalled (as
# `sse_json` raises them), a tail that does not decode or goes past the reply's cap, or is cut inside an event
_AFTER_END: tuple[type[Exception], ...] = (TimeoutError, openai.APIConnectionError, ReplyTooLarge, *UNDECODABLE,
                                           CutEvent)


async def sse_json(response: Any, done_at: Callable[[], None] = lambda: None) -> AsyncIterator[Any]:
    """Yield the JSON data of each event until ``[DONE]`` or the end of the body; `done_at()` is called at
    ``[DONE]``, before what follows it is read (the answer ended there: its end and latency are taken then).

    A body with no events at all is said to be what it is (`_not_events`): a proxy's 200 with a JSON error, a
    server that answered whole, or nothing. Its lines are kept as they come, so a stream is read as it arrives, whatever its
    content type says."""
    data: list[str] = []
    done = events = False
    stray: list[str] = []  # the start of a body that holds no event (so far)
    kept = 0
    lines = response.aiter_lines()
    try:
        async for line in lines:
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
                continue
            if line and not events and kept < STRAY_MAX and not line.startswith(_FIELDS):
                stray.append(line)
                kept += len(line)
            if line or not data:  # event:, id:, retry: and comments carry nothing for chat completions
                continue
            payload, data = "\n".join(data), []
            if payload.startswith("[DONE]"):
                done = True
                break
            if not payload.strip():  # no data (a relay's "data:" keep-alive): the SSE standard dispatches none
                continue
            events = True
            yield _checked(json.loads(payload), response)
        if data and not done:  # a last event without its blank line
            payload = "\n".join(data)
            if payload.strip() and not payload.startswith("[DONE]"):
                events = True
                try:
                    last = json.loads(payload)
                except json.JSONDecodeError as e:
                    raise CutEvent(e.msg, e.doc, e.pos) from None
                yield _checked(last, response)
        if done:
            done_at()
            await drain(lines)
        if stray and not events and not done:
            _not_events("\n".join(stray), response)
        if not (events or done):  # a whole body that holds none (or comments only), not a stream broken off
            raise ValueError("the event stream held no events (no chunk, no [DONE])")
    except TIMEOUTS as e:
        raise openai.APITimeoutError(request=response.request) from e
    except broken() as e:
        raise openai.APIConnectionError(request=response.request) from e


async def drain(lines: AsyncIterator[Any]) -> None:
    """Read what follows [DONE] (Anthropic's message_stop) to the body's end (HTTP/1.1 reuses a connection only
    then), for `DRAIN_S` at most, and take a failure there for the end: the answer ended at [DONE], as the SDK has
    it (it stops reading there), so a gateway that keeps the body open after it, breaks the connection, or sends a
    tail that does not decode or goes past `max_reply_bytes`, has answered all the same."""
    with contextlib.suppress(TimeoutError, *TIMEOUTS, *broken(), *UNDECODABLE, ReplyTooLarge):
        async with asyncio.timeout(DRAIN_S):
            async for _ in lines:
                pass


async def ending(events: AsyncIterator[Any], ended: Callable[[], bool], on_end: Callable[[], None],
                 stands: Callable[[], bool] = lambda: False,
                 call_deadline: Callable[[], float | None] = lambda: None) -> AsyncGenerator[Any]:
    """`events` until `ended()` says the answer has (its finish reason came, and the usage asked for); `on_end()` is
    called then. What follows ([DONE] and the body's end) is read as after [DONE] (`drain`): for `DRAIN_S` at most,
    and a connection that breaks or stalls there ends the events instead of failing an answer that was whole (a
    gateway that closes the stream without [DONE], or holds it open). `stands()` says the answer was delivered
    though not ended (its finish reason came, the usage asked for not yet): a break there (or a tail that does not
    decode or goes past the reply's cap) ends the events too, what had yet to come (the usage) unknown; and so does
    a stall: the usage is waited for `USAGE_WAIT_S` at most, never past the call's own limit (`call_deadline()`,
    the loop time it ends at, which `on_end()` then lifts: a stall there was the call's timeout, its answer lost)."""
    deadline: float | None = None
    usage_by: float | None = None  # the answer stands: the usage asked for is waited for until then
    loop = asyncio.get_running_loop()
    while True:
        if deadline is None and ended():
            on_end()
            deadline = loop.time() + DRAIN_S
        elif deadline is None and usage_by is None and stands():
            limit = call_deadline()
            usage_by = loop.time() + USAGE_WAIT_S if limit is None else min(loop.time() + USAGE_WAIT_S, limit)
            on_end()  # the call's limit lifted: this wait, within it, ends the stream as an answer instead
        until = deadline if deadline is not None else usage_by
        try:
            if until is None:
                event = await anext(events)
            else:
                async with asyncio.timeout_at(until):
                    event = await anext(events)
        except StopAsyncIteration:
            return
        except (*_AFTER_END, *broken()):
            if deadline is None and not stands():
                raise
            return
        yield event


def _not_events(text: str, response: Any) -> NoReturn:
    """Fail a stream whose body held no event: a JSON error there raises as the error it is (`_checked`), anything
    else as a ValueError saying what came. Read as events, either was "a response broken off" with no finish
    reason, the error's own type and message lost."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        _checked(body, response)
    kind = response.headers.get("content-type") or "no content-type"
    raise ValueError(f"expected an event stream, got {kind}: {short(text, 80)!r}")


def _checked(data: Any, response: Any) -> Any:
    if isinstance(data, dict) and data.get("error"):
        error = data["error"]
        message = error.get("message") if isinstance(error, dict) else None
        raise openai.APIError(message=message if isinstance(message, str) and message else
                              "An error occurred during streaming", request=response.request, body=error)
    if not isinstance(data, dict):
        raise ValueError(f"stream event is not a JSON object: {str(data)[:80]}")
    return data
