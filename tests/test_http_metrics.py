"""`/metrics` as Prometheus scrapes it: gzip when the scrape asks (it always does), the text format otherwise."""

from __future__ import annotations

import gzip
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from monitor.http import build_http_app


@pytest.fixture
def client() -> httpx.AsyncClient:
    registry = CollectorRegistry()
    counter = Counter("llm_monitor_test_total", "a series", ["canary"], registry=registry)
    for i in range(200):
        counter.labels(f"canary-{i}").inc(i)
    daemon = SimpleNamespace(registry=registry, config=SimpleNamespace(web=SimpleNamespace(basic_auth_users={})))
    app = build_http_app(daemon)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://daemon")


async def _raw(client: httpx.AsyncClient, accept_encoding: str | None) -> tuple[httpx.Response, bytes]:
    """The response and its body as sent (not decoded)."""
    headers = {"accept-encoding": accept_encoding} if accept_encoding is not None else {}
    async with client:
        req = client.build_request("GET", "/metrics", headers=headers)
        if accept_encoding is None:
            del req.headers["accept-encoding"]
        resp = await client.send(req, stream=True)
        body = b"".join([chunk async for chunk in resp.aiter_raw()])
        return resp, body


# Found by a fleet-start benchmark: with 1,000 pairs a scrape was ~21 MB of text, sent uncompressed to a
# Prometheus that asks for gzip (0.6 MB at level 1).
@pytest.mark.parametrize("accept", ["gzip", "gzip, deflate", "deflate, gzip;q=0.5", "GZIP", "br,gzip"])
async def test_a_scrape_that_takes_gzip_gets_it(client: httpx.AsyncClient, accept: str) -> None:
    resp, body = await _raw(client, accept)
    assert resp.status_code == 200 and resp.headers["content-encoding"] == "gzip"
    assert resp.headers["vary"] == "Accept-Encoding"
    text = gzip.decompress(body).decode()
    assert 'llm_monitor_test_total{canary="canary-199"} 199.0' in text


@pytest.mark.parametrize("accept", [None, "identity", "gzip;q=0", "gzip; q=0.0", "deflate", "x-gzip-not"])
async def test_a_scrape_that_does_not_take_gzip_gets_the_text_format(client: httpx.AsyncClient,
                                                                     accept: str | None) -> None:
    resp, body = await _raw(client, accept)
    assert resp.status_code == 200 and "content-encoding" not in resp.headers
    assert resp.headers["content-type"].startswith("text/plain; version=")
    assert 'llm_monitor_test_total{canary="canary-199"} 199.0' in body.decode()


async def test_health_and_readiness_answer_under_the_prometheus_names_too() -> None:
    """`/-/healthy` and `/-/ready` (Prometheus, Alertmanager) answer as `/healthz` and `/readyz` do."""
    state = {"ready": False}
    daemon = SimpleNamespace(registry=CollectorRegistry(), config=SimpleNamespace(web=SimpleNamespace(
        basic_auth_users={})), ready=lambda: (state["ready"], {"store": state["ready"]}))
    app = build_http_app(daemon)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://daemon") as client:
        for path in ("/healthz", "/-/healthy"):
            assert (await client.get(path)).status_code == 200
        for path in ("/readyz", "/-/ready"):
            resp = await client.get(path)
            assert resp.status_code == 503 and resp.json() == {"ready": False, "store": False}
        state["ready"] = True
        for path in ("/readyz", "/-/ready"):
            assert (await client.get(path)).json() == {"ready": True, "store": True}

