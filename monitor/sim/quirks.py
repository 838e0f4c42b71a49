"""Wire quirks of real OpenAI-compatible servers, applied to what the simulator's OpenAI face sends.

A phase's ``quirks`` names them; each reshapes the answer the way one real server does, so what the providers
read is what those servers really send:

- ``azure_filter_results`` (Azure OpenAI): a first chunk with no choices, an empty ``id`` and ``model``, and the
  prompt's ``prompt_filter_results``; ``content_filter_results`` on every choice (``filtered: true`` where the
  answer stops with ``content_filter``); an ``http_400`` refusal is Azure's 400 with code ``content_filter``.
- ``sse_comments`` (OpenRouter): ``: OPENROUTER PROCESSING`` comment lines while the answer is being prepared.
- ``keepalive_data`` (relays such as CLIProxyAPI): empty ``data:`` keep-alive frames while the answer is being
  prepared and before it ends, events with no data that the SSE standard says are not dispatched.
- ``usage_every_chunk`` (vLLM's ``continuous_usage_stats``): usage so far on every chunk, then the usage chunk.
- ``usage_in_finish_chunk`` (Together): the usage on the chunk with the finish reason, with or without
  ``include_usage``, and no usage chunk after it.
- ``error_in_body`` (OpenRouter): an error after the model started is still a 200: the ``overloaded`` fault's
  error comes as a chunk with ``error`` and ``finish_reason: "error"``, or, not streaming, as a body
  ``{"error": {"code": 502, ...}}``.
- ``reasoning_outside_completion`` (xAI): ``completion_tokens`` counts the answer only; ``reasoning_tokens`` are
  beside it, and ``total_tokens`` is prompt + completion + reasoning.
- ``cache_hit_fields`` (DeepSeek): cached input as ``prompt_cache_hit_tokens`` (and ``prompt_cache_miss_tokens``),
  without ``prompt_tokens_details``.
- ``finish_eos`` (Together): an answer that ends by itself has ``finish_reason: "eos"``.
- ``finish_error`` (Together): the ``overloaded`` fault ends the answer with ``finish_reason: "error"`` and no
  error object (streamed: then ``[DONE]``; not streamed: the answer so far); ``finish_abort`` (vLLM, SGLang: a
  request the engine aborted) the same with ``"abort"``.
- ``late_status_errors`` (LiteLLM's proxy): a stream's 200 goes out before the upstream answers, so the
  ``rate_limit``, ``server_error`` and ``unavailable`` faults come as a 200 stream holding one error event whose
  ``code`` is the upstream's status as a string.
- ``think_in_content`` (a reasoning model served without a reasoning parser: vLLM and SGLang without
  ``--reasoning-parser``, TGI, older Ollama): the phase's reasoning tokens come in ``content``, in ``<think>`` tags,
  then a blank line and the answer (streamed or in the whole message); the server knows no reasoning, so its usage
  has no ``completion_tokens_details``. Its reasoning counts against ``max_tokens``: a cut inside it leaves the
  block open. ``think_in_content_unopened`` (DeepSeek-R1's chat template, which ends the prompt with
  ``<think>\n``): the same without the opening tag.
- ``openai_error_events`` (LiteLLM's proxy serving the Messages API, the Anthropic face): an answer that fails after
  its stream began (the ``overloaded`` fault) ends with the proxy's own error, OpenAI's error object on one ``data:``
  line (``{"error": {message, type, param, code}}``, the status a string in ``code``), with no ``event:`` line and
  no ``type``.
- ``x_groq_usage`` (Groq): its request id in ``x_groq`` on the first chunk, and on the chunk with the finish reason
  ``x_groq.usage`` (the token counts and its own timings), sent whether or not ``include_usage`` was asked for; the
  standard usage chunk only when it was.
- ``content_parts`` (Mistral's reasoning models: Magistral, Mistral Small with ``reasoning_effort``): ``content`` is a
  list of parts, streamed or in the whole message: reasoning (the phase's streamed ``reasoning``) as
  ``{"type": "thinking", "thinking": [{"type": "text", "text": ...}]}``, the answer as ``{"type": "text", ...}``.
- ``usage_placeholder`` (OpenAI-compatible servers and proxies that fill ``usage`` without counting): every count
  0 (``prompt_tokens``, ``completion_tokens``, ``total_tokens``) beside the text the answer returns.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from monitor.sim.faults import Stream

_SAFE = {c: {"filtered": False, "severity": "safe"} for c in ("hate", "self_harm", "sexual", "violence")}
_BLOCKED = {"filtered": True, "severity": "medium"}
_COMMENT = b": OPENROUTER PROCESSING\n\n"
_KEEPALIVE = b"data: \n\n"


def stream(quirks: tuple[str, ...], s: Stream, usage: dict[str, Any] | None, include_usage: bool) -> Stream:
    """Reshape a streamed answer; `usage` is what its usage chunk reports (None: the server reports none)."""
    preamble, events, tail, error = list(s.preamble), list(s.events), list(s.tail), s.error_event
    if "usage_every_chunk" in quirks and include_usage and usage is not None:
        total = usage["completion_tokens"]
        preamble = [_edit(e, _with_usage(usage, 0)) for e in preamble]
        events = [(t, _edit(e, _with_usage(usage, round(total * (k + 1) / len(events)))))
                  for k, (t, e) in enumerate(events)]
        tail[0] = _edit(tail[0], _with_usage(usage, total))
    if "usage_in_finish_chunk" in quirks and usage is not None:
        tail = [e for e in tail if not (_data(e) or {}).get("usage")]  # no usage chunk of its own
        tail[0] = _edit(tail[0], _with_usage(usage, usage["completion_tokens"]))
    if "x_groq_usage" in quirks and usage is not None:
        groq = "req_" + str((_data(tail[0]) or {}).get("id", "")).removeprefix("chatcmpl-")
        preamble[-1] = _edit(preamble[-1], lambda c: {**c, "x_groq": {"id": groq}})
        tail[0] = _edit(tail[0], lambda c: {**c, "x_groq": {"id": groq, "usage": _groq_usage(usage)}})
    if "azure_filter_results" in quirks:
        preamble, events, tail = ([_edit(e, _filtered) for e in preamble], [(t, _edit(e, _filtered)) for t, e in events],
                                  [_edit(e, _filtered) for e in tail])
        prompt = {"choices": [], "created": 0, "id": "", "model": "", "object": "",
                  "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _SAFE}]}
        preamble.insert(0, _sse(prompt))
    if "sse_comments" in quirks:
        preamble = [_COMMENT, _COMMENT, *preamble]
    if "keepalive_data" in quirks:
        preamble, tail = [*preamble, _KEEPALIVE], [_KEEPALIVE, *tail]
    if "content_parts" in quirks:
        events = [(t, _edit(e, _parts_chunk)) for t, e in events]
    if failed_finish(quirks):
        first = _data(preamble[-1]) or {}
        ended = {**first, "choices": [{"index": 0, "delta": {}, "logprobs": None,
                                       "finish_reason": failed_finish(quirks)}]}
        error = _sse(ended) + b"data: [DONE]\n\n"
    if "error_in_body" in quirks:
        first = _data(preamble[-1]) or {}
        error = _sse({**{k: first.get(k) for k in ("id", "object", "created", "model")}, "provider": "sim",
                      "error": {"code": "server_error", "message": "Provider disconnected unexpectedly"},
                      "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]})
    return replace(s, preamble=preamble, events=events, tail=tail, error_event=error)


def message(quirks: tuple[str, ...], msg: dict[str, Any]) -> dict[str, Any]:
    """Reshape a whole answer's message (``content_parts``)."""
    if "content_parts" not in quirks:
        return msg
    thought = msg.pop("reasoning", None) or msg.pop("reasoning_content", None)
    parts = [_thinking(thought)] if thought else []
    if msg.get("content"):
        parts.append({"type": "text", "text": msg["content"]})
    return {**msg, "content": parts}


def _thinking(text: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": [{"type": "text", "text": text}]}


def _parts_chunk(chunk: dict[str, Any]) -> dict[str, Any]:
    """A chunk whose reasoning or answer text is sent as a part of a list in `content` (``content_parts``)."""
    choices = []
    for choice in chunk.get("choices") or []:
        delta = dict(choice.get("delta") or {})
        thought = delta.pop("reasoning", None) or delta.pop("reasoning_content", None)
        if thought:
            delta["content"] = [_thinking(thought)]
        elif isinstance(delta.get("content"), str) and delta["content"]:
            delta["content"] = [{"type": "text", "text": delta["content"]}]
        choices.append({**choice, "delta": delta})
    return {**chunk, "choices": choices}


def think_tags(quirks: tuple[str, ...], cut: bool) -> tuple[str, str]:
    """The text before and after reasoning sent in the content (``think_in_content``); `cut`: it never ended."""
    return ("" if "think_in_content_unopened" in quirks else "<think>\n"), ("" if cut else "\n</think>\n\n")


def failed_finish(quirks: tuple[str, ...]) -> str | None:
    """The finish reason the ``overloaded`` fault ends an answer with (``finish_error``, ``finish_abort``)."""
    return "error" if "finish_error" in quirks else "abort" if "finish_abort" in quirks else None


def error_body() -> dict[str, Any]:
    """The body of a 200 answer whose model failed after it started (OpenRouter's ``error_in_body``)."""
    return {"error": {"code": 502, "message": "Provider returned error", "metadata": {"provider_name": "sim"}}}


def late_status_error(fault: str) -> bytes:
    """The one event of a stream whose upstream failed with `fault`'s status (LiteLLM's ``late_status_errors``)."""
    status, kind = {"rate_limit": (429, "RateLimitError"), "server_error": (500, "InternalServerError"),
                    "unavailable": (503, "ServiceUnavailableError")}[fault]
    message = f"litellm.{kind}: {kind}: OpenAIException - the upstream answered {status}"
    return _sse({"error": {"message": message, "type": "None", "param": "None", "code": str(status)}})


def openai_error_event() -> bytes:
    """The error event of a Messages API stream whose upstream failed once it began (LiteLLM's
    ``openai_error_events``)."""
    message = "litellm.InternalServerError: AnthropicException - Overloaded. Handle with `litellm.InternalServerError`."
    return _sse({"error": {"message": message, "type": "None", "param": "None", "code": "500"}})


def _groq_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Groq's usage object: the counts beside its own timings (seconds), no token details."""
    return {"queue_time": 0.0123, "prompt_tokens": usage["prompt_tokens"], "prompt_time": 0.0004,
            "completion_tokens": usage["completion_tokens"], "completion_time": 0.05,
            "total_tokens": usage["total_tokens"], "total_time": 0.0504}


def _with_usage(usage: dict[str, Any], output: int) -> Any:
    def edit(chunk: dict[str, Any]) -> dict[str, Any]:
        return {**chunk, "usage": {**usage, "completion_tokens": output,
                                   "total_tokens": usage["prompt_tokens"] + output}}
    return edit


def azure_filter_error() -> dict[str, Any]:
    """The body of Azure's 400 for a prompt its content filter blocks."""
    return {"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                                 "management policy. Please modify your prompt and retry.",
                      "type": None, "param": "prompt", "code": "content_filter", "status": 400,
                      "innererror": {"code": "ResponsibleAIPolicyViolation",
                                     "content_filter_result": {**_SAFE, "violence": _BLOCKED}}}}


def _filtered(chunk: dict[str, Any]) -> dict[str, Any]:
    def results(choice: dict[str, Any]) -> dict[str, Any]:
        finish = choice.get("finish_reason")
        return {**_SAFE, "violence": _BLOCKED} if finish == "content_filter" else {} if finish else _SAFE

    return {**chunk, "choices": [{**c, "content_filter_results": results(c)} for c in chunk.get("choices") or []]}


def _data(event: bytes) -> dict[str, Any] | None:
    return json.loads(event[6:]) if event.startswith(b"data: {") else None


def _edit(event: bytes, change: Any) -> bytes:
    data = _data(event)
    return event if data is None else _sse(change(data))


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"
