"""Server-sent events of an OpenAI-style stream, as JSON objects, read straight off the SDK's HTTP response.

The SDK's own stream builds a pydantic model per chunk: about a tenth of a millisecond each, which with 64
streams in flight queues first chunks behind other streams' parsing and inflates the measured time to first
token. Here a chunk costs one ``json.loads``. Semantics follow the SDK's ``AsyncStream``: ``data: [DONE]`` ends
the stream (the rest of the body is drained so the connection can be reused), an object with an ``error`` member
raises ``openai.APIError``, and transport failures surface as the SDK's timeout and connection errors.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai

try:  # openai >= 3 runs on httpx2, earlier releases on httpx: catch the transport errors of whichever it uses
    import httpx2

    TIMEOUTS: tuple[type[Exception], ...] = (httpx.TimeoutException, httpx2.TimeoutException)
    BROKEN: tuple[type[Exception], ...] = (httpx.TransportError, httpx.StreamError, httpx2.TransportError,
                                          httpx2.StreamError)
    UNDECODABLE: tuple[type[Exception], ...] = (httpx.DecodingError, httpx2.DecodingError)
except ImportError:  # pragma: no cover - depends on the installed SDK
    TIMEOUTS, BROKEN = (httpx.TimeoutException,), (httpx.TransportError, httpx.StreamError)
    UNDECODABLE = (httpx.DecodingError,)


async def sse_json(response: Any) -> AsyncIterator[Any]:
    """Yield the JSON data of each event until ``[DONE]`` or the end of the body."""
    data: list[str] = []
    done = False
    try:
        async for line in response.aiter_lines():
            if done:  # after [DONE], HTTP/1.1 wants the body read to its end to reuse the connection
                continue
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
                continue
            if line or not data:  # event:, id:, retry: and comments carry nothing for chat completions
                continue
            payload, data = "\n".join(data), []
            if payload.startswith("[DONE]"):
                done = True
                continue
            yield _checked(json.loads(payload), response)
        if data and not done:  # a last event without its blank line
            payload = "\n".join(data)
            if not payload.startswith("[DONE]"):
                yield _checked(json.loads(payload), response)
    except TIMEOUTS as e:
        raise openai.APITimeoutError(request=response.request) from e
    except BROKEN as e:
        raise openai.APIConnectionError(request=response.request) from e


def _checked(data: Any, response: Any) -> Any:
    if isinstance(data, dict) and data.get("error"):
        error = data["error"]
        message = error.get("message") if isinstance(error, dict) else None
        raise openai.APIError(message=message if isinstance(message, str) and message else
                              "An error occurred during streaming", request=response.request, body=error)
    if not isinstance(data, dict):
        raise ValueError(f"stream event is not a JSON object: {str(data)[:80]}")
    return data
