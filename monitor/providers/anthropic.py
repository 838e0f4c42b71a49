"""Anthropic's Messages API over httpx, with server-sent-event streaming."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlparse

import httpx
from httpx_sse import aconnect_sse

from monitor.domain import CallResult, ErrorType, FinishReason
from monitor.providers.anthropic_cache import block, cached, counts, is_count, usage_of
from monitor.providers.arrival import arrival_of, sent_of
from monitor.providers.base import (
    TOO_DEEP,
    ChatRequest,
    Clock,
    answer_error_type,
    broken_connection,
    malformed,
    mark_output,
    mark_sent,
    monotonic,
    ratelimit_headers,
    received,
    redirect_note,
    request_start,
    retry_after_seconds,
    short,
    status_error_type,
    timed_out,
    too_large,
    undecodable,
)
from monitor.providers.capped import ReplyTooLarge
from monitor.providers.connecting import never_connected, watch_connecting, watching
from monitor.providers.doubt import ANTHROPIC_NAMES, REFUSED, doubt, prompted
from monitor.providers.partial import note_partial
from monitor.providers.shape import get, obj
from monitor.providers.sse import broken, drain, ending
from monitor.providers.vet import vet
from monitor.tls import default_context

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024  # the Messages API requires max_tokens
_STOP = {
    "end_turn": FinishReason.STOP, "stop_sequence": FinishReason.STOP, "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH, "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.REFUSAL,
}  # others (pause_turn, ...) are `other`, the raw value kept beside
_STREAM_ERRORS = {
    "overloaded_error": ErrorType.SERVER_ERROR, "api_error": ErrorType.SERVER_ERROR,
    "rate_limit_error": ErrorType.RATE_LIMITED, "authentication_error": ErrorType.AUTH,
    "permission_error": ErrorType.AUTH, "invalid_request_error": ErrorType.BAD_REQUEST,
    "timeout_error": ErrorType.TIMEOUT,
}


class AnthropicError(Exception):
    """An `error` event inside an otherwise successful stream (or a 200 answer that is an error); `fallback` types it
    when its `kind` is none of Anthropic's error types."""

    def __init__(self, kind: str, message: str, fallback: ErrorType = ErrorType.SERVER_ERROR):
        super().__init__(message)
        self.kind = kind
        self.fallback = fallback


class AnthropicProvider:
    """Messages API client: converts OpenAI-style messages and tools, reads both JSON and SSE answers."""

    name = "anthropic"
    secrets: tuple[str, ...] = ()  # its key is scrubbed by the wrapper build_provider puts round it

    def __init__(self, base_url: str, api_key: str | None, *, headers: dict[str, str] | None = None,
                 http_client: httpx.AsyncClient | None = None, clock: Clock = monotonic):
        base = base_url.rstrip("/")
        self._url = (base if base.endswith("/v1") else base + "/v1") + "/messages"
        self.server_address = urlparse(base_url).hostname or ""
        self._headers = {"anthropic-version": API_VERSION, "content-type": "application/json",
                         **(headers or {})}
        if api_key:
            self._headers["x-api-key"] = api_key
        self._client = watch_connecting(http_client or httpx.AsyncClient(verify=default_context()))
        self._client.follow_redirects = False  # httpx's default; a client passed in is held to it
        self._clock = clock

    async def aclose(self) -> None:
        await self._client.aclose()

    def body(self, req: ChatRequest) -> dict[str, Any]:
        """Translate an OpenAI-style request into a Messages API body."""
        systems = [(i, m["content"]) for i, m in enumerate(req.messages) if m["role"] == "system"]
        body: dict[str, Any] = {
            "model": req.model,
            "max_tokens": req.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": [{"role": m["role"], "content": cached(m["content"], req.cache.get(i))}
                         for i, m in enumerate(req.messages) if m["role"] != "system"],
        }
        if any(i in req.cache for i, _ in systems):  # a breakpoint inside the system prompt: its messages as blocks
            # an empty one is left out: Anthropic refuses an empty text block (joined, it added nothing)
            body["system"] = [block(text, req.cache.get(i)) for i, text in systems if text]
        elif systems:
            body["system"] = "\n\n".join(text for _, text in systems)
        if req.temperature is not None:
            body["temperature"] = min(req.temperature, 1.0)  # Anthropic's range is 0..1
        if req.top_p is not None:
            body["top_p"] = req.top_p
        if req.tools:
            body["tools"] = [{"name": t["function"]["name"],
                              "description": t["function"].get("description", ""),
                              "input_schema": t["function"].get("parameters", {"type": "object"})}
                             for t in req.tools if t.get("type", "function") == "function"]
        if req.stream:
            body["stream"] = True
        return body

    async def complete(self, request: ChatRequest) -> CallResult:
        result = CallResult(stream=request.stream)
        note_partial(result)  # what a stream has said, if a shutdown cancels the call
        start = self._clock()
        last_byte: float | None = None
        headers = {**self._headers, **request.extra_headers}
        timeout = httpx.Timeout(request.timeout_s)
        # Built before the call: a request this code cannot build is its own bug (the runner's `internal`, with
        # its traceback logged), not the upstream's answer, which the errors caught below type as `bad_response`.
        body = self.body(request)
        try:
            with watching() as connecting:
                async with asyncio.timeout(request.timeout_s) as limit:
                    if request.stream:
                        last_byte = await self._stream(body, headers, timeout, result, start, limit)
                    else:
                        last_byte = await self._once(body, headers, timeout, result, start)
        except TimeoutError:
            result.error_type, result.error_message = ErrorType.TIMEOUT, timed_out(result, request.timeout_s)
            if result.http_status is None and (unmade := never_connected(connecting, request.timeout_s)):
                result.error_type, result.error_message = ErrorType.CONNECT, unmade
        except ReplyTooLarge as e:
            too_large(result, e)
        except httpx.TimeoutException as e:
            result.error_type, result.error_message = ErrorType.TIMEOUT, short(f"timed out: {type(e).__name__}")
        except AnthropicError as e:
            result.error_type = _STREAM_ERRORS.get(e.kind, e.fallback)
            if result.error_type == ErrorType.BAD_REQUEST:  # "Output blocked by content filtering policy" mid-stream
                result.error_type = status_error_type(400, str(e))
            result.error_message = short(f"{e.kind}: {e}")
        except httpx.DecodingError as e:
            result.error_type, result.error_message = undecodable(e, result.http_status)
        except broken() as e:  # httpx's transport and stream errors, a SOCKS handshake broken
            result.error_type, message = broken_connection(e, result.http_status)
            result.error_message = short(message)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            result.error_type, result.error_message = ErrorType.BAD_RESPONSE, malformed(e)
        except RecursionError:  # JSON nested past the parser's depth ([[[[...), in a body or an event
            result.error_type, result.error_message = ErrorType.BAD_RESPONSE, TOO_DEEP
        origin = request_start(result, start)
        result.latency_s = received(last_byte, origin, self._clock()) - origin
        return doubt(vet(result), ANTHROPIC_NAMES, prompt=prompted(request))

    async def _once(self, body: dict[str, Any], headers: dict[str, str], timeout: httpx.Timeout, result: CallResult,
                    start: float) -> float | None:
        """Read a whole answer; return when its last bytes arrived (None when the connection does not say).

        The body is read after the headers (as a stream is): a body that breaks off is an answer broken off.
        """
        async with self._client.stream("POST", self._url, json=body, headers=headers,
                                       timeout=timeout) as resp:
            mark_sent(result, sent_of(resp), start, self._clock())
            self._meta(resp, result)
            await resp.aread()
        if resp.status_code >= 300:  # a redirect too: the client follows none (see `redirect_note`)
            self._status_error(resp, resp.text, result)
            return None
        self._message(_json(resp), result)
        return arrival_of(resp)

    async def _stream(self, body: dict[str, Any], headers: dict[str, str], timeout: httpx.Timeout,
                      result: CallResult, start: float, limit: asyncio.Timeout) -> float | None:
        """Read the events; return when the last bytes arrived (None when the connection does not say), or
        message_stop did: what follows it is read for the connection's reuse only, as after OpenAI's [DONE]
        (`sse.drain`), whatever is left of the call's `limit`. So is what follows message_delta's stop reason (with
        the output usage, all that message_stop closes), as after OpenAI's finish reason and usage (`sse.ending`): a
        gateway that closes the stream without message_stop, or holds it open, has answered too, its end at
        message_delta."""
        async with aconnect_sse(self._client, "POST", self._url, json=body, headers=headers,
                                timeout=timeout) as source:
            resp = source.response
            origin = mark_sent(result, sent_of(resp), start, self._clock())
            self._meta(resp, result)
            if resp.status_code >= 300:
                await resp.aread()
                self._status_error(resp, resp.text, result)
                return None
            if "text/event-stream" not in resp.headers.get("content-type", ""):
                await resp.aread()
                self._message(_json(resp), result)  # a server that ignored stream=true
                return arrival_of(resp)
            parts: list[str] = []
            tools: dict[int, dict[str, str]] = {}
            usage: dict[str, Any] = {}
            stopped = heard = finished = False  # finished: message_delta gave the stop reason
            done: float | None = None  # when message_stop came
            stop_at: float | None = None  # when message_delta gave the stop reason: the end without message_stop
            events = source.aiter_sse()
            unread: ValueError | None = None  # a usage that cannot be read: raised unless another error is on its way
            answered = ending(events, lambda: finished, lambda: limit.reschedule(None))
            try:
                async for sse in answered:
                    heard = True
                    if sse.event == "ping" or not sse.data:
                        continue
                    data = obj(json.loads(sse.data), "event")
                    kind = get(data, "type", str) or sse.event
                    if (failure := _failure(data, kind)) is not None:
                        raise failure
                    if kind == "message_start":
                        msg = obj(data.get("message"), "message_start.message")
                        result.response_model = msg.get("model")
                        result.response_id = msg.get("id") or None
                        result.request_id = result.request_id or msg.get("id")
                        # output_tokens here is a placeholder (1); the count comes with message_delta, and a
                        # stream broken before it has an unknown output, not 1
                        usage.update(counts(msg.get("usage"), skip="output_tokens"))
                    elif kind == "content_block_start":
                        block = get(data, "content_block", dict, "content_block_start.") or {}
                        if block.get("type") == "redacted_thinking":  # encrypted: thinking with no text to time
                            result.unseen_reasoning = True
                        if block.get("type") == "tool_use":
                            name = get(block, "name", str, "content_block_start.content_block.") or ""
                            tools[_index(data, kind)] = {"name": name, "arguments": ""}
                    elif kind == "content_block_delta":
                        delta = obj(data.get("delta"), "content_block_delta.delta")
                        where = "content_block_delta.delta."
                        text = get(delta, "text", str, where) if delta.get("type") == "text_delta" else None
                        if delta.get("type") == "input_json_delta":
                            text = get(delta, "partial_json", str, where)
                            tools.setdefault(_index(data, kind), {"name": "", "arguments": ""})["arguments"] += \
                                text or ""
                        if text and delta.get("type") == "text_delta":
                            parts.append(text)
                        # thinking is output but not the answer: it starts the output rate's clock, not TTFT's
                        thought = delta.get("type") == "thinking_delta" and bool(get(delta, "thinking", str, where))
                        mark_output(result, answer=bool(text), reasoning=thought,
                                    at=lambda: received(arrival_of(resp), origin, self._clock()) - origin)
                    elif kind == "message_delta":
                        stop = (get(data, "delta", dict, "message_delta.") or {}).get("stop_reason")
                        if stop:
                            result.raw_finish_reason = stop
                            result.finish_reason = _stop(stop)
                        # cumulative counts: a 0 after message_start's count is a server's "said already" (SGLang)
                        usage.update({k: v for k, v in counts(data.get("usage")).items()
                                      if not (is_count(v) and v == 0 and is_count(usage.get(k)))})
                        finished = finished or bool(stop)  # only message_stop is to come
                        if finished:
                            stop_at = received(arrival_of(resp), origin, self._clock())
                    elif kind == "message_stop":  # the answer's end: what follows is only read to the body's end (drain)
                        stopped = True
                        done = received(arrival_of(resp), origin, self._clock())
                        limit.reschedule(None)
                        break
            finally:
                await answered.aclose()  # left at message_stop: what follows is drained below
                result.text = "".join(parts)
                result.tool_calls = [tools[i] for i in sorted(tools)]
                try:
                    result.usage = usage_of(usage)
                except ValueError as e:  # raised here it would replace the stream's own error (overloaded_error)
                    unread = e
                if result.finish_reason == FinishReason.REFUSAL:
                    result.refusal_text = result.text or REFUSED
            if unread is not None:
                raise unread
            if not heard:  # a whole body that holds none, not one broken off: nothing began to be stopped
                raise ValueError("the event stream held no events (no message_start, no message_stop)")
            if not stopped and not finished:  # broken off before the stop reason: the answer may be cut short
                raise httpx.RemoteProtocolError("stream ended without message_stop")
            if not stopped:  # ended, or held open, after message_delta (`sse.ending`): the answer ended there, not
                return stop_at  # at the last bytes (a keep-alive while the rest was waited for)
            await drain(events)
            return done

    @staticmethod
    def _meta(resp: httpx.Response, result: CallResult) -> None:
        result.http_status = resp.status_code
        result.request_id = resp.headers.get("request-id")
        result.ratelimit = ratelimit_headers(resp.headers)
        result.retry_after_s = retry_after_seconds(resp.headers)

    @staticmethod
    def _status_error(resp: httpx.Response, text: str, result: CallResult) -> None:
        if resp.status_code < 400:
            result.error_type = ErrorType.BAD_REQUEST
            result.error_message = redirect_note(resp.status_code, resp.headers.get("location"))
            return
        kind = ""
        message = text
        try:
            body = json.loads(text)
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                kind, message = _error_parts(body["error"], "", text)
        except (ValueError, RecursionError):  # not JSON, or nested too deep
            pass
        result.error_type = _STREAM_ERRORS.get(kind) if resp.status_code == 529 else None
        result.error_type = result.error_type or status_error_type(resp.status_code, text)
        result.error_message = short(f"HTTP {resp.status_code}: {kind + ': ' if kind else ''}{message}")

    @staticmethod
    def _message(answer: Any, result: CallResult) -> None:
        msg = obj(answer, "the answer")
        if (failure := _failure(msg, msg.get("type"))) is not None:
            raise failure
        content = get(msg, "content", list)
        if content is None:
            raise ValueError("the answer has no content")
        blocks = [obj(b, f"content[{i}]") for i, b in enumerate(content)]
        result.unseen_reasoning = any(b.get("type") == "redacted_thinking" for b in blocks)
        result.text = "".join(get(b, "text", str, f"content[{i}].") or "" for i, b in enumerate(blocks)
                              if b.get("type") == "text")
        result.tool_calls = [{"name": get(b, "name", str, f"content[{i}].") or "",
                              "arguments": json.dumps(b.get("input", {}))}
                             for i, b in enumerate(blocks) if b.get("type") == "tool_use"]
        result.response_model = msg.get("model")
        result.response_id = msg.get("id") or None
        result.request_id = result.request_id or msg.get("id")
        stop = msg.get("stop_reason")
        result.raw_finish_reason = stop
        result.finish_reason = _stop(stop) if stop else None
        if result.finish_reason == FinishReason.REFUSAL:
            result.refusal_text = result.text or REFUSED
        result.usage = usage_of(msg.get("usage"))


def _json(resp: httpx.Response) -> Any:
    """The JSON of a whole answer; raise ValueError saying what came when it is none (an HTML page, nothing)."""
    try:
        return resp.json()
    except ValueError:  # not JSON, or not text
        if resp.text.lstrip().startswith(("{", "[")):
            raise  # JSON that breaks somewhere: `malformed` shows where
        kind = resp.headers.get("content-type") or "no content-type"
        raise ValueError(f"expected a message (a JSON object), got {kind}: {short(resp.text, 80)!r}") from None


def _index(data: dict[str, Any], kind: str) -> int:
    """The content block an event is about."""
    index = get(data, "index", int, kind + ".")
    if index is None:
        raise ValueError(f"{kind} has no index")
    return int(index)


def _stop(stop: Any) -> FinishReason:
    """The finish reason of a stop reason; one that is not text is `other` here and named by `vet`."""
    return _STOP.get(stop, FinishReason.OTHER) if isinstance(stop, str) else FinishReason.OTHER


def _failure(data: dict[str, Any], kind: Any) -> AnthropicError | None:
    """The error an event or a whole answer (of type `kind`) is, else None: Anthropic's (type "error"), or OpenAI's
    {"error": {...}} with no type, as LiteLLM's proxy sends on its Messages API once a stream began, typed by its
    error type where it is Anthropic's, else as an OpenAI-style error is (the HTTP status in its `code`)."""
    if kind != "error" and (data.get("type") is not None or data.get("error") is None):
        return None
    err = data.get("error")  # Anthropic's, or an OpenAI-shaped one (no type), whether or not an error event
    return AnthropicError(*_error_parts(err, "error", ""), fallback=answer_error_type(err))


def _error_parts(err: Any, kind: str, message: str) -> tuple[str, str]:
    """The type and message of an error object (`kind` and `message` where it has none); a type or message that
    is not text is shown as its JSON: an upstream's odd error must still type the call, never fail to."""
    if isinstance(err, dict):
        kind = kind if err.get("type") is None else err["type"]
        message = message if err.get("message") is None else err["message"]
    elif err is not None:
        message = err
    return (kind if isinstance(kind, str) else json.dumps(kind),
            message if isinstance(message, str) else json.dumps(message))
