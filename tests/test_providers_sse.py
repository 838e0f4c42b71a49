"""The OpenAI stream reader: SSE framing details real servers use, on an in-memory response body."""

from __future__ import annotations

import httpx
import openai
import pytest

from monitor.providers.sse import sse_json


async def _events(body: bytes) -> list[dict]:
    response = httpx.Response(200, content=body, request=httpx.Request("POST", "http://x/v1/chat/completions"))
    return [e async for e in sse_json(response)]


async def test_comments_event_lines_multiline_data_and_done() -> None:
    body = (b": keep-alive\n\nevent: message\ndata: {\"a\":\ndata: 1}\n\n"
            b"data:{\"b\":2}\r\n\r\ndata: [DONE]\n\ndata: {\"after\": true}\n\n")
    assert await _events(body) == [{"a": 1}, {"b": 2}]  # nothing after [DONE]


async def test_last_event_without_blank_line() -> None:
    assert await _events(b'data: {"a": 1}\n\ndata: {"b": 2}') == [{"a": 1}, {"b": 2}]


async def test_error_object_raises_the_sdk_error_with_its_body() -> None:
    with pytest.raises(openai.APIError) as info:
        await _events(b'data: {"error": {"message": "overloaded", "type": "rate_limit"}}\n\n')
    assert info.value.message == "overloaded" and info.value.body == {"message": "overloaded", "type": "rate_limit"}


async def test_non_object_and_broken_json_are_value_errors() -> None:
    with pytest.raises(ValueError, match="not a JSON object"):
        await _events(b"data: [1, 2]\n\n")
    with pytest.raises(ValueError):
        await _events(b'data: {"a": \n\n')
