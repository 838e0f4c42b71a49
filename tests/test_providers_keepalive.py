"""Pooled connections to an upstream are closed by us once idle KEEPALIVE_EXPIRY_S (4 s), under the 5 s after which
servers commonly close an idle keep-alive connection themselves (nginx's keepalive_timeout default is 75 s, but
Node's and many load balancers' idle timeouts are 5 s): a call sent on a connection as the server closes it fails
for nothing. Checked against a real local server that keeps connections alive and counts them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from monitor.config.models import Target
from monitor.providers import ChatRequest, build_provider
from monitor.providers.arrival import KEEPALIVE_EXPIRY_S

ANSWERS = {
    "openai": {"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "m",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}},
    "anthropic": {"id": "msg_x", "type": "message", "role": "assistant", "model": "m",
                  "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                  "usage": {"input_tokens": 1, "output_tokens": 1}},
}


@contextlib.contextmanager
def keep_alive_server(answer: dict[str, Any]) -> Iterator[tuple[str, list[int]]]:
    """An HTTP/1.1 server keeping each connection open for the next request; yields its URL and a list that gets
    one entry per connection accepted."""
    connections: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the connection stays open after the answer

        def setup(self) -> None:
            super().setup()
            connections.append(1)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            out = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", connections
    finally:
        server.shutdown()
        server.server_close()


def _request() -> ChatRequest:
    return ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}], stream=False, timeout_s=10)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_a_connection_idle_past_the_expiry_is_not_reused(kind: str) -> None:
    # Found by QA: the pools kept idle connections for httpx's default 5 s, as long as servers commonly keep them:
    # a call sent at that moment races the server's close and fails as a broken connection
    assert KEEPALIVE_EXPIRY_S == 4.0
    with keep_alive_server(ANSWERS[kind]) as (url, connections):
        provider = build_provider(Target(id="t", provider=kind, base_url=f"{url}/v1" if kind == "openai" else url,
                                         model="m", stream=False), "sk-keepalive-test")
        try:
            assert (await provider.complete(_request())).ok
            assert (await provider.complete(_request())).ok  # at once: the pooled connection is reused
            assert len(connections) == 1
            await asyncio.sleep(KEEPALIVE_EXPIRY_S + 0.5)  # idle past our expiry, not yet past the servers' 5 s
            assert (await provider.complete(_request())).ok
            assert len(connections) == 2  # we closed the idle one: a new connection, not a reuse racing a close
        finally:
            await provider.aclose()
