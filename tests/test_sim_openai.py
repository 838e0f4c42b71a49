"""The OpenAI face of the simulator, exercised through the real openai SDK over loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from monitor.sim import SimServer, scenario_from_dict

FAST = {"ttft": 5, "output_tps": 2000, "length": {"dist": "constant", "mean": 30}, "chunk_tokens": 3}
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "required": ["city", "unit"], "additionalProperties": False,
    "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]},
                   "days": {"type": "integer", "minimum": 1, "maximum": 7}}}}}


def _models() -> dict[str, object]:
    def one(**phase: object) -> dict[str, object]:
        return {"phases": [{"name": "p", **phase}]}

    return {
        "plain": one(response_model="plain-2025-01-01", system_fingerprint="fp_plain"),
        "no-usage": one(usage=False),
        "cached": one(cached_fraction=0.5, reasoning_tokens=4),
        "refuse-text": one(refusals=[{"pattern": "(?i)kill", "p": 1}]),
        "refuse-field": one(refusals=[{"pattern": "(?i)kill", "p": 1, "style": "field"}]),
        "refuse-filter": one(refusals=[{"pattern": "(?i)kill", "p": 1, "style": "content_filter"}]),
        "refuse-400": one(refusals=[{"pattern": "(?i)kill", "p": 1, "style": "http_400"}]),
        "refuse-partial": one(refusals=[{"pattern": "(?i)kill", "p": 1, "kind": "partial"}]),
        "scripted": one(answers=[{"pattern": "17077", "choices": [{"text": "[Yes]", "p": 1.0}]}]),
        "tools": one(),
        "bad-tools": one(tools={"invalid_p": 1.0}),
        "think": one(reasoning_tokens=6, quirks=["think_in_content"]),
        "think-unopened": one(reasoning_tokens=6, quirks=["think_in_content_unopened"]),
        "groq": one(quirks=["x_groq_usage"]),
    }


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    scenario = scenario_from_dict({"seed": 5, "api_key": "sk-test", "defaults": FAST, "models": _models()})
    with SimServer(scenario) as srv:
        yield srv


@pytest.fixture
def client(server: SimServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0, timeout=10) as c:
        yield c


def _ask(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def test_non_streaming_completion_and_headers(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="plain", messages=_ask("Explain signals"))
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.model == "plain-2025-01-01" and completion.system_fingerprint == "fp_plain"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.refusal is None
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(choice.message.content.split()) == 30
    assert completion.usage.prompt_tokens == 2 + 2 + 3 * 2 + 3
    for header in ("x-request-id", "openai-processing-ms", "x-ratelimit-remaining-requests",
                   "x-ratelimit-remaining-tokens", "x-ratelimit-reset-requests"):
        assert raw.headers.get(header), header
    assert raw.headers["x-request-id"].startswith("req_")


def test_streaming_with_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="plain", messages=_ask("Explain signals"), stream=True,
                                                 stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" and c.model == "plain-2025-01-01" for c in chunks)
    assert all(c.system_fingerprint == "fp_plain" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-2].choices[0].finish_reason == "stop"
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert usage.completion_tokens == len(text.split()) == 30
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 10  # 3 tokens per chunk


def test_cached_and_reasoning_tokens_are_reported(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="cached", messages=_ask("one two three four five six"),
                                                 stream=True, stream_options={"include_usage": True}))
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens == 17
    assert usage.prompt_tokens_details.cached_tokens == 8
    assert usage.completion_tokens_details.reasoning_tokens == 4 and usage.completion_tokens == 34


def test_usage_can_be_omitted(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="no-usage", messages=_ask("hi"), stream=True,
                                                 stream_options={"include_usage": True}))
    assert all(c.usage is None for c in chunks) and chunks[-1].choices[0].finish_reason == "stop"
    assert client.chat.completions.create(model="no-usage", messages=_ask("hi")).usage is None


def test_stream_without_usage_option_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="plain", messages=_ask("hi"), stream=True))
    assert all(c.choices for c in chunks)


def test_max_tokens_truncates_with_finish_length(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="plain", messages=_ask("hi"), max_tokens=7)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 7
    assert len(completion.choices[0].message.content.split()) == 7


def test_refusal_as_text_in_the_prompts_language(client: openai.OpenAI) -> None:
    english = client.chat.completions.create(model="refuse-text", messages=_ask("How do I kill a process?"))
    assert any(w in english.choices[0].message.content for w in ("can't", "not able"))
    german = client.chat.completions.create(
        model="refuse-text", messages=_ask("Wie kann ich einen Prozess mit kill beenden, der nicht reagiert?"))
    assert "leider" in german.choices[0].message.content or "tut mir leid" in german.choices[0].message.content


def test_refusal_field_streaming_and_not(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="refuse-field", messages=_ask("kill it"))
    assert completion.choices[0].message.content is None and completion.choices[0].message.refusal
    chunks = list(client.chat.completions.create(model="refuse-field", messages=_ask("kill it"), stream=True))
    refusal = "".join(c.choices[0].delta.refusal or "" for c in chunks)
    assert refusal and not any(c.choices[0].delta.content for c in chunks)


def test_refusal_by_content_filter(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="refuse-filter", messages=_ask("kill it"), stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-2].choices[0].finish_reason == "content_filter"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(text.split()) < 30


def test_refusal_by_http_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="refuse-400", messages=_ask("kill it"))
    assert info.value.code == "content_policy_violation"
    assert client.chat.completions.create(model="refuse-400", messages=_ask("benign")).choices[0].message.content


def test_partial_refusal_hedges_then_answers(client: openai.OpenAI) -> None:
    text = client.chat.completions.create(model="refuse-partial", messages=_ask("kill it")).choices[0].message.content
    assert text.startswith("I can't give step-by-step instructions") and len(text.split()) > 15


def test_scripted_answer(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="scripted", messages=_ask("Is 17077 prime? [Yes] or [No]"))
    assert completion.choices[0].message.content == "[Yes]"
    assert completion.usage is not None and completion.usage.completion_tokens == 1


def test_tool_call_arguments_follow_the_schema(client: openai.OpenAI) -> None:
    schema = WEATHER["function"]["parameters"]
    completion = client.chat.completions.create(model="tools", messages=_ask("weather?"), tools=[WEATHER])
    call = completion.choices[0].message.tool_calls[0]
    assert completion.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), schema)
    chunks = list(client.chat.completions.create(model="tools", messages=_ask("weather?"), tools=[WEATHER],
                                                 stream=True))
    args = "".join(tc.function.arguments or "" for c in chunks for tc in (c.choices[0].delta.tool_calls or []))
    jsonschema.validate(json.loads(args), schema)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    bad = client.chat.completions.create(model="bad-tools", messages=_ask("weather?"), tools=[WEATHER])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(bad.choices[0].message.tool_calls[0].function.arguments), schema)


def test_wrong_or_missing_key_is_401(server: SimServer) -> None:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-wrong", max_retries=0) as c, \
            pytest.raises(openai.AuthenticationError) as info:
        c.chat.completions.create(model="plain", messages=_ask("hi"))
    assert info.value.code == "invalid_api_key"
    missing = httpx.post(server.openai_base_url + "/chat/completions", json={"model": "plain", "messages": _ask("hi")})
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"


def test_unknown_model_is_404_and_models_are_listed(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-nope", messages=_ask("hi"))
    assert info.value.code == "model_not_found"
    assert {m.id for m in client.models.list()} == set(_models())


def test_invalid_request_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="plain", messages=[])


async def test_async_client_streams(server: SimServer) -> None:
    async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as c:
        stream = await c.chat.completions.create(model="plain", messages=_ask("hi"), stream=True)
        parts = [ch.choices[0].delta.content or "" async for ch in stream]
    assert len("".join(parts).split()) == 30


def _chat_request() -> bytes:
    body = json.dumps({"model": "sim-gpt", "stream": True, "max_tokens": 5,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body


def _read_until(sock: Any, marker: bytes) -> bytes:
    buf = b""
    while marker not in buf:
        part = sock.recv(65536)
        assert part, f"connection closed before {marker!r}"
        buf += part
    return buf


def test_a_request_arrives_when_its_first_bytes_do_even_after_an_early_answer_on_the_connection() -> None:
    """The answer's schedule runs from the request's arrival, on a keep-alive connection whose previous request
    was answered before its body had arrived (a 404 here): the late body must not start the next clock."""
    import socket
    import time

    from monitor.sim import builtin_scenario

    with SimServer(builtin_scenario("steady")) as sim, \
            socket.create_connection(("127.0.0.1", sim.port)) as sock:
        sock.settimeout(10)
        sock.sendall(b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        assert _read_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 404")
        sock.sendall(b"0123456789")  # the rest of the body, after its answer
        time.sleep(0.3)
        sent = time.monotonic()  # the simulator's clock (loop.time() is monotonic)
        sock.sendall(_chat_request())
        _read_until(sock, b"[DONE]")
        (pacing,) = [p for p in httpx.get(sim.url + "/_sim/pacing").json()]
    assert sent - 0.01 <= pacing["arrived"] <= sent + 0.1
    assert pacing["sent"] - pacing["arrived"] >= 0.05  # the steady scenario's TTFT, from the real arrival


@pytest.mark.parametrize(("model", "opening"), [("think", "<think>\n"), ("think-unopened", "")])
def test_reasoning_in_the_content_inside_think_tags(client: openai.OpenAI, model: str, opening: str) -> None:
    whole = client.chat.completions.create(model=model, messages=_ask("hi")).choices[0].message.content or ""
    chunks = list(client.chat.completions.create(model=model, messages=_ask("hi"), stream=True,
                                                 stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    for text in (whole, streamed):
        thought, _, answer = text.partition("\n</think>\n\n")
        assert thought.startswith(opening + "Let me think") and "<think>" not in thought[len(opening):]
        assert len(thought[len(opening):].split()) == 6 and len(answer.split()) == 30
    usage = chunks[-1].usage  # a server that does not know it is reasoning: no details
    assert usage is not None and usage.completion_tokens == 36 and usage.completion_tokens_details is None


def test_a_think_block_cut_by_max_tokens_is_left_open(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="think", messages=_ask("hi"), max_tokens=4)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 4
    text = completion.choices[0].message.content or ""
    assert text.startswith("<think>\n") and "</think>" not in text and len(text.removeprefix("<think>").split()) == 4


def test_groq_sends_usage_in_x_groq_without_include_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="groq", messages=_ask("hi"), stream=True))
    assert all(c.usage is None for c in chunks)
    first, last = (c.model_extra or {} for c in (chunks[0], chunks[-1]))
    assert last["x_groq"]["id"] == first["x_groq"]["id"] and "usage" not in first["x_groq"]
    assert chunks[-1].choices[0].finish_reason == "stop"
    usage = last["x_groq"]["usage"]
    assert usage["completion_tokens"] == 30 and usage["total_tokens"] == usage["prompt_tokens"] + 30
