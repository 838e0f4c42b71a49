"""OpenAI and every OpenAI-compatible server (Azure OpenAI, vLLM, Ollama, LiteLLM, ...) via the official SDK."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from typing import Any, Literal
from urllib.parse import urlparse

import httpx
import openai
from openai.types.chat import ChatCompletion

from monitor.domain import CallResult, ErrorType, FinishReason
from monitor.http_urls import API_ENDPOINTS
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
from monitor.providers.choices import answer_choice
from monitor.providers.connecting import never_connected, watch_connecting, watching
from monitor.providers.doubt import OPENAI_NAMES, doubt, prompted
from monitor.providers.errorbody import UnreadStatus, hearing, keep_status
from monitor.providers.openai_fields import content_parts, usage_of
from monitor.providers.partial import note_partial
from monitor.providers.shape import get, obj, shown
from monitor.providers.sse import TIMEOUTS, UNDECODABLE, broken, ending, sse_json
from monitor.providers.thinktags import ThinkTags, answer_of
from monitor.providers.vet import vet

log = logging.getLogger("monitor.providers.openai")
_FINISH = {
    "stop": FinishReason.STOP, "eos": FinishReason.STOP, "length": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS, "function_call": FinishReason.TOOL_CALLS,
    "content_filter": FinishReason.CONTENT_FILTER,
}  # eos: Together's natural end
# Finish reasons that say the answer failed: error (Together; OpenRouter sends an error object beside it), abort
# (vLLM and SGLang: the engine aborted the request)
_FAILED = ("error", "abort")


def normalise_finish(raw: Any) -> FinishReason | None:
    """The finish reason of a raw one; one that is not text is `other` here and named by `vet`."""
    if raw is None:
        return None
    return _FINISH.get(raw, FinishReason.OTHER) if isinstance(raw, str) else FinishReason.OTHER


def status_failure(e: openai.APIStatusError) -> tuple[ErrorType, str]:
    """The error type and message of an HTTP error answer the SDK raised (any OpenAI-compatible endpoint)."""
    if 300 <= e.status_code < 400:  # the client follows none (OpenAIProvider)
        return ErrorType.BAD_REQUEST, redirect_note(e.status_code, e.response.headers.get("location"))
    if isinstance(e, UnreadStatus):  # its body was never read: it did not decode, or it broke off
        if isinstance(e.cause, UNDECODABLE):
            return undecodable(e.cause, e.status_code)
        error_type, message = broken_connection(e.cause, e.status_code)
        return error_type, short(message)
    body = json.dumps(e.body) if e.body is not None else e.response.text
    message = e.message
    # The SDK's message holds only an `error.message` the body carries: a proxy's plain-text or HTML page (Envoy's
    # "upstream connect error", nginx's 502), FastAPI's {"detail": "Not Found"} (vLLM asked without /v1) or an
    # {"error": "..."} string would leave just "Error code: 503". The body is then the only reason given.
    if message.strip() == f"Error code: {e.status_code}" and e.body is not None:
        detail = e.body if isinstance(e.body, str) else json.dumps(e.body, ensure_ascii=False)
        if detail.strip():
            message = f"{message} - {detail}"
    said = f"HTTP {e.status_code}: {message}"
    if e.status_code == 404:  # most often a base_url missing its /v1 (Ollama's http://localhost:11434): say what
        called = _called(e.response.request)  # was called, that the URL can be compared with the API's
        return status_error_type(e.status_code, body), short(said, 300 - len(called) - 1) + " " + called
    return status_error_type(e.status_code, body), short(said)


_VERSION = re.compile(r"^v\d", re.I)  # a path segment naming an API version: v1, v1beta, v4


def _called(request: Any) -> str:
    """`(POST http://host:port/path)`: the method and URL a request called, without its user info (a password)
    and query (a key, for some gateways); with a hint when the base_url before the endpoint names no API version."""
    url = request.url
    host = f"[{url.host}]" if ":" in url.host else url.host
    path = url.path
    shown = f"{url.scheme}://{host}{f':{url.port}' if url.port else ''}{path}"
    endpoint = next((e for e in API_ENDPOINTS if path.endswith(e)), None)
    base = path[:-len(endpoint)] if endpoint else None
    hint = ": is base_url missing /v1?" if base is not None and not any(
        _VERSION.match(part) for part in base.split("/")) else ""
    return f"({request.method} {short(shown, 200)}{hint})"


def note_status(result: CallResult, response: Any) -> None:
    """Note on `result` the status of an error reply and what its headers say (request id, rate limits, Retry-After)."""
    result.http_status = response.status_code
    result.request_id = response.headers.get("x-request-id")
    result.ratelimit = ratelimit_headers(response.headers)
    result.retry_after_s = retry_after_seconds(response.headers)


class OpenAIProvider:
    """Chat completions through `openai.AsyncOpenAI`, streaming with usage in the last chunk, or not."""

    name = "openai"
    secrets: tuple[str, ...] = ()  # its key is scrubbed by the wrapper build_provider puts round it

    def __init__(self, base_url: str, api_key: str | None, *, headers: dict[str, str] | None = None,
                 stream_usage: bool = True, reasoning_tags: Literal["auto", "always", "off"] = "auto",
                 http_client: httpx.AsyncClient | None = None,
                 clock: Clock = monotonic, provider_name: str | None = None):
        self.server_address = urlparse(base_url).hostname or ""
        if provider_name:
            self.name = provider_name
        elif "azure" in self.server_address:
            self.name = "azure.ai.openai"
        self._stream_usage = stream_usage
        # a leading <think> block in content is reasoning (providers.thinktags); always: the template opens it
        self._tags = None if reasoning_tags == "off" else {"always": reasoning_tags == "always"}
        self._clock = clock
        # max_retries=0: a canary must see every failure; retries would hide them and skew latency. The client is of
        # the SDK's own httpx flavour (sdk_http), else its default one; either gets the hook that keeps the status of
        # an error reply whose body cannot be read: it does not decode, breaks off or stalls (providers.errorbody).
        # It follows no redirect (the SDK's default client does): a 3xx is a failed call naming its Location
        # (`redirect_note`), not the target's headers and prompt sent wherever the Location says.
        client = http_client or openai.DefaultAsyncHttpxClient(follow_redirects=False)
        client.follow_redirects = False
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "not-needed", max_retries=0, default_headers=headers or None,
            http_client=watch_connecting(keep_status(client)))

    async def aclose(self) -> None:
        await self._client.close()

    def _body(self, req: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": req.model, "messages": req.messages}
        for key in ("temperature", "max_tokens", "top_p", "seed"):
            value = getattr(req, key)
            if value is not None:
                body[key] = value
        if req.tools:
            body["tools"] = req.tools
        return body

    async def complete(self, request: ChatRequest) -> CallResult:
        result = CallResult(stream=request.stream)
        note_partial(result)  # what a stream has said, if a shutdown cancels the call
        start = self._clock()
        last_byte: float | None = None
        try:
            with hearing() as heard, watching() as connecting:
                async with asyncio.timeout(request.timeout_s) as limit:
                    if request.stream:
                        last_byte = await self._stream(request, result, start, limit)
                    else:
                        last_byte = await self._once(request, result, start)
        except TimeoutError:
            if result.http_status is None and heard.response is not None:
                # an error status whose body stalled: the SDK, still reading it, never handed the response back
                mark_sent(result, sent_of(heard.response), start, self._clock())
                note_status(result, heard.response)
            result.error_type, result.error_message = ErrorType.TIMEOUT, timed_out(result, request.timeout_s)
            if result.http_status is None and (unmade := never_connected(connecting, request.timeout_s)):
                result.error_type, result.error_message = ErrorType.CONNECT, unmade
        except ReplyTooLarge as e:
            too_large(result, e)
        except openai.APIStatusError as e:
            mark_sent(result, sent_of(e.response), start, self._clock())
            note_status(result, e.response)
            result.error_type, result.error_message = status_failure(e)
        except openai.APITimeoutError:
            result.error_type, result.error_message = ErrorType.TIMEOUT, "request timed out"
        except openai.APIConnectionError as e:
            result.error_type, message = broken_connection(e, result.http_status)
            result.error_message = short(message)
        except openai.APIError as e:  # an error event inside a 200 stream, or a 200 answer that is an error
            result.error_type = answer_error_type(e.body)
            result.error_message = short(f"error in {'stream' if request.stream else 'the answer'}: {e.message}")
        except UNDECODABLE as e:  # either httpx flavour's, from reading a 200's body, streamed or not
            result.error_type, result.error_message = undecodable(e, result.http_status)
        except TIMEOUTS as e:  # the HTTP library's own, from reading a body (either httpx flavour)
            result.error_type, result.error_message = ErrorType.TIMEOUT, short(f"stream stalled: {type(e).__name__}")
        except broken() as e:
            result.error_type, message = broken_connection(e, result.http_status)
            result.error_message = short(message)
        except (openai.APIResponseValidationError, ValueError, KeyError, TypeError, AttributeError) as e:
            result.error_type, result.error_message = ErrorType.BAD_RESPONSE, malformed(e)
        except RecursionError:  # JSON nested past the parser's depth ([[[[...), in a body or an event
            result.error_type, result.error_message = ErrorType.BAD_RESPONSE, TOO_DEEP
        origin = request_start(result, start)
        result.latency_s = received(last_byte, origin, self._clock()) - origin
        return doubt(vet(result), OPENAI_NAMES, prompt=prompted(request))

    async def _once(self, req: ChatRequest, result: CallResult, start: float) -> float | None:
        # Read the body after the headers (as a stream is): a body that breaks off is then an answer broken off,
        # typed like a broken stream, not a connection closed before any answer.
        async with self._client.chat.completions.with_streaming_response.create(
                **self._body(req), stream=False, timeout=req.timeout_s, extra_headers=req.extra_headers or None) as raw:
            mark_sent(result, sent_of(raw.http_response), start, self._clock())
            self._headers(raw, result)
            await raw.read()
        # The JSON read once, for the SDK's model of it and for the usage as it came (which the model takes
        # leniently: true for 1; a count that is not one is for `vet` to name).
        body = _json(raw.http_response)
        completion = ChatCompletion.model_construct(**body) if isinstance(body, dict) else body  # as parse() does
        error = getattr(completion, "error", None)
        if error:  # OpenRouter: a model that fails after it started is a 200 whose body is {"error": {...}}
            raise _answer_error(error, raw.http_response.request)
        if not hasattr(completion, "choices"):  # the SDK hands back a body that is not a JSON object as it is
            kind = raw.headers.get("content-type") or "no content-type"
            raise ValueError(f"expected a chat completion (a JSON object), got {kind}: "
                             f"{short(raw.http_response.text, 80)!r}")
        # The SDK builds its models without validating them: a value of another type is kept as it came.
        if not isinstance(completion.choices, list):
            raise ValueError(f"choices {shown(completion.choices)} is not a list")
        if not completion.choices:
            raise ValueError("response has no choices")
        pick, others = answer_choice(completion.choices)
        if pick is None:
            raise ValueError(f"response has no choice of index 0 (choices of index {shown(sorted(others))})")
        w = f"choices[{pick}]"
        choice = _model(completion.choices[pick], w)
        message = _model(choice.message, w + ".message")
        result.text = content_parts(message.content, w + ".message.content")[0] or ""
        if self._tags is not None and isinstance(result.text, str):  # not text: `vet` says so
            result.text = answer_of(result.text, **self._tags)
        result.refusal_text = getattr(message, "refusal", None) or None
        if message.tool_calls is not None and not isinstance(message.tool_calls, list):
            raise ValueError(f"{w}.message.tool_calls {shown(message.tool_calls)} is not a list")
        for i, call in enumerate(message.tool_calls or []):
            where = f"{w}.message.tool_calls[{i}]"
            fn = getattr(_model(call, where), "function", None)
            if fn is not None:  # a tool call of another type (OpenAI's "custom" ones) has no function
                fn = _model(fn, where + ".function")
                result.tool_calls.append({"name": fn.name, "arguments": fn.arguments})
        result.raw_finish_reason = choice.finish_reason
        result.finish_reason = normalise_finish(choice.finish_reason)
        result.response_model = completion.model
        result.response_id = completion.id or None
        result.system_fingerprint = completion.system_fingerprint
        result.usage = usage_of(get(body, "usage", dict))
        if choice.finish_reason in _FAILED:
            raise openai.APIError(message=f"the answer ended with finish_reason {choice.finish_reason}",
                                  request=raw.http_response.request, body=None)
        return arrival_of(raw.http_response)

    async def _stream(self, req: ChatRequest, result: CallResult, start: float,
                      limit: asyncio.Timeout) -> float | None:
        """Read the events; return when the last bytes arrived (None when the connection does not say), or [DONE]
        did: what follows it is read for the connection's reuse only, for `sse.DRAIN_S` at most, whatever is left
        of the call's `limit` (a gateway that holds the body open has answered all the same). So is what follows
        the answer's end, choice 0's finish reason and the usage asked for, [DONE] included (`sse.ending`): a
        gateway that closes the stream without [DONE], or holds it open, has answered too."""
        extra = {"stream_options": {"include_usage": True}} if self._stream_usage else {}
        try:
            raw = await self._client.chat.completions.with_raw_response.create(
                **self._body(req), stream=True, timeout=req.timeout_s, extra_headers=req.extra_headers or None,
                **extra)  # type: ignore[call-overload]  # the body is built as a dict (_body)
        except (openai.BadRequestError, openai.UnprocessableEntityError) as e:
            if not extra or not _rejects_stream_options(e.body):
                raise
            # An older OpenAI-compatible server that rejects stream_options (400), or one that validates strictly
            # (Mistral: 422 extra_forbidden): stream without it from now on (tokens are then unknown unless the
            # server reports them anyway, as Mistral does).
            log.warning("%s rejects stream_options; streaming without usage from now on", self.server_address)
            self._stream_usage = False
            raw = await self._client.chat.completions.with_raw_response.create(
                **self._body(req), stream=True, timeout=req.timeout_s, extra_headers=req.extra_headers or None)
        self._headers(raw, result)
        response = raw.http_response  # the SDK made the request and raised on an error status; we read the events
        origin = mark_sent(result, sent_of(response), start, self._clock())
        parts: list[str] = []
        tags = ThinkTags(**self._tags) if self._tags is not None else None
        pending: float | None = None  # the time of the first content not yet known to be reasoning or answer
        refusal: list[str] = []
        tools: dict[int, dict[str, str]] = {}
        saw_finish = False
        others: set[int] = set()  # the indexes of choices that are not the answer
        standard = False  # a standard usage came (it wins over Groq's x_groq.usage)
        done: list[float] = []  # when [DONE] came
        # when the answer's last event came (choice 0's finish reason, then the usage): its end where no [DONE]
        # follows (a stream broken off or stalled after it ends later, when that is given up on)
        last: float | None = None

        def done_at() -> None:
            done.append(received(arrival_of(response), origin, self._clock()))
            limit.reschedule(None)

        # the answer ends at choice 0's finish reason and the usage asked for: only [DONE] is to come after them;
        # it stands from that finish reason on: a break before the usage leaves its tokens unknown (as from a
        # server that sends none), it does not undo the answer
        answered = ending(sse_json(response, done_at), lambda: saw_finish and (standard or not self._stream_usage),
                          lambda: limit.reschedule(None), lambda: saw_finish, limit.when)
        try:
            async for chunk in answered:
                result.response_model = chunk.get("model") or result.response_model
                result.response_id = result.response_id or chunk.get("id") or None
                result.system_fingerprint = chunk.get("system_fingerprint") or result.system_fingerprint
                usage = get(chunk, "usage", dict)
                if usage is not None:
                    result.usage = usage_of(usage)
                    standard = True
                    if saw_finish:
                        last = received(arrival_of(response), origin, self._clock())
                elif not standard and _field(chunk.get("x_groq"), "usage") is not None:
                    # Groq: usage in the finish chunk's x_groq even without include_usage (stream_usage: false)
                    result.usage = usage_of(get(chunk["x_groq"], "usage", dict, "x_groq."))
                choices = get(chunk, "choices", list) or []
                pick, seen = answer_choice(choices)
                others |= seen
                if pick is not None:
                    w = f"choices[{pick}]"
                    choice = obj(choices[pick], w)
                    d = get(choice, "delta", dict, w + ".") or {}
                    # reasoning streamed before the answer (vLLM, DeepSeek: reasoning_content; Ollama, OpenRouter:
                    # reasoning) is output but not the answer
                    thought = any(isinstance(d.get(k), str) and d[k] for k in ("reasoning_content", "reasoning"))
                    got = False
                    # the chunk's time from request start, read once if at all
                    at = functools.cache(lambda: received(arrival_of(response), origin, self._clock()) - origin)
                    if isinstance(d.get("content"), list):  # Mistral's parts: thinking, then the answer's text
                        content, reasoned = content_parts(d["content"], w + ".delta.content")
                        thought = thought or reasoned
                    else:
                        content = get(d, "content", str, w + ".delta.")
                    if content:
                        parts.append(content)
                        kind = tags.feed(content) if tags is not None else "answer"
                        # reasoning in a think block, or content not yet known to be either, is output that
                        # starts the output rate's clock; a pending chunk's time is TTFT if no block comes
                        got, thought = kind == "answer", thought or kind != "answer"
                        if kind == "pending" and pending is None:
                            pending = at()
                    said = get(d, "refusal", str, w + ".delta.")
                    if said:
                        refusal.append(said)
                        got = True
                    for i, tc in enumerate(get(d, "tool_calls", list, w + ".delta.") or []):
                        where = f"{w}.delta.tool_calls[{i}]."
                        index = get(obj(tc, where[:-1]), "index", int, where)
                        slot = tools.setdefault(0 if index is None else index, {"name": "", "arguments": ""})
                        fn = get(tc, "function", dict, where)
                        if fn is not None:
                            name = get(fn, "name", str, where + "function.") or ""
                            arguments = get(fn, "arguments", str, where + "function.") or ""
                            slot["name"] += name
                            slot["arguments"] += arguments
                            got = got or bool(arguments or name)
                    mark_output(result, answer=got, reasoning=thought, at=at)
                    if choice.get("finish_reason"):
                        saw_finish = True
                        last = received(arrival_of(response), origin, self._clock())
                        result.raw_finish_reason = choice["finish_reason"]
                        result.finish_reason = normalise_finish(choice["finish_reason"])
        finally:
            result.text = "".join(parts)
            if tags is not None:
                result.text = tags.answer()
            if tags is not None and not tags.split and pending is not None:  # no think block: it was the answer
                result.ttft_s = pending if result.ttft_s is None else min(result.ttft_s, pending)
            result.refusal_text = "".join(refusal) or None
            result.tool_calls = [tools[i] for i in sorted(tools)]
            await response.aclose()
        if not saw_finish:
            # choices of other indexes only: the answer (choice 0) never came
            raise httpx.RemoteProtocolError("stream ended without a finish_reason" + (
                f" of choice 0 (choices of index {shown(sorted(others))} came)" if others else ""))
        if result.raw_finish_reason in _FAILED:
            raise openai.APIError(message=f"the stream ended with finish_reason {result.raw_finish_reason}",
                                  request=response.request, body=None)
        return done[0] if done else last if last is not None else arrival_of(response)

    @staticmethod
    def _headers(raw: Any, result: CallResult) -> None:
        result.http_status = raw.status_code
        result.request_id = raw.headers.get("x-request-id")
        result.ratelimit = ratelimit_headers(raw.headers)


def _rejects_stream_options(body: Any) -> bool:
    """Whether an error body (the SDK's: its `error` member, else all of it) names stream_options other than in the
    request it echoes: pydantic's errors carry their `input` (for a field missing, the whole request, stream_options
    in it), and a 422 about anything else is not the server rejecting them (Mistral's, which is, names them in an
    error's `loc`)."""
    def kept(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: kept(v) for k, v in value.items() if k != "input"}
        return [kept(v) for v in value] if isinstance(value, list) else value

    return "stream_options" in json.dumps(kept(body), default=str)


def _json(response: Any) -> Any:
    """A whole answer's JSON as the SDK's `parse()` reads it (and builds its model of, unvalidated): a body that is
    not JSON fails, unless its content type does not say JSON: it is then its text."""
    content_type, *_ = response.headers.get("content-type", "*").split(";")
    if content_type.endswith("json"):
        return response.json()
    try:
        return response.json()
    except (ValueError, RecursionError):
        return response.text


def _answer_error(error: Any, request: Any) -> openai.APIError:
    """The error a 200 answer carries, as the SDK's error (its message, else the whole error object)."""
    message = error.get("message") if isinstance(error, dict) else None
    return openai.APIError(message=message if isinstance(message, str) and message else str(error), request=request,
                           body=error)


def _model(value: Any, where: str) -> Any:
    """`value` when the SDK made a model of it (it was an object); raise ValueError naming it otherwise."""
    if isinstance(value, openai.BaseModel):
        return value
    raise ValueError(f"{where} {shown(value)} is not an object")


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
