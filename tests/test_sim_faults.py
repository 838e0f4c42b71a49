"""Every fault kind in the shipped faults scenario is observable by a real client over loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from monitor.sim import SimServer, builtin_scenario, scenario_from_dict

MESSAGES = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with SimServer(builtin_scenario("faults")) as srv:
        yield srv


@pytest.fixture
def client(server: SimServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0, timeout=10) as c:
        yield c


def _stream(client: openai.OpenAI, model: str) -> list[openai.types.chat.ChatCompletionChunk]:
    return list(client.chat.completions.create(model=model, messages=MESSAGES, stream=True,
                                               stream_options={"include_usage": True}))


def _chain(exc: BaseException | None) -> str:
    """Describe an exception and its causes (the SDK wraps its HTTP library's errors)."""
    parts = []
    while exc is not None:
        parts.append(repr(exc))
        exc = exc.__cause__ or exc.__context__
    return " <- ".join(parts)


@pytest.mark.parametrize("stream", [False, True])
def test_rate_limit_carries_retry_after(client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="fault-rate-limit", messages=MESSAGES, stream=stream)
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert info.value.code == "rate_limit_exceeded"


def test_server_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="fault-server-error", messages=MESSAGES)
    assert info.value.status_code == 500
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="fault-unavailable", messages=MESSAGES)
    assert info.value.status_code == 503 and info.value.response.headers["retry-after"] == "30"


def test_overloaded_mid_stream_raises_api_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIError, match="overloaded"):
        _stream(client, "fault-overloaded")


def test_timeout_holds_longer_than_the_client_waits(server: SimServer) -> None:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0, timeout=0.3) as c, \
            pytest.raises(openai.APITimeoutError):
        c.chat.completions.create(model="fault-timeout", messages=MESSAGES)


@pytest.mark.parametrize("stream", [False, True])
def test_malformed_json_body(client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(ValueError, match="Unterminated string|Expecting"):
        if stream:
            _stream(client, "fault-malformed")
        else:
            client.chat.completions.create(model="fault-malformed", messages=MESSAGES)


def test_clean_stream_cut_is_incomplete_but_raises_nothing(client: openai.OpenAI) -> None:
    chunks = _stream(client, "fault-stream-cut")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert 0 < len(text.split()) < 24
    assert all(c.usage is None for c in chunks) and all(c.choices[0].finish_reason is None for c in chunks)


def test_abrupt_stream_cut_is_a_protocol_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError) as info:
        _stream(client, "fault-stream-abort")
    assert "incomplete chunked read" in _chain(info.value)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="fault-stream-abort", messages=MESSAGES)


@pytest.mark.parametrize("model", ["fault-reset", "fault-reset-early"])
@pytest.mark.parametrize("stream", [False, True])
def test_connection_reset(client: openai.OpenAI, model: str, stream: bool) -> None:
    with pytest.raises(openai.APIConnectionError) as info:
        if stream:
            _stream(client, model)
        else:
            client.chat.completions.create(model=model, messages=MESSAGES)
    assert "ConnectionResetError" in _chain(info.value)


@pytest.mark.parametrize("stream", [False, True])
def test_redirect_answers_its_status_and_location(server: SimServer, stream: bool) -> None:
    headers = {"anthropic-version": "2023-06-01"}
    for url, body in [(server.openai_base_url + "/chat/completions", {"messages": MESSAGES}),
                      (server.url + "/v1/messages", {"max_tokens": 50, "messages": MESSAGES})]:
        moved = httpx.post(url, headers=headers, json={**body, "model": "fault-redirect", "stream": stream})
        assert (moved.status_code, moved.headers["location"]) == (307, "http://127.0.0.1:9/v1/moved")


def test_content_policy_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="fault-content-policy", messages=MESSAGES)
    assert info.value.code == "content_policy_violation"


def test_stall_pauses_then_completes() -> None:
    scenario = scenario_from_dict({"models": {"m": {"phases": [{
        "name": "p", "ttft": 5, "output_tps": 1000, "length": 20, "faults": {"stall": {"p": 1, "stall_s": 0.3}}}]}}})
    with SimServer(scenario) as srv, \
            openai.OpenAI(base_url=srv.openai_base_url, api_key="k", max_retries=0) as client:
        texts = []
        started = time.monotonic()
        for chunk in client.chat.completions.create(model="m", messages=MESSAGES, stream=True,
                                                    stream_options={"include_usage": True}):
            texts.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
        assert len("".join(texts).split()) == 20
        # the whole stream took the stall at least (about 25 ms without it); a gap between two chunks read here
        # could look shorter than the stall on a loaded machine, the chunk before it read late
        assert time.monotonic() - started >= 0.3


def test_stall_with_short_read_timeout_times_out(server: SimServer) -> None:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0,
                       timeout=0.5) as c, pytest.raises(openai.APITimeoutError):
        list(c.chat.completions.create(model="fault-stall", messages=MESSAGES, stream=True))


def test_anthropic_faults(server: SimServer) -> None:
    headers = {"anthropic-version": "2023-06-01"}
    body = {"max_tokens": 50, "messages": MESSAGES}
    limited = httpx.post(server.url + "/v1/messages", headers=headers, json={**body, "model": "fault-rate-limit"})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    with pytest.raises(httpx.TransportError):
        httpx.post(server.url + "/v1/messages", headers=headers, json={**body, "model": "fault-reset"})
    cut = httpx.post(server.url + "/v1/messages", headers=headers,
                     json={**body, "model": "fault-stream-cut", "stream": True})
    assert "message_start" in cut.text and "message_stop" not in cut.text


def test_flaky_model_mixes_faults_and_successes(client: openai.OpenAI, server: SimServer) -> None:
    phase = server.engine.scenario.models["flaky"].phases[0]
    assert len(phase.faults.items()) == 9
    ok = 0
    for _ in range(12):
        try:
            client.with_options(timeout=0.2).chat.completions.create(model="flaky", messages=MESSAGES)
            ok += 1
        except (openai.APIError, ValueError):
            pass
    assert ok >= 6


@pytest.mark.parametrize("tail", [0, 1, 2, 3])
def test_a_stream_cut_with_a_tail_sends_that_many_closing_events(tail: int) -> None:
    """stream_cut's `tail` (with at: 1): the whole answer, then the first `tail` of the closing events, then the cut.
    OpenAI: finish chunk, usage chunk, [DONE]; Anthropic: content_block_stop, message_delta, message_stop."""
    scenario = scenario_from_dict({"models": {"m": {"phases": [{
        "name": "p", "ttft": 5, "output_tps": 1000, "length": 8,
        "faults": {"stream_cut": {"p": 1, "at": 1, "tail": tail}}}]}}})
    openai_closing = ['"finish_reason": "stop"', '"usage": {"prompt_tokens"', "data: [DONE]"]
    anthropic_closing = ["event: content_block_stop", "event: message_delta", "event: message_stop"]
    with SimServer(scenario) as srv:
        chat = httpx.post(srv.openai_base_url + "/chat/completions", json={
            "model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}})
        messages = httpx.post(srv.url + "/v1/messages", headers={"anthropic-version": "2023-06-01"},
                              json={"model": "m", "max_tokens": 50, "messages": MESSAGES, "stream": True})
    assert [m in chat.text for m in openai_closing] == [i < tail for i in range(3)]
    assert [m in messages.text for m in anthropic_closing] == [i < tail for i in range(3)]
    assert chat.text.count('"content": "') > 1 and "text_delta" in messages.text  # the answer came whole first
