"""The Anthropic Messages face of the simulator: POST /v1/messages, streaming and not."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request

from monitor.sim import faults, quirks, textgen
from monitor.sim.engine import Engine, Plan, SimRequest, content_text
from monitor.sim.faults import Stream
from monitor.sim.playback import Script, arrival
from monitor.sim.prompt_cache import breakpoints, tool_tokens
from monitor.sim.scenario import CUT_STYLES

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
_THINKING = {"type": "thinking", "thinking": "", "signature": ""}
_REDACTED = {"type": "redacted_thinking", "data": "RWNyeXB0ZWQgdGhpbmtpbmcgKHNpbSk="}  # opaque, never text


def _error(status: int, type_: str, message: str, headers: dict[str, str] | None = None,
           delay_s: float = 0.0) -> Script:
    return Script().json(status, {"type": "error", "error": {"type": type_, "message": message}}, headers or {},
                         delay_s)


def parse(body: Any) -> SimRequest | str:
    """Turn a Messages API body into a SimRequest, or return the reason it is invalid."""
    if not isinstance(body, dict):
        return "The request body is not valid JSON."
    model, messages, max_tokens = body.get("model"), body.get("messages"), body.get("max_tokens")
    if not isinstance(model, str) or not model:
        return "model: Field required"
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        return "max_tokens: Field required"
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return "messages: Field required"
    texts = [content_text(m.get("content")) for m in messages]
    users = [t for m, t in zip(messages, texts, strict=True) if m.get("role") == "user"]
    tool = None
    tools = body.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], dict):
        tool = {"name": str(tools[0].get("name", "tool")), "schema": tools[0].get("input_schema") or {}}
    system = content_text(body.get("system"))
    return SimRequest(
        api="anthropic", model=model, prompt=users[-1] if users else texts[-1],
        input_tokens=sum(textgen.count_tokens(t) for t in texts) + textgen.count_tokens(system) + 3 * len(texts)
        + tool_tokens(tools),
        stream=bool(body.get("stream")), max_tokens=max_tokens, temperature=body.get("temperature"), tool=tool,
        cache_points=breakpoints(body.get("system"), messages, body.get("tools")),
    )


def _headers(plan: Plan) -> dict[str, str]:
    rl = plan.ratelimit
    reset = (datetime.now(UTC) + timedelta(seconds=rl["reset_s"])).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "request-id": "req_" + plan.request_id,
        "anthropic-ratelimit-requests-limit": str(rl["limit_requests"]),
        "anthropic-ratelimit-requests-remaining": str(rl["remaining_requests"]),
        "anthropic-ratelimit-requests-reset": reset,
        "anthropic-ratelimit-tokens-limit": str(rl["limit_tokens"]),
        "anthropic-ratelimit-tokens-remaining": str(rl["remaining_tokens"]),
        "anthropic-ratelimit-tokens-reset": reset,
    }


def _stop_reason(plan: Plan) -> str:
    if plan.refusal is not None and plan.refusal.style in ("field", "content_filter"):
        return "refusal"
    return plan.length_stop if plan.finish == "length" else _STOP[plan.finish]


def _text_tokens(plan: Plan) -> list[str]:
    if plan.refusal is not None and plan.refusal.style in CUT_STYLES:
        return plan.tokens[: plan.refusal_split]
    return plan.tokens


def _usage(plan: Plan) -> dict[str, Any]:
    """The usage object: `input_tokens` are those neither read from the cache nor written to it."""
    written = plan.cache_write_tokens + plan.cache_write_1h_tokens
    return {"input_tokens": plan.input_tokens - plan.cached_tokens - written, "cache_creation_input_tokens": written,
            "cache_read_input_tokens": plan.cached_tokens,
            "cache_creation": {"ephemeral_5m_input_tokens": plan.cache_write_tokens,
                               "ephemeral_1h_input_tokens": plan.cache_write_1h_tokens},
            "output_tokens": plan.output_tokens, "service_tier": "standard"}


def _message(plan: Plan, content: list[dict[str, Any]], stop: str | None, usage: dict[str, Any]) -> dict[str, Any]:
    return {"id": "msg_" + plan.response_id, "type": "message", "role": "assistant", "model": plan.response_model,
            "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage}


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def _stream(plan: Plan) -> Stream:
    start_usage = {**_usage(plan), "output_tokens": 1}
    call = plan.tool_call
    if call is not None:
        block = {"type": "tool_use", "id": "toolu_" + call["id"], "name": call["name"], "input": {}}
        pieces, delta_type, key = textgen.tokens(call["arguments"]), "input_json_delta", "partial_json"
    else:
        block = {"type": "text", "text": ""}
        pieces, delta_type, key = _text_tokens(plan), "text_delta", "text"
    thinking = plan.thinking()  # a thinking block first, streamed at the answer's pace
    index = 1 if thinking else 0
    opening = _event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})
    if plan.redacted:  # a whole redacted_thinking block first (index 0): the answer's block is the next
        index = 1
        opening = _event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": _REDACTED}) \
            + _event("content_block_stop", {"type": "content_block_stop", "index": 0}) \
            + _event("content_block_start", {"type": "content_block_start", "index": 1, "content_block": block})
    preamble = [
        _event("message_start", {"type": "message_start", "message": _message(plan, [], None, start_usage)}),
        _event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": _THINKING})
        if thinking else opening,
        _event("ping", {"type": "ping"}),
    ]
    step = plan.chunk_tokens
    events = [
        (plan.ttft_s + i / plan.tps,
         _event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "thinking_delta", "thinking": "".join(thinking[i: i + step])}}))
        for i in range(0, len(thinking), step)
    ]
    start = plan.ttft_s + len(thinking) / plan.tps
    for i in range(0, len(pieces), step):
        event = _event("content_block_delta", {"type": "content_block_delta", "index": index,
                                               "delta": {"type": delta_type, key: "".join(pieces[i: i + step])}})
        if thinking and i == 0:  # close the thinking block and open the answer's as the answer begins
            event = _event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                   "delta": {"type": "signature_delta", "signature": "c2lt"}}) + \
                _event("content_block_stop", {"type": "content_block_stop", "index": 0}) + opening + event
        events.append((start + i / plan.tps, event))
    tail = [
        _event("content_block_stop", {"type": "content_block_stop", "index": index}),
        _event("message_delta", {"type": "message_delta",
                                 "delta": {"stop_reason": _stop_reason(plan), "stop_sequence": None},
                                 "usage": {"output_tokens": plan.output_tokens}}),
        _event("message_stop", {"type": "message_stop"}),
    ]
    if plan.refusal is not None and plan.refusal.style == "output_blocked":  # the answer so far, then the block
        tail = [_event("error", {"type": "error", "error": {"details": None, "type": "invalid_request_error",
                                                            "message": "Output blocked by content filtering policy"}})]
    error = _event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    if "openai_error_events" in plan.quirks:
        error = quirks.openai_error_event()
    malformed = b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {"ty\n\n'
    return Stream(preamble, events, start + len(pieces) / plan.tps, tail, error, malformed, -(-len(thinking) // step))


def _content(plan: Plan) -> list[dict[str, Any]]:
    thinking = plan.thinking()
    blocks = [{**_THINKING, "thinking": "".join(thinking), "signature": "c2lt"}] if thinking else \
        [_REDACTED] if plan.redacted else []
    call = plan.tool_call
    if call is None:
        return [*blocks, {"type": "text", "text": "".join(_text_tokens(plan))}]
    try:
        args = json.loads(call["arguments"])
    except ValueError:
        args = {}
    return [*blocks, {"type": "tool_use", "id": "toolu_" + call["id"], "name": call["name"], "input": args}]


def _fault_response(plan: Plan, headers: dict[str, str]) -> Script | None:
    if (moved := faults.redirect(plan, headers)) is not None:
        return moved
    retry = faults.retry_after(plan)
    if plan.fault == "rate_limit":
        hdrs = {**headers, **retry, "anthropic-ratelimit-requests-remaining": "0"}
        return _error(429, "rate_limit_error", "Number of requests has exceeded your rate limit.", hdrs)
    if plan.fault == "server_error":
        return _error(500, "api_error", "Internal server error", headers)
    if plan.fault == "unavailable":
        return _error(503, "api_error", "Service temporarily unavailable", {**headers, **retry})
    if plan.fault == "overloaded" and not plan.stream:
        return _error(529, "overloaded_error", "Overloaded", headers)
    blocked = plan.refusal is not None and plan.refusal.style == "output_blocked" and not plan.stream
    if plan.refusal is not None and plan.refusal.style in ("http_400", "invalid_prompt") or blocked:
        return _error(400, "invalid_request_error", "Output blocked by content filtering policy", headers,
                      plan.ttft_s + faults.hold(plan))
    return None


async def messages(request: Request) -> Script:
    """Handle POST /v1/messages."""
    engine: Engine = request.app.state.sim_engine
    key = engine.scenario.api_key
    if key is not None and request.headers.get("x-api-key") != key:
        return _error(401, "authentication_error", "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        return _error(400, "invalid_request_error", "anthropic-version: header is required")
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = None
    req = parse(body)
    if isinstance(req, str):
        return _error(400, "invalid_request_error", req)
    req.waited_s = asyncio.get_running_loop().time() - arrival(request.scope)  # the first token is due from arrival
    plan = engine.plan(req)
    if plan is None:
        return _error(404, "not_found_error", f"model: {req.model}")
    headers = _headers(plan)
    script = _fault_response(plan, headers)
    if script is not None:
        return script
    if req.stream:
        hdrs = {**headers, "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
        return faults.stream_script(plan, hdrs, _stream(plan))
    body_out = _message(plan, _content(plan), _stop_reason(plan), _usage(plan))
    return faults.body_script(plan, headers, json.dumps(body_out).encode())
