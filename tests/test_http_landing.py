"""The page at `/`: a browser pointed at the daemon's address learns where things are, as on an exporter."""

from __future__ import annotations

import re
from types import SimpleNamespace

import httpx
from prometheus_client import CollectorRegistry
from starlette.routing import Match

from monitor import __version__
from monitor.http import build_http_app, drift_routes
from tests.support.pki import bcrypt_hash


def _daemon(users: dict[str, str] | None = None, canaries: int = 3, targets: int = 2) -> SimpleNamespace:
    config = SimpleNamespace(web=SimpleNamespace(basic_auth_users=users or {}), canaries=[object()] * canaries,
                             targets=[object()] * targets)
    return SimpleNamespace(registry=CollectorRegistry(), config=config)


async def test_the_root_lists_every_view_the_listener_serves() -> None:
    app = build_http_app(_daemon(), extra_routes=drift_routes(SimpleNamespace()))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://daemon") as client:
        r = await client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert f"Version {__version__}; 3 canaries, 2 targets." in r.text
    links = re.findall(r'href="([^"]+)"', r.text)
    assert {"/metrics", "/api/drift", "/-/healthy", "/-/ready"} <= set(links)
    for path in links:  # no dead link: each is a GET route of the app the daemon serves
        scope = {"type": "http", "path": path, "method": "GET"}
        assert any(route.matches(scope)[0] is Match.FULL for route in app.routes), path


async def test_the_root_counts_one_canary_and_one_target_in_the_singular() -> None:
    app = build_http_app(_daemon(canaries=1, targets=1))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://daemon") as client:
        r = await client.get("/")
    assert f"Version {__version__}; 1 canary, 1 target." in r.text  # was "1 canaries, 1 targets"


async def test_the_root_asks_for_credentials_like_every_other_path() -> None:
    app = build_http_app(_daemon({"alice": bcrypt_hash("pw-alice")}))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://daemon") as client:
        assert (await client.get("/")).status_code == 401
        r = await client.get("/", auth=("alice", "pw-alice"))
    assert r.status_code == 200 and "/metrics" in r.text
