"""The Anthropic Messages face of the simulator, exercised with httpx over loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from monitor.sim import SimServer, scenario_from_dict

FAST = {"ttft": 5, "output_tps": 2000, "length": {"dist": "constant", "mean": 30}, "chunk_tokens": 4}
HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "sk-ant-test"}
TOOL = {"name": "lookup", "input_schema": {"type": "object", "required": ["q"], "properties": {
    "q": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 5}}}}


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    models = {
        "claude-sim": {"phases": [{"name": "p", "response_model": "claude-sim-20250101"}]},
        "claude-refuses": {"phases": [{"name": "p", "refusals": [{"pattern": "kill", "p": 1, "style": "field"}]}]},
        "claude-filter": {"phases": [{"name": "p", "refusals": [
            {"pattern": "kill", "p": 1, "style": "content_filter"}]}]},
        "claude-400": {"phases": [{"name": "p", "refusals": [{"pattern": "kill", "p": 1, "style": "http_400"}]}]},
        "claude-overloaded": {"phases": [{"name": "p", "faults": {"overloaded": 1}}]},
    }
    scenario = scenario_from_dict({"api_key": "sk-ant-test", "defaults": FAST, "models": models})
    with SimServer(scenario) as srv:
        yield srv


@pytest.fixture
def client(server: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=HEADERS, timeout=10) as c:
        yield c


def _body(model: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 200, "messages": [{"role": "user", "content": text}], **extra}


def _events(client: httpx.Client, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    events = []
    with client.stream("POST", "/v1/messages", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                assert data["type"] == name
                events.append((name, data))
    return events


def test_non_streaming_message(client: httpx.Client) -> None:
    response = client.post("/v1/messages", json=_body("claude-sim", "Explain signals", system="Be brief."))
    assert response.status_code == 200 and response.headers["request-id"].startswith("req_")
    for header in ("anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-tokens-remaining",
                   "anthropic-ratelimit-requests-reset"):
        assert response.headers.get(header), header
    message = response.json()
    assert message["type"] == "message" and message["model"] == "claude-sim-20250101"
    assert message["stop_reason"] == "end_turn"
    text = message["content"][0]["text"]
    assert message["usage"]["output_tokens"] == len(text.split()) == 30
    assert message["usage"]["input_tokens"] == 2 + 2 + 3


def test_streaming_event_sequence_and_usage(client: httpx.Client) -> None:
    events = _events(client, _body("claude-sim", "Explain signals"))
    names = [n for n, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    start = events[0][1]["message"]
    assert start["usage"]["input_tokens"] == 5 and start["model"] == "claude-sim-20250101"
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] == len(text.split()) == 30


def test_max_tokens_stop_reason(client: httpx.Client) -> None:
    message = client.post("/v1/messages", json={**_body("claude-sim", "hi"), "max_tokens": 5}).json()
    assert message["stop_reason"] == "max_tokens" and message["usage"]["output_tokens"] == 5


def test_refusal_stop_reason(client: httpx.Client) -> None:
    message = client.post("/v1/messages", json=_body("claude-refuses", "kill it")).json()
    assert message["stop_reason"] == "refusal" and message["content"][0]["text"]
    events = _events(client, _body("claude-filter", "kill it"))
    assert events[-2][1]["delta"]["stop_reason"] == "refusal"
    response = client.post("/v1/messages", json=_body("claude-400", "kill it"))
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


def test_tool_use(client: httpx.Client) -> None:
    message = client.post("/v1/messages", json=_body("claude-sim", "find it", tools=[TOOL])).json()
    block = message["content"][0]
    assert message["stop_reason"] == "tool_use" and block["type"] == "tool_use" and block["name"] == "lookup"
    jsonschema.validate(block["input"], TOOL["input_schema"])
    events = _events(client, _body("claude-sim", "find it", tools=[TOOL]))
    partial = "".join(d["delta"]["partial_json"] for n, d in events if n == "content_block_delta")
    jsonschema.validate(json.loads(partial), TOOL["input_schema"])


def test_overloaded(client: httpx.Client) -> None:
    response = client.post("/v1/messages", json=_body("claude-overloaded", "hi"))
    assert response.status_code == 529 and response.json()["error"]["type"] == "overloaded_error"
    events = _events(client, _body("claude-overloaded", "hi"))
    assert events[-1] == ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert "message_stop" not in [n for n, _ in events]


def test_header_and_key_checks(server: SimServer) -> None:
    body = _body("claude-sim", "hi")
    no_version = httpx.post(server.url + "/v1/messages", json=body, headers={"x-api-key": "sk-ant-test"})
    assert no_version.status_code == 400 and "anthropic-version" in no_version.json()["error"]["message"]
    bad_key = httpx.post(server.url + "/v1/messages", json=body, headers={**HEADERS, "x-api-key": "nope"})
    assert bad_key.status_code == 401 and bad_key.json()["error"]["type"] == "authentication_error"
    no_max = httpx.post(server.url + "/v1/messages", json={k: v for k, v in body.items() if k != "max_tokens"},
                        headers=HEADERS)
    assert no_max.status_code == 400
    unknown = httpx.post(server.url + "/v1/messages", json=_body("claude-nope", "hi"), headers=HEADERS)
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"
