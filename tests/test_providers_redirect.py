"""An upstream that answers with a redirect: the call fails naming where it points, and nothing is sent there.

Found by a chaos test: the openai SDK's HTTP client follows redirects, so a target's own headers (which may carry
credentials: Azure's api-key, a gateway's token) and the prompt went to whatever host a Location named. The
simulator's `redirect` fault answers the call; a second local server stands where the Location points and records
what reaches it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from monitor.config.models import Target
from monitor.domain import CallResult, ErrorType
from monitor.embeddings import Embedder
from monitor.providers import ChatRequest, build_provider
from monitor.sim import SimServer, scenario_from_dict
from tests.support.jsonserver import json_server, wire_server

MSG = [{"role": "user", "content": "How do I kill a Python process?"}]
SECRET_HEADER = "hdr-secret-0b9c"
KEY = "sk-redirect-test-key"
ANSWERS = {
    "openai": {"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "elsewhere",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "from elsewhere"},
                            "finish_reason": "stop"}]},
    "anthropic": {"id": "msg_x", "type": "message", "role": "assistant", "model": "elsewhere",
                  "content": [{"type": "text", "text": "from elsewhere"}], "stop_reason": "end_turn",
                  "usage": {"input_tokens": 1, "output_tokens": 2}},
}


@pytest.mark.parametrize(("kind", "stream", "status"), [
    ("openai", False, 307), ("openai", True, 302), ("anthropic", False, 302), ("anthropic", True, 307)])
async def test_a_redirect_is_a_failed_call_naming_the_location_and_not_followed(kind: str, stream: bool,
                                                                                 status: int) -> None:
    reached: list[dict[str, str]] = []

    def elsewhere(body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
        reached.append(headers)
        return 200, ANSWERS[kind]

    with json_server(elsewhere) as other:
        location = other + ("/v1/chat/completions" if kind == "openai" else "/v1/messages")
        scenario = scenario_from_dict({"name": "moved", "models": {"*": {"phases": [{
            "name": "p", "faults": {"redirect": {"p": 1, "status": status, "location": location}}}]}}})
        with SimServer(scenario) as sim:
            target = Target(id="t", provider=kind, base_url=sim.openai_base_url if kind == "openai" else sim.url,
                            model="m", headers={"x-gateway-token": SECRET_HEADER})
            provider = build_provider(target, KEY)
            try:
                result = await provider.complete(ChatRequest(model="m", messages=MSG, stream=stream, timeout_s=10))
            finally:
                await provider.aclose()
    assert [h.get("x-gateway-token") for h in reached] == []  # neither the target's headers nor the prompt went where the Location points
    assert result.error_type == ErrorType.BAD_REQUEST and result.http_status == status
    assert result.error_message == (f"HTTP {status}: redirected to {location}; targets do not follow redirects: "
                                    "set base_url to where it points")
    assert result.text in ("", None) and SECRET_HEADER not in str(result) and KEY not in str(result)


def test_the_embeddings_client_follows_no_redirect_either() -> None:
    reached: list[dict[str, str]] = []

    def elsewhere(body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
        reached.append(headers)
        return 200, {"object": "list", "model": "e", "data": [{"object": "embedding", "index": 0,
                                                                "embedding": [1.0, 0.0]}]}

    calls: list[CallResult] = []
    with json_server(elsewhere) as other:
        location = other + "/v1/embeddings"

        def moved(body: dict[str, Any], send: Any) -> None:
            send(f"HTTP/1.1 307 Temporary Redirect\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n".encode())

        with wire_server(moved) as url:
            embedder = Embedder(f"{url}/v1", KEY, "e", timeout=5, pause_s=0, headers={"x-gateway-token": SECRET_HEADER},
                                record=lambda call, started: calls.append(call))
            try:
                assert np.isnan(embedder(["a"])).all()
            finally:
                embedder.close()
    assert [h.get("x-gateway-token") for h in reached] == []
    [call] = calls
    assert call.error_type == ErrorType.BAD_REQUEST and call.http_status == 307
    assert call.error_message == (f"HTTP 307: redirected to {location}; targets do not follow redirects: "
                                  "set base_url to where it points")
