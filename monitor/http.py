"""The daemon's HTTP face: /metrics, health, a small read-only JSON API and an authenticated reload.

With `basic_auth_users` in the web config file every path asks for their credentials, as exporter-toolkit's
listeners do (health checks included: kubelet probes send them in `httpHeaders`), except `POST /-/reload`, which
keeps its own bearer token (one Authorization header cannot carry both)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hmac
import os
import re
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol, TypeVar

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse as StarletteJSON
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from monitor.config.loader import Config
from monitor.config.timing import period_s
from monitor.config.validate import redact_url
from monitor.configured import Configured
from monitor.domain import utcnow
from monitor.drift.events import ACCEPTED, OPEN, RESOLVED
from monitor.errors import MonitorError, shown
from monitor.escapes import json_text
from monitor.landing import landing_route
from monitor.paging import decode as decode_cursor
from monitor.paging import decode_event as decode_event_cursor
from monitor.paging import encode as encode_cursor
from monitor.store import ObservationKey, Store
from monitor.store.drift_repo import EventKey
from monitor.timeinput import EXAMPLE, parse_time
from monitor.webconfig.auth import BasicAuth


class Daemon(Protocol):
    """What the HTTP layer needs from the running app."""

    config: Config
    store: Store
    registry: CollectorRegistry

    def ready(self) -> tuple[bool, dict[str, bool]]: ...

    async def reload(self) -> tuple[bool, str]: ...


EVENT_STATES = (OPEN, RESOLVED, ACCEPTED)
RELOAD_PATH = "/-/reload"


class JSONResponse(StarletteJSON):
    """starlette's JSONResponse with the characters of monitor.escapes' rule escaped (`\\u009b`), as the commands'
    JSON lines write them: starlette writes non-ASCII as it is, a C1 CSI in a stored completion included, and
    `curl .../api/observations` showed it to a terminal as a control sequence."""

    def render(self, content: Any) -> bytes:
        return json_text(super().render(content).decode("utf-8")).encode("utf-8")


class BadQuery(Exception):
    """A query parameter the API cannot use; answered with 400 and a JSON error naming it."""


Key = TypeVar("Key", ObservationKey, EventKey)
Row = TypeVar("Row")


def _int(q: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter of at least `lo`, in ASCII digits; values above `hi` are capped at `hi`."""
    value = q.get(name)
    if value is None or value == "":
        return default
    # ASCII digits only: int() also takes '１２' (full-width), '1_0' and spaces around
    if not re.fullmatch(r"-?[0-9]{1,4000}", value):
        raise BadQuery(f"{name}: not a whole number (digits 0-9): {shown(value)}")
    n = int(value)
    if n < lo:
        raise BadQuery(f"{name}: must be at least {lo} (got {shown(n)})")
    return min(hi, n)


# A started_at pasted into a URL as it is ("...T13:38:00.685457+00:00"): the query string decodes its '+' to a space.
# Only after a time of day: in "2026-11-29 13:38" the space is the date's separator, not an offset's sign.
_PLUS_DECODED = re.compile(r"(:\d\d(?:\.\d+)?) (\d\d:?\d\d)$")


def _time(q: Mapping[str, str], name: str) -> datetime | None:
    """A time query parameter as `timeinput.parse_time` reads it (UTC when it names no zone), or None when absent;
    a zone offset whose '+' the URL turned into a space (an unencoded started_at) is read as the '+' it was."""
    value = q.get(name)
    if value is None or value == "":
        return None
    try:
        return parse_time(_PLUS_DECODED.sub(r"\1+\2", value))
    except ValueError as e:
        raise BadQuery(f"{name}: {e}: {shown(value, 100)} (e.g. {EXAMPLE})") from None


def _cursor(q: Mapping[str, str], decode: Callable[[str], Key]) -> Key | None:
    """The `cursor` query parameter (the place a previous page ended), or None when absent."""
    value = q.get("cursor")
    if value is None or value == "":
        return None
    try:
        return decode(value)
    except ValueError:
        raise BadQuery(f"cursor: not a cursor this API gave: {shown(value)} (take the next page's from the Link or "
                       "X-Next-Cursor header of the page before)") from None


def _next_page(request: Request, rows: list[Row], limit: int, key: Callable[[Row], ObservationKey | EventKey],
               ) -> dict[str, str]:
    """The headers that lead to the next page, given the rows read with a `limit` of one more than asked for: that
    one row more says a next page exists (the last page has no link). RFC 8288, as GitHub pages: this request's URL
    with every other parameter kept and the cursor set."""
    if len(rows) <= limit:
        return {}
    cursor = encode_cursor(key(rows[limit - 1]))
    return {"link": f'<{request.url.include_query_params(cursor=cursor)}>; rel="next"', "x-next-cursor": cursor}


def _accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header takes gzip (Prometheus sends `gzip` on every scrape), not with q=0."""
    for part in accept_encoding.lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() == "gzip":
            q = params.replace(" ", "")
            return not re.fullmatch(r"q=0(\.0*)?", q)
    return False


def _exposition(registry: CollectorRegistry, compress: bool) -> bytes:
    """The registry in the text format; gzipped at level 1 when asked: with 1,000 pairs the text is ~21 MB and
    compresses to ~0.6 MB in ~40 ms (level 9: 0.4 MB in ~160 ms), as exporters serve Prometheus."""
    body = generate_latest(registry)
    return gzip.compress(body, compresslevel=1, mtime=0) if compress else body


async def _bad_query(_: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=400)


STARTING = ("the daemon is starting (migrating the store, building its providers, taking the lead or standing by): "
            "the API answers once it has started; /healthz, /readyz and /metrics answer meanwhile")


def build_http_app(daemon: Daemon, *, environ: Mapping[str, str] | None = None,
                   extra_routes: list[Route] | None = None, starting: Callable[[], bool] = lambda: False) -> Starlette:
    """Build the ASGI app; `extra_routes` lets later features (drift, alerts) add their read-only views. While
    `starting()` the API's views (/api/..., whose store may not be migrated yet) answer 503 with a JSON error."""
    env = os.environ if environ is None else environ

    def until_started(view: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def guarded(request: Request) -> Response:
            if starting():
                return JSONResponse({"error": STARTING}, status_code=503, headers={"retry-after": "5"})
            return await view(request)  # type: ignore[no-any-return]

        return guarded

    async def metrics(request: Request) -> Response:
        compress = _accepts_gzip(request.headers.get("accept-encoding", ""))
        body = await asyncio.to_thread(_exposition, daemon.registry, compress)
        headers = {"vary": "Accept-Encoding", **({"content-encoding": "gzip"} if compress else {})}
        return Response(body, media_type=CONTENT_TYPE_LATEST, headers=headers)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(_: Request) -> Response:
        ok, parts = await asyncio.to_thread(daemon.ready)
        return JSONResponse({"ready": ok, **parts}, status_code=200 if ok else 503)

    async def canaries(_: Request) -> Response:
        cfg, now = daemon.config, utcnow()
        return JSONResponse([{
            "id": c.id, "description": c.description, "samples": c.samples, "tags": c.tags,
            "schedule": c.schedule.model_dump(exclude_none=True), "interval_s": period_s(c.schedule, now),
            "targets": [t.id for t in cfg.targets_of(c)], "checks": [_check_dict(x) for x in c.checks],
            "source": c.source,
        } for c in cfg.canaries])

    async def targets(_: Request) -> Response:
        return JSONResponse([{
            "id": t.id, "provider": t.provider, "base_url": redact_url(t.base_url), "model": t.model, "stream": t.stream,
            "params": t.params.model_dump(exclude_none=True), "max_concurrency": t.max_concurrency,
            "daily_spend_cap_usd": t.daily_spend_cap_usd,
        } for t in daemon.config.targets])

    async def observations(request: Request) -> Response:
        q = request.query_params
        limit = _int(q, "limit", 50, 1, 1000)
        since, until, after = _time(q, "since"), _time(q, "until"), _cursor(q, decode_cursor)
        rows = await asyncio.to_thread(daemon.store.observations, canary=q.get("canary") or None,
                                       target=q.get("target") or None, limit=limit + 1, since=since, before=until,
                                       after=after)
        headers = _next_page(request, rows, limit, ObservationKey.of)
        return JSONResponse([o.as_json() for o in rows[:limit]], headers=headers)

    async def reload(request: Request) -> Response:
        token = env.get(daemon.config.http.reload_token_env, "")
        if not token:
            return JSONResponse({"error": f"reload over HTTP is disabled: set {daemon.config.http.reload_token_env}"},
                                status_code=403)
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401,
                                headers={"www-authenticate": "Bearer"})
        ok, message = await daemon.reload()
        return JSONResponse({"reloaded": ok, "message": message}, status_code=200 if ok else 400)

    api = [Route("/api/canaries", canaries), Route("/api/targets", targets), Route("/api/observations", observations),
           *(extra_routes or [])]
    routes = [
        landing_route(daemon), Route("/metrics", metrics), Route("/healthz", healthz), Route("/readyz", readyz),
        # Prometheus's and Alertmanager's names for the same probes, so their users' checks work unchanged
        Route("/-/healthy", healthz), Route("/-/ready", readyz), Route(RELOAD_PATH, reload, methods=["POST"]),
        *(Route(r.path, until_started(r.endpoint), methods=list(r.methods or ()) or None) for r in api),
    ]
    auth = Middleware(BasicAuth, users=lambda: daemon.config.web.basic_auth_users, exempt={RELOAD_PATH})
    return Starlette(routes=routes, exception_handlers={BadQuery: _bad_query}, middleware=[auth])


def _check_dict(check: Any) -> Any:
    return check.model_dump(exclude_none=True) if hasattr(check, "model_dump") else check


def drift_routes(analysis: Any, configured: Callable[[], Configured] | None = None) -> list[Route]:
    """Read-only views of drift events: /api/drift?canary=&target=&state= and /api/drift/{id}. With `configured`
    (the canary x target pairs the config in force has, and their checks), each event says whether its pair is one
    and, on a check's signal, still has that check (`configured`: an open event of a pair or check since removed
    stays open, nothing watching it), as `llm-monitor drift --json` does."""

    def marked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if configured is None:
            return rows
        now = configured()
        return [{**r, "configured": now.event(r)} for r in rows]

    async def events(request: Request) -> Response:
        q = request.query_params
        state = q.get("state") or None
        if state not in (None, *EVENT_STATES):
            raise BadQuery(f"state: must be one of {', '.join(EVENT_STATES)} (got {shown(state)})")
        limit, after = _int(q, "limit", 100, 1, 1000), _cursor(q, decode_event_cursor)
        rows = await asyncio.to_thread(analysis.repo.events, canary=q.get("canary") or None,
                                       target=q.get("target") or None, state=state, limit=limit + 1, after=after)
        headers = _next_page(request, rows, limit, EventKey.of)
        return JSONResponse(marked(rows[:limit]), headers=headers)

    async def event(request: Request) -> Response:
        row = await asyncio.to_thread(analysis.repo.event, request.path_params["event_id"])
        if row is None:
            return JSONResponse({"error": "no such drift event"}, status_code=404)
        return JSONResponse(marked([row])[0])

    async def baselines(request: Request) -> Response:
        q = request.query_params
        rows = await asyncio.to_thread(analysis.repo.baselines, canary=q.get("canary") or None,
                                       target=q.get("target") or None)
        return JSONResponse([{**{k: v for k, v in r.items() if k != "data"}, "created_at": r["created_at"].isoformat()}
                             for r in rows])

    return [Route("/api/drift", events), Route("/api/drift/{event_id}", event), Route("/api/baselines", baselines)]


def drift_disabled_routes() -> list[Route]:
    """With `drift.enabled: false` the drift views answer 404 with a JSON error saying why, not a bare Not Found."""

    async def disabled(_: Request) -> Response:
        return JSONResponse({"error": "drift analysis is disabled (drift.enabled: false); `llm-monitor drift` "
                                      "and `baseline show` still read what the store holds"}, status_code=404)

    return [Route("/api/drift", disabled), Route("/api/drift/{event_id}", disabled), Route("/api/baselines", disabled)]


class Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the app owns SIGTERM, SIGINT and SIGHUP."""

    @classmethod
    def for_app(cls, app: Starlette, tls: ssl.SSLContext | None = None) -> Server:
        """The daemon's server: warnings and errors only, no access log, and uvicorn's records go through the
        daemon's log handler (`--log-format`): uvicorn's own logging config would write text lines
        ("WARNING:  Invalid HTTP request received.") into a JSON log. With `tls` it serves HTTPS with that context
        (built from the web config file; uvicorn's own ssl_* options would build one that a reload cannot renew)."""
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, log_config=None)
        if tls is not None:
            config.load()
            config.ssl = tls
        return cls(config)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the app owns signal handling
        yield


def listen_socket(host: str, port: int) -> socket.socket:
    """Bind the HTTP socket ourselves so a busy port is a clear error, and port 0 works in tests."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise MonitorError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    sock.listen(128)
    sock.setblocking(False)
    return sock
