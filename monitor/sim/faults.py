"""Turn a plan's body into a timed script, injecting its fault (cut, stall, reset, malformed, hold, error,
redirect).

Both API modules use these builders: they supply the encoded events (or body) and their own error payloads;
this module decides what goes out when, and where the fault strikes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from monitor.sim.engine import Plan
from monitor.sim.playback import Script
from monitor.sim.scenario import CutFault, MidFault, RedirectFault, RetryFault, StallFault, TimeoutFault

STATUS_FAULTS = ("rate_limit", "server_error", "unavailable")


def retry_after(plan: Plan) -> dict[str, str]:
    """Return the Retry-After header for a fault that carries one."""
    spec = plan.fault_spec
    if isinstance(spec, RetryFault):
        return {"retry-after": str(max(0, math.ceil(spec.retry_after_s)))}
    return {}


def redirect(plan: Plan, headers: dict[str, str]) -> Script | None:
    """The answer of a redirect fault: its status and Location, a short JSON body; None for any other plan."""
    spec = plan.fault_spec
    if plan.fault != "redirect" or not isinstance(spec, RedirectFault):
        return None
    return Script().json(spec.status, {"message": f"moved to {spec.location}"}, {**headers, "location": spec.location})


def hold(plan: Plan) -> float:
    """Return how long a timeout fault holds the request before anything is sent."""
    return plan.fault_spec.hold_s if isinstance(plan.fault_spec, TimeoutFault) else 0.0


@dataclass
class Stream:
    """A streamed body: events sent at once, timed content events, and the closing events."""

    preamble: list[bytes]
    events: list[tuple[float, bytes]]  # (seconds after arrival, encoded event)
    end_s: float
    tail: list[bytes]  # finish, usage and terminator; what a cut stream never gets
    error_event: bytes  # an in-stream "overloaded" error
    malformed_event: bytes
    first_content: int = 0  # the index of the first event of the answer (reasoning streamed before it)


def stream_script(plan: Plan, headers: dict[str, str], stream: Stream) -> Script:
    """Build the script for a streamed answer with the plan's fault applied."""
    script = Script(plan.request_id)
    fault, spec = plan.fault, plan.fault_spec
    if fault == "reset" and isinstance(spec, MidFault) and spec.at == 0:
        return script.reset()
    shift = hold(plan)
    script.at(shift).start(200, headers)
    for event in stream.preamble:
        script.send(event)
    cut = len(stream.events)
    if isinstance(spec, MidFault) and fault in ("stream_cut", "stall", "reset"):
        cut = min(len(stream.events), int(spec.at * len(stream.events)))
    elif fault in ("malformed", "overloaded"):
        cut = len(stream.events) // 2
    for i, (offset, event) in enumerate(stream.events):
        if i == cut:
            if fault == "stall" and isinstance(spec, StallFault):
                script.at(offset + shift)
                shift += spec.stall_s
            elif fault == "malformed":
                script.at(offset + shift).send(stream.malformed_event)
            elif fault == "overloaded":
                return script.at(offset + shift).send(stream.error_event).end()
            elif fault == "reset":
                return script.reset()
            elif fault == "stream_cut":
                return _cut(script, spec)
        script.at(offset + shift).send(event)
        if i == stream.first_content:
            script.mark("first_content")
    if cut == len(stream.events):  # the fault point is past the last content event
        if fault == "reset":
            return script.reset()
        if fault == "stream_cut":
            if isinstance(spec, CutFault):
                _closing(script, stream.end_s + shift, stream.tail[:spec.tail])
            return _cut(script, spec)
        if fault == "overloaded":
            return script.at(stream.end_s + shift).send(stream.error_event).end()
        if fault == "stall" and isinstance(spec, StallFault):
            _closing(script, stream.end_s + shift, stream.tail[:spec.tail])
            shift += spec.stall_s
            _closing(script, stream.end_s + shift, stream.tail[spec.tail:])
            return script.end()
    script.at(stream.end_s + shift)
    for event in stream.tail:
        script.send(event)
    return script.end()


def _closing(script: Script, at: float, events: list[bytes]) -> None:
    """Send some of the stream's closing events at `at` (`TailFault.tail`: the fault falls inside the stream's
    end), if any."""
    if events:
        script.at(at)
        for event in events:
            script.send(event)


def _cut(script: Script, spec: object) -> Script:
    return script.close() if isinstance(spec, CutFault) and spec.abrupt else script.end()


def body_script(plan: Plan, headers: dict[str, str], body: bytes) -> Script:
    """Build the script for a whole JSON answer with the plan's fault applied."""
    script = Script()
    fault, spec = plan.fault, plan.fault_spec
    delay = plan.total_s() + hold(plan)
    if fault == "reset" and isinstance(spec, MidFault) and spec.at == 0:
        return script.reset()
    if fault == "malformed":
        body = body[: len(body) // 2]
    headers = {**headers, "content-type": "application/json", "content-length": str(len(body))}
    script.at(delay).start(200, headers)
    if fault in ("stream_cut", "stall", "reset") and isinstance(spec, MidFault):
        split = min(len(body) - 1, max(1, int(len(body) * spec.at)))
        script.send(body[:split])
        if fault == "reset":
            return script.reset()
        if fault == "stream_cut":
            return script.close()
        if isinstance(spec, StallFault):
            script.sleep(spec.stall_s)
        return script.send(body[split:]).end()
    return script.send(body).end()
