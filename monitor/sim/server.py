"""Assemble the simulator's ASGI app and run it with uvicorn, in a background thread or blocking."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from monitor.sim import admin, anthropic_api, embeddings, openai_api
from monitor.sim.engine import Engine
from monitor.sim.playback import T0_KEY, Transports, protocol_class
from monitor.sim.scenario import Scenario
from monitor.stamps import StampingListener

PACING_LOG = 10_000  # how many streamed responses /_sim/pacing remembers


class _StampArrival:
    """Record when each request arrived where the protocol did not (TTFT is scheduled from arrival)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault(T0_KEY, asyncio.get_running_loop().time())  # the protocol notes it earlier
        await self.app(scope, receive, send)


def build_app(scenario: Scenario, *, seed: int | None = None,
              clock: Callable[[], float] = time.monotonic) -> Starlette:
    """Build the simulator's ASGI app for ``scenario`` (``seed`` overrides the scenario's)."""
    routes = [
        Route("/v1/chat/completions", openai_api.chat_completions, methods=["POST"]),
        Route("/v1/models", openai_api.list_models, methods=["GET"]),
        Route("/v1/embeddings", embeddings.embeddings, methods=["POST"]),
        Route("/v1/messages", anthropic_api.messages, methods=["POST"]),
        Route("/_sim/state", admin.state, methods=["GET"]),
        Route("/_sim/phase", admin.force_phase, methods=["POST"]),
        Route("/_sim/reset", admin.reset, methods=["POST"]),
        Route("/_sim/pacing", admin.pacing, methods=["GET"]),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(_StampArrival)])
    app.state.sim_engine = Engine(scenario, seed, clock)
    app.state.sim_transports = {}  # filled by the uvicorn protocol from protocol_class()
    app.state.sim_pacing = deque(maxlen=PACING_LOG)  # filled by Script.mark
    return app


def _config(app: Starlette, log_level: str, listener: StampingListener) -> uvicorn.Config:
    transports: Transports = app.state.sim_transports
    # loop="asyncio": uvloop would neither accept through the listener nor read through its stamped sockets.
    # log_config=None: uvicorn's records (access lines included) go through the process's log handler, in the
    # format `--log-format` chose, rather than through uvicorn's own text handlers.
    return uvicorn.Config(app, http=protocol_class(transports, listener), ws="none", lifespan="off", loop="asyncio",
                          log_level=log_level, log_config=None, timeout_graceful_shutdown=1)


def _listen(host: str, port: int) -> StampingListener:
    """A socket bound to (host, port) whose connections note when requests reach the host."""
    sock = StampingListener(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def serve(scenario: Scenario, host: str = "127.0.0.1", port: int = 8400, *, seed: int | None = None,
          log_level: str = "info", on_listening: Callable[[str], None] | None = None) -> None:
    """Serve the simulator until interrupted (the ``llm-monitor sim`` command).

    OSError when (host, port) cannot be bound; ``on_listening`` runs once the port is this server's, given its
    base URL (with the port bound: the one chosen when `port` is 0).
    """
    listener = _listen(host, port)
    if on_listening is not None:
        on_listening(base_url(host, int(listener.getsockname()[1])))
    uvicorn.Server(_config(build_app(scenario, seed=seed), log_level, listener)).run(sockets=[listener])


def base_url(host: str, port: int) -> str:
    """The simulator's base URL on `host` and `port` (an IPv6 address in brackets)."""
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


class SimServer:
    """The simulator running in a background thread on a loopback port, for tests and demos.

    Use it as a context manager; ``port`` is chosen free when 0. ``url`` is the Anthropic base URL,
    ``openai_base_url`` the OpenAI one. ``engine`` gives direct access to the scenario state.
    """

    def __init__(self, scenario: Scenario, host: str = "127.0.0.1", port: int = 0, *, seed: int | None = None,
                 log_level: str = "warning") -> None:
        self.host = host
        self.app = build_app(scenario, seed=seed)
        self._sock = _listen(host, port)
        self.port: int = self._sock.getsockname()[1]
        self._server = uvicorn.Server(_config(self.app, log_level, self._sock))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Return the base URL (what Anthropic clients use)."""
        return base_url(self.host, self.port)

    @property
    def openai_base_url(self) -> str:
        """Return the OpenAI base URL (``url`` + ``/v1``)."""
        return self.url + "/v1"

    @property
    def engine(self) -> Engine:
        """Return the engine holding the scenario and per-model state."""
        return self.app.state.sim_engine

    def start(self, timeout_s: float = 10.0) -> SimServer:
        """Start serving in a background thread; return once the socket accepts connections."""
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"sim-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"simulator did not start on {self.url}")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
