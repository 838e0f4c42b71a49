"""The OpenAI chat-completions face of the simulator: /v1/chat/completions and /v1/models."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request

from monitor.sim import faults, quirks, textgen
from monitor.sim.engine import Engine, Plan, SimRequest, content_text
from monitor.sim.faults import Stream
from monitor.sim.playback import Script
from monitor.sim.scenario import CUT_STYLES


def _error(status: int, message: str, type_: str, code: str | None, headers: dict[str, str] | None = None,
           delay_s: float = 0.0) -> Script:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return Script().json(status, body, headers or {}, delay_s)


def _stream_options_forbidden() -> dict[str, Any]:
    """Mistral's 422 for stream_options, a request field it does not know (its request models forbid extra ones)."""
    detail = [{"type": "extra_forbidden", "loc": ["body", "stream_options", "include_usage"],
               "msg": "Extra inputs are not permitted", "input": True}]
    return {"object": "error", "message": {"detail": detail}, "type": "invalid_request_error", "param": None, "code": None}


def parse(body: Any) -> SimRequest | str:
    """Turn a chat-completions body into a SimRequest, or return the reason it is invalid."""
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request."
    model, messages = body.get("model"), body.get("messages")
    if not isinstance(model, str) or not model:
        return "you must provide a model parameter"
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return "'messages' must be a non-empty array of message objects"
    texts = [content_text(m.get("content")) for m in messages]
    users = [t for m, t in zip(messages, texts, strict=True) if m.get("role") == "user"]
    tool = None
    tools = body.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], dict):
        fn = tools[0].get("function") or {}
        tool = {"name": str(fn.get("name", "tool")), "schema": fn.get("parameters") or {"type": "object"}}
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    seed = body.get("seed")
    return SimRequest(
        api="openai", model=model, prompt=users[-1] if users else texts[-1],
        input_tokens=sum(textgen.count_tokens(t) for t in texts) + 3 * len(messages) + 3,
        stream=bool(body.get("stream")), max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        temperature=body.get("temperature"), seed=seed if isinstance(seed, int) else None, tool=tool,
    )


def _headers(plan: Plan, processing_s: float) -> dict[str, str]:
    rl = plan.ratelimit
    return {
        "x-request-id": "req_" + plan.request_id,
        "openai-processing-ms": str(round(processing_s * 1000)),
        "openai-version": "2020-10-01",
        "x-ratelimit-limit-requests": str(rl["limit_requests"]),
        "x-ratelimit-limit-tokens": str(rl["limit_tokens"]),
        "x-ratelimit-remaining-requests": str(rl["remaining_requests"]),
        "x-ratelimit-remaining-tokens": str(rl["remaining_tokens"]),
        "x-ratelimit-reset-requests": _reset(rl["reset_s"]),
        "x-ratelimit-reset-tokens": _reset(rl["reset_s"]),
    }


def _reset(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms" if seconds < 1 else f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


def _usage(plan: Plan) -> dict[str, Any]:
    if "usage_placeholder" in plan.quirks:  # a proxy's usage of zeros beside the text it returns
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    if plan.reasoning_field == "content":  # a server that does not know the content holds reasoning
        return {"prompt_tokens": plan.input_tokens, "completion_tokens": plan.output_tokens,
                "total_tokens": plan.input_tokens + plan.output_tokens}
    outside = plan.reasoning_tokens if "reasoning_outside_completion" in plan.quirks else 0
    if "cache_hit_fields" in plan.quirks:
        return {"prompt_tokens": plan.input_tokens, "completion_tokens": plan.output_tokens,
                "total_tokens": plan.input_tokens + plan.output_tokens, "prompt_cache_hit_tokens": plan.cached_tokens,
                "prompt_cache_miss_tokens": plan.input_tokens - plan.cached_tokens,
                "completion_tokens_details": {"reasoning_tokens": plan.reasoning_tokens}}
    return {
        "prompt_tokens": plan.input_tokens,
        "completion_tokens": plan.output_tokens - outside,
        "total_tokens": plan.input_tokens + plan.output_tokens,
        "prompt_tokens_details": {"cached_tokens": plan.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": plan.reasoning_tokens, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def _finish(plan: Plan) -> str:
    if plan.refusal is not None and plan.refusal.style in CUT_STYLES:
        return "content_filter"
    if plan.finish == "stop" and "finish_eos" in plan.quirks:
        return "eos"
    return plan.finish


def _fault_response(plan: Plan, headers: dict[str, str]) -> Script | None:
    if (moved := faults.redirect(plan, headers)) is not None:
        return moved
    retry = faults.retry_after(plan)
    if plan.fault == "rate_limit":
        hdrs = {**headers, **retry, "x-ratelimit-remaining-requests": "0"}
        msg = f"Rate limit reached for {plan.model} on requests per min (RPM). Please try again later."
        return _error(429, msg, "requests", "rate_limit_exceeded", hdrs)
    if plan.fault == "server_error":
        msg = "The server had an error while processing your request. Sorry about that!"
        return _error(500, msg, "server_error", None, headers)
    if plan.fault == "overloaded" and not plan.stream and quirks.failed_finish(plan.quirks):
        body = _completion(plan)
        body["choices"][0].update(finish_reason=quirks.failed_finish(plan.quirks),
                                  message={"role": "assistant", "content": plan.text[:20]})
        return Script().json(200, body, headers, plan.total_s())
    if plan.fault == "overloaded" and not plan.stream and "error_in_body" in plan.quirks:
        return Script().json(200, quirks.error_body(), headers, plan.ttft_s)
    if plan.fault == "unavailable" or (plan.fault == "overloaded" and not plan.stream):
        msg = "The engine is currently overloaded, please try again later."
        return _error(503, msg, "server_error", "service_unavailable", {**headers, **retry})
    if plan.refusal is not None and plan.refusal.style == "http_400" and "azure_filter_results" in plan.quirks:
        return Script().json(400, quirks.azure_filter_error(), headers, plan.ttft_s + faults.hold(plan))
    if plan.refusal is not None and plan.refusal.style == "http_400":
        msg = ("Your request was rejected as a result of our safety system. Your prompt may contain text "
               "that is not allowed by our safety system.")
        return _error(400, msg, "invalid_request_error", "content_policy_violation", headers,
                      plan.ttft_s + faults.hold(plan))
    if plan.refusal is not None and plan.refusal.style == "invalid_prompt":
        msg = ("Invalid prompt: your prompt was flagged as potentially violating our usage policy. Please try again "
               "with a different prompt: https://platform.openai.com/docs/guides/reasoning#advice-on-prompting")
        return _error(400, msg, "invalid_request_error", "invalid_prompt", headers, plan.ttft_s + faults.hold(plan))
    return None


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _stream(plan: Plan, include_usage: bool) -> Stream:
    created = int(time.time())
    base = {"id": "chatcmpl-" + plan.response_id, "object": "chat.completion.chunk", "created": created,
            "model": plan.response_model, "system_fingerprint": plan.fingerprint, "service_tier": "default"}
    if include_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    preamble = [chunk({"role": "assistant", "content": "", "refusal": None})]
    step = plan.chunk_tokens
    events: list[tuple[float, bytes]] = []
    thinking = plan.thinking()  # reasoning streamed before the answer, at the same pace
    opening, closing = quirks.think_tags(plan.quirks, plan.thought_cut)
    for i in range(0, len(thinking), step):
        piece = "".join(thinking[i: i + step])
        if plan.reasoning_field == "content":  # in <think> tags: the first piece opens the block, the last closes it
            piece = (opening if i == 0 else "") + piece + (closing if i + step >= len(thinking) else "")
        events.append((plan.ttft_s + i / plan.tps, chunk({str(plan.reasoning_field): piece})))
    start = plan.ttft_s + len(thinking) / plan.tps
    if plan.tool_call is not None:
        call = plan.tool_call
        pieces = textgen.tokens(call["arguments"])
        first = {"index": 0, "id": "call_" + call["id"], "type": "function",
                 "function": {"name": call["name"], "arguments": ""}}
        events.append((start, chunk({"tool_calls": [first]})))
        for i in range(0, len(pieces), step):
            frag = {"index": 0, "function": {"arguments": "".join(pieces[i: i + step])}}
            events.append((start + (i + 1) / plan.tps, chunk({"tool_calls": [frag]})))
        n = len(pieces) + 1
    else:
        toks = plan.tokens[: plan.refusal_split] if _finish(plan) == "content_filter" else plan.tokens
        field = "refusal" if plan.refusal is not None and plan.refusal.style == "field" else "content"
        for i in range(0, len(toks), step):
            events.append((start + i / plan.tps, chunk({field: "".join(toks[i: i + step])})))
        n = len(toks)
    tail = [chunk({}, _finish(plan))]
    if include_usage and plan.report_usage:
        tail.append(_sse({**base, "choices": [], "usage": _usage(plan)}))
    tail.append(b"data: [DONE]\n\n")
    error = _sse({"error": {"message": "The server is overloaded, please try again later.",
                            "type": "server_error", "param": None, "code": "overloaded"}})
    malformed = b'data: {"id": "chatcmpl-' + plan.response_id.encode() + b'", "choices": [{"delta": {"cont\n\n'
    stream = Stream(preamble, events, start + n / plan.tps, tail, error, malformed, -(-len(thinking) // step))
    return quirks.stream(plan.quirks, stream, _usage(plan) if plan.report_usage else None, include_usage)


def _completion(plan: Plan) -> dict[str, Any]:
    finish = _finish(plan)
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
    if plan.tool_call is not None:
        message["tool_calls"] = [{"id": "call_" + plan.tool_call["id"], "type": "function",
                                  "function": {"name": plan.tool_call["name"],
                                               "arguments": plan.tool_call["arguments"]}}]
    elif plan.refusal is not None and plan.refusal.style == "field":
        message["refusal"] = plan.text
    elif finish == "content_filter":
        message["content"] = "".join(plan.tokens[: plan.refusal_split])
    else:
        message["content"] = plan.text
    if plan.reasoning_field == "content" and plan.thinking():
        opening, closing = quirks.think_tags(plan.quirks, plan.thought_cut)
        message["content"] = opening + "".join(plan.thinking()) + closing + (message["content"] or "")
    elif plan.reasoning_field:
        message[plan.reasoning_field] = "".join(plan.thinking())
    message = quirks.message(plan.quirks, message)
    body: dict[str, Any] = {
        "id": "chatcmpl-" + plan.response_id, "object": "chat.completion", "created": int(time.time()),
        "model": plan.response_model, "system_fingerprint": plan.fingerprint, "service_tier": "default",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
    }
    if plan.report_usage:
        body["usage"] = _usage(plan)
    return body


async def chat_completions(request: Request) -> Script:
    """Handle POST /v1/chat/completions."""
    engine: Engine = request.app.state.sim_engine
    key = engine.scenario.api_key
    if key is not None and request.headers.get("authorization") != f"Bearer {key}":
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        msg = f"Incorrect API key provided: {given[:5]}***. You can find your API key in your account settings."
        return _error(401, msg if given else "You didn't provide an API key.", "invalid_request_error",
                      "invalid_api_key")
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = None
    req = parse(body)
    if isinstance(req, str):
        return _error(400, req, "invalid_request_error", None)
    plan = engine.plan(req)
    if plan is None:
        msg = f"The model `{req.model}` does not exist or you do not have access to it."
        return _error(404, msg, "invalid_request_error", "model_not_found")
    if req.stream and "late_status_errors" in plan.quirks and plan.fault in faults.STATUS_FAULTS:
        headers = {**_headers(plan, 0.001), "content-type": "text/event-stream; charset=utf-8"}
        return Script().at(plan.ttft_s).start(200, headers).send(quirks.late_status_error(plan.fault)).end()
    script = _fault_response(plan, _headers(plan, 0.001))
    if script is not None:
        return script
    if req.stream and plan.stream_options == "reject" and "stream_options" in body:
        return _error(400, "Unrecognized request argument supplied: stream_options", "invalid_request_error", None)
    if req.stream and plan.stream_options == "forbid" and "stream_options" in body:
        return Script().json(422, _stream_options_forbidden(), {})
    if req.stream:
        opts = body.get("stream_options") or {}
        headers = {**_headers(plan, 0.001), "content-type": "text/event-stream; charset=utf-8",
                   "cache-control": "no-cache"}
        return faults.stream_script(plan, headers, _stream(plan, bool(opts.get("include_usage"))))
    data = json.dumps(_completion(plan)).encode()
    return faults.body_script(plan, _headers(plan, plan.total_s()), data)


async def list_models(request: Request) -> Script:
    """Handle GET /v1/models."""
    engine: Engine = request.app.state.sim_engine
    data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "llm-monitor-sim"}
            for m in engine.known_models()]
    return Script().json(200, {"object": "list", "data": data}, {})
