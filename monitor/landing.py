"""The page at `/`: what this listener serves, linked, as the landing page of a Prometheus exporter shows it.

Someone who opens the daemon's address in a browser (or a curl at the wrong path) learns where the metrics, the
JSON API and the health checks are, instead of a bare 404. The page is static apart from the version and the
counts of canaries and targets of the running config; it shows nothing the JSON API does not (no base URLs)."""

from __future__ import annotations

from html import escape
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from monitor import __version__
from monitor.counted import counted

LINKS = (
    ("/metrics", "Prometheus metrics (gzip when asked)"),
    ("/api/canaries", "canaries of the running config"),
    ("/api/targets", "targets (keys never shown)"),
    ("/api/observations", "newest observations (?canary=&target=&since=&until=&limit=)"),
    ("/api/drift", "drift events (?canary=&target=&state=open|resolved|accepted)"),
    ("/api/baselines", "baselines per canary x target"),
    ("/-/healthy", "liveness (also /healthz)"),
    ("/-/ready", "readiness: store, scheduler, leader (also /readyz)"),
)


def page(canaries: int, targets: int) -> str:
    """Return the landing page's HTML for a config with that many canaries and targets."""
    items = "\n".join(f'<li><a href="{escape(path)}">{escape(path)}</a>: {escape(what)}</li>' for path, what in LINKS)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>llm-monitor</title></head>
<body>
<h1>llm-monitor</h1>
<p>Watches the LLM APIs you depend on: canary prompts on a schedule, drift detection, Prometheus metrics.</p>
<p>Version {escape(__version__)}; {counted(canaries, "canary")}, {counted(targets, "target")}.</p>
<ul>
{items}
</ul>
<p><code>POST /-/reload</code> (bearer token) reloads the config, as SIGHUP does.</p>
</body></html>
"""


def landing_route(daemon: Any) -> Route:
    """The `/` route: the page above, for the daemon's config at the time of the request."""

    async def landing(_: Request) -> Response:
        cfg = daemon.config
        return HTMLResponse(page(len(cfg.canaries), len(cfg.targets)))

    return Route("/", landing)
