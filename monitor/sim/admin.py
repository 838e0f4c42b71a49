"""The simulator's admin API for tests and demos: inspect state, force a phase, reset."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse

from monitor.sim.engine import Engine


def _engine(request: Request) -> Engine:
    return request.app.state.sim_engine


async def state(request: Request) -> JSONResponse:
    """Handle GET /_sim/state: uptime, and per model the phase, forced flag and request count."""
    return JSONResponse(_engine(request).state())


async def force_phase(request: Request) -> JSONResponse:
    """Handle POST /_sim/phase {model, phase}: pin a phase, or phase null to return to automatic."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("model"), str) or "phase" not in body:
        return JSONResponse({"error": "expected a JSON object {model: str, phase: str | null}"}, 400)
    phase = body["phase"]
    if phase is not None and not isinstance(phase, str):
        return JSONResponse({"error": "phase must be a string or null"}, 400)
    engine = _engine(request)
    try:
        engine.force(body["model"], phase)
    except KeyError as exc:
        return JSONResponse({"error": exc.args[0]}, 404)
    return JSONResponse(engine.state())


async def reset(request: Request) -> JSONResponse:
    """Handle POST /_sim/reset: forget counters, forced phases and the start time."""
    engine = _engine(request)
    engine.reset()
    return JSONResponse(engine.state())


async def pacing(request: Request) -> JSONResponse:
    """Handle GET /_sim/pacing: for recent streamed answers, when the request arrived, when the first content
    event was due and when it was really written (the simulator's own monotonic clock, seconds).

    ``sent - scheduled`` is the simulator's own lateness. A client that timestamps with the same clock (CLOCK_MONOTONIC
    on Linux: Python's ``time.monotonic``/``perf_counter``) can tell its measurement error apart from it.
    """
    return JSONResponse(list(request.app.state.sim_pacing))
