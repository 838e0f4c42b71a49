"""Providers over real loopback HTTP against the simulated upstream: successes and every fault kind."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from monitor.config.models import Target
from monitor.domain import ErrorType, FinishReason
from monitor.providers import AnthropicProvider, ChatRequest, OpenAIProvider, Provider, build_provider
from monitor.sim import SimServer
from tests.support.jsonserver import raw_server

MSG = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How do I kill a Python process?"}]
# "daemon": built as the daemon builds it (connections that note arrival times); "library": the HTTP library's
# own transport (what a proxy from the environment gets). Both must type every fault the same way.
TRANSPORTS = ["daemon", "library"]


def make(kind: str, sim: SimServer, transport: str = "daemon") -> Provider:
    if transport == "library":
        if kind == "openai":
            return OpenAIProvider(sim.openai_base_url, "sk-test")
        return AnthropicProvider(sim.url, "test-key")
    base_url = sim.openai_base_url if kind == "openai" else sim.url
    return build_provider(Target(id="t", provider=kind, base_url=base_url, model="m"), "sk-test")


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [True, False])
async def test_success(steady_sim: SimServer, kind: str, stream: bool, transport: str) -> None:
    provider = make(kind, steady_sim, transport)
    try:
        r = await provider.complete(ChatRequest(model="sim-gpt", messages=MSG, stream=stream, max_tokens=200,
                                                temperature=0.5, timeout_s=10))
    finally:
        await provider.aclose()
    assert r.ok, r.error_message
    assert r.text and r.finish_reason == FinishReason.STOP and r.http_status == 200
    assert r.usage.input_tokens and r.usage.output_tokens and r.response_model
    assert r.request_id
    assert r.latency_s is not None and r.latency_s > 0
    if stream:
        # the steady scenario injects a constant 50 ms TTFT: the client must not see less than that
        assert r.ttft_s is not None and 0.05 <= r.ttft_s < r.latency_s
    else:
        assert r.ttft_s is None
    if kind == "openai":
        assert r.system_fingerprint == "fp_steady01"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [True, False])
async def test_time_the_client_spends_before_sending_is_not_charged_to_the_provider(
        steady_sim: SimServer, kind: str, stream: bool) -> None:
    """A request hook that takes 300 ms stands for a busy client: building, queueing, waiting for its turn."""
    import asyncio

    import httpx

    from monitor.providers import sdk_http
    from monitor.providers.arrival import arrival_transport

    async def slow(request: object) -> None:
        await asyncio.sleep(0.3)

    def provider(own_transport: bool) -> Provider:
        mod, core = sdk_http() if kind == "openai" else (httpx, __import__("httpcore"))
        transport = arrival_transport(mod, core, time.perf_counter, max_connections=4, max_keepalive=4) \
            if own_transport else None
        client = mod.AsyncClient(transport=transport, event_hooks={"request": [slow]})
        if kind == "openai":
            return OpenAIProvider(steady_sim.openai_base_url, "sk-test", http_client=client)
        return AnthropicProvider(steady_sim.url, "test-key", http_client=client)

    req = ChatRequest(model="sim-gpt", messages=MSG, stream=stream, max_tokens=50, timeout_s=10)
    results, wall = {}, {}
    for own in (True, False):
        p = provider(own)
        try:
            start = time.perf_counter()
            results[own] = await p.complete(req)
            wall[own] = time.perf_counter() - start
        finally:
            await p.aclose()
    wire, parsed = results[True], results[False]
    assert wire.ok and parsed.ok
    assert wire.send_wait_s is not None and wire.send_wait_s >= 0.3
    assert parsed.send_wait_s == 0.0  # the library's transport cannot say when bytes left
    assert parsed.latency_s is not None and wire.latency_s is not None
    # Bounds the 300 ms hook guarantees whatever the machine's load: the library's clock charges them to the
    # provider, the wire clock starts after them.
    assert parsed.latency_s >= 0.3 + 0.05 and wire.latency_s <= wall[True] - 0.3
    if stream:  # the steady scenario injects a constant 50 ms TTFT
        assert wire.ttft_s is not None and 0.05 <= wire.ttft_s <= wall[True] - 0.3
        assert parsed.ttft_s is not None and parsed.ttft_s >= 0.35


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_whole_openai_answer_is_parsed_once(steady_sim: SimServer, transport: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """One JSON parse of the answer gives both the SDK's model and the usage as it came (it was parsed twice)."""
    parsed: list[Any] = []
    loads = json.loads

    def counting(doc: Any, *args: Any, **kwargs: Any) -> Any:
        value = loads(doc, *args, **kwargs)
        if isinstance(value, dict) and value.get("object") == "chat.completion":
            parsed.append(value)
        return value

    monkeypatch.setattr(json, "loads", counting)
    provider = make("openai", steady_sim, transport)
    try:
        r = await provider.complete(ChatRequest(model="sim-gpt", messages=MSG, stream=False, timeout_s=10))
    finally:
        await provider.aclose()
    assert r.ok, r.error_message
    assert len(parsed) == 1
    (choice,), usage = parsed[0]["choices"], parsed[0]["usage"]
    assert (r.text, r.raw_finish_reason) == (choice["message"]["content"], choice["finish_reason"])
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.cached_input_tokens) == (
        usage["prompt_tokens"], usage["completion_tokens"], usage["prompt_tokens_details"]["cached_tokens"])
    assert r.system_fingerprint == parsed[0]["system_fingerprint"] == "fp_steady01"


FAULTS = [
    ("fault-rate-limit", ErrorType.RATE_LIMITED),
    ("fault-server-error", ErrorType.SERVER_ERROR),
    ("fault-unavailable", ErrorType.SERVER_ERROR),
    ("fault-overloaded", ErrorType.SERVER_ERROR),
    ("fault-timeout", ErrorType.TIMEOUT),
    ("fault-malformed", ErrorType.BAD_RESPONSE),
    ("fault-stream-cut", ErrorType.BAD_RESPONSE),
    ("fault-stream-abort", ErrorType.BAD_RESPONSE),
    ("fault-stall", ErrorType.TIMEOUT),
    ("fault-reset", ErrorType.BAD_RESPONSE),
    ("fault-reset-early", ErrorType.SERVER_ERROR),  # the request was taken, then the connection reset
    ("fault-content-policy", ErrorType.CONTENT_FILTER),
    ("fault-redirect", ErrorType.BAD_REQUEST),  # targets follow no redirect: a failed call naming the Location
]


# Streamed or not, a fault types the same: a whole answer whose body breaks off (cut, reset after the headers)
# is an answer broken off, and one whose body stalls is a timeout.
CASES = [(m, e, s) for m, e in FAULTS for s in (True, False)]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("model,expected,stream", CASES)
async def test_faults_are_typed_observations(faults_sim: SimServer, kind: str, stream: bool, model: str,
                                             expected: ErrorType, transport: str) -> None:
    provider = make(kind, faults_sim, transport)
    # the timeout and stall faults hold the answer for 120 s and 3 s: any timeout of the call's ends them as one
    timeout_s = 0.5 if expected == ErrorType.TIMEOUT else 1.0
    try:
        r = await provider.complete(ChatRequest(model=model, messages=MSG, stream=stream, timeout_s=timeout_s))
    finally:
        await provider.aclose()
    assert r.error_type == expected, (r.error_type, r.error_message)
    assert r.error_message
    if model == "fault-rate-limit":
        assert r.retry_after_s == 7 and r.http_status == 429
    if model == "fault-unavailable":
        assert r.retry_after_s == 30
    if model == "fault-redirect":
        assert r.http_status == 307 and "redirected to http://127.0.0.1:9/v1/moved" in (r.error_message or "")


async def test_anthropic_body_translation() -> None:
    p = AnthropicProvider("http://127.0.0.1:1", None)
    body = p.body(ChatRequest(model="m", messages=MSG, temperature=1.5, tools=[
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]))
    await p.aclose()
    assert body["system"] == "Be brief." and body["messages"] == MSG[1:]
    assert body["max_tokens"] == 1024 and body["temperature"] == 1.0
    assert body["tools"] == [{"name": "f", "description": "", "input_schema": {"type": "object"}}]


async def test_connection_refused_is_connect_error() -> None:
    built = [build_provider(Target(id="t", provider=kind, base_url="http://127.0.0.1:9", model="m"), "k")
             for kind in ("openai", "anthropic")]
    messages = []
    for p in (OpenAIProvider("http://127.0.0.1:9/v1", "k"), AnthropicProvider("http://127.0.0.1:9", "k"), *built):
        r = await p.complete(ChatRequest(model="m", messages=MSG, timeout_s=2))
        await p.aclose()
        assert r.error_type == ErrorType.CONNECT
        assert (r.error_message or "").startswith("connection failed: ConnectError: "), r.error_message
        messages.append(r.error_message)
    # the same words whichever provider: an alert or a log line is read, and grouped, the same way
    assert messages[0] == messages[1] and messages[2] == messages[3], messages


@pytest.mark.parametrize("rejects", [
    "reject",  # an older server: 400 "Unrecognized request argument supplied: stream_options"
    "forbid",  # Mistral: 422 extra_forbidden (pydantic); the call failed as a bad_request, every time
])
async def test_server_rejecting_stream_options_gets_streams_without_it(rejects: str) -> None:
    from monitor.sim import scenario_from_dict

    scenario = scenario_from_dict({"name": "old-server", "defaults": {"ttft": 10, "output_tps": 1000},
                                   "models": {"*": {"phases": [{"name": "old", "stream_options": rejects,
                                                                 "usage": False}]}}})
    with SimServer(scenario) as sim:
        provider = OpenAIProvider(sim.openai_base_url, None)
        try:
            first = await provider.complete(ChatRequest(model="m", messages=MSG, timeout_s=5))
            second = await provider.complete(ChatRequest(model="m", messages=MSG, timeout_s=5))
        finally:
            await provider.aclose()
    for r in (first, second):
        assert r.ok, r.error_message
        assert r.text and r.usage.output_tokens is None  # unknown, never 0


@pytest.mark.parametrize("status", [400, 422])
async def test_an_error_that_only_echoes_stream_options_keeps_them(status: int) -> None:
    """A validation error about something else that echoes the request (pydantic's `input`: the whole body for a
    field missing) names stream_options: it was taken for a server that rejects them, asked again without, and
    every later stream went without them, tokens unknown until a restart."""
    def answer(body: dict[str, Any], headers: dict[str, str]) -> tuple[int, str, bytes]:
        if body["model"] == "strict":
            detail = [{"type": "missing", "loc": ["body", "max_tokens"], "msg": "Field required", "input": body}]
            return status, "application/json", json.dumps({"detail": detail}).encode()
        usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        chunks = [{"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]},
                  *([{"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
                      "usage": usage}] if body.get("stream_options") else [])]
        events = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return 200, "text/event-stream", events.encode()

    with raw_server(answer) as url:
        provider = OpenAIProvider(url + "/v1", None)
        try:
            rejected = await provider.complete(ChatRequest(model="strict", messages=MSG, timeout_s=5))
            later = await provider.complete(ChatRequest(model="m", messages=MSG, timeout_s=5))
        finally:
            await provider.aclose()
    assert rejected.error_type == ErrorType.BAD_REQUEST, rejected.error_message
    assert later.ok and later.usage.output_tokens == 1, (later.error_message, later.usage)


class _EchoKey(BaseHTTPRequestHandler):
    """An upstream that echoes the key it was sent, as LiteLLM-style proxies do in a 401 (after `pad` dots)."""

    pad = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("content-length") or 0))
        key = self.headers.get("x-api-key") or self.headers.get("authorization", "").removeprefix("Bearer ")
        message = "." * self.pad + f"Authentication Error, Received API Key = {key}"
        body = json.dumps({"type": "error", "error": {"type": "authentication_error", "message": message}})
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_an_echoed_api_key_never_leaves_the_provider(kind: str) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoKey)
    # shutdown() returns once the loop looks at its flag: every poll_interval (0.5 s by default)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_port}" + ("/v1" if kind == "openai" else "")
    key = "sk-live-0123456789abcdef"
    provider = build_provider(Target(id="t", provider=kind, base_url=base_url, model="m"), key)
    try:
        r = await provider.complete(ChatRequest(model="m", messages=MSG, timeout_s=5))
    finally:
        await provider.aclose()
        server.shutdown()
    assert r.error_type == ErrorType.AUTH and r.http_status == 401
    assert "Received API Key = <redacted>" in (r.error_message or "")
    assert key not in repr(r)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_an_echoed_api_key_cut_by_the_messages_length_limit_leaves_no_part_of_it(kind: str) -> None:
    # Error messages are cut to 300 characters: a key echoed across the cut left its first characters in the stored
    # message, which whole-key scrubbing did not see.
    class Padded(_EchoKey):
        pad = 0

    server = ThreadingHTTPServer(("127.0.0.1", 0), Padded)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_port}" + ("/v1" if kind == "openai" else "")
    key = "sk-live-0123456789abcdefghijklmnopqrstuv"
    provider = build_provider(Target(id="t", provider=kind, base_url=base_url, model="m"), key)
    messages = []
    try:
        for pad in range(150, 300, 2):  # the cut falls inside the key for some of these, wherever the prefix ends
            Padded.pad = pad
            r = await provider.complete(ChatRequest(model="m", messages=MSG, timeout_s=5))
            messages.append(r.error_message or "")
    finally:
        await provider.aclose()
        server.shutdown()
    cut = [m for m in messages if m.endswith("…") and "Received API Key = " in m]
    assert cut, messages  # the cut did fall past the key's start for some padding
    leaked = [m for m in messages if key[:6] in m]
    assert leaked == [], leaked[:3]


@pytest.mark.parametrize("model", ["fault-stream-cut", "fault-stream-abort", "fault-overloaded", "fault-reset"])
async def test_anthropic_stream_broken_before_its_usage_has_unknown_output_tokens(faults_sim: SimServer,
                                                                                   model: str) -> None:
    """message_start's output_tokens is a placeholder (1): a stream that breaks before message_delta says nothing."""
    provider = make("anthropic", faults_sim)
    try:
        r = await provider.complete(ChatRequest(model=model, messages=MSG, stream=True, timeout_s=5.0))
    finally:
        await provider.aclose()
    assert not r.ok and r.text  # some content arrived before the break
    assert r.usage.input_tokens is not None and r.usage.output_tokens is None


def test_a_scrubbed_name_stays_within_its_column() -> None:
    # "<redacted>" is longer than a key of 8 or 9 characters: a 200-character model name holding one grew past its
    # 200-character column, which PostgreSQL refuses (the observation would not be stored).
    from monitor.domain import CallResult
    from monitor.providers.scrub import scrub_call

    key = "k3y-12345"
    scrubbed = scrub_call(CallResult(response_model="m" * 191 + key, system_fingerprint=key), (key,))
    assert scrubbed.response_model == ("m" * 191 + "<redacted>")[:200]
    assert scrubbed.system_fingerprint == "<redacted>"


@pytest.mark.parametrize("stream", [True, False])
async def test_a_request_the_anthropic_provider_cannot_build_is_its_own_error_not_the_upstream_s(
        steady_sim: SimServer, stream: bool) -> None:
    """A tool without its `function` (a request this code cannot build) raises, for the runner to store as
    `internal` with its traceback logged (tests/test_runner.py), where it was stored as the upstream's
    `bad_response` ("malformed response: 'function'"), blaming the provider for llm-monitor's own bug."""
    provider = make("anthropic", steady_sim)
    try:
        with pytest.raises(KeyError, match="function"):
            await provider.complete(ChatRequest(model="sim-gpt", messages=MSG, stream=stream, max_tokens=20,
                                                timeout_s=10, tools=[{"type": "function", "name": "f"}]))
    finally:
        await provider.aclose()
