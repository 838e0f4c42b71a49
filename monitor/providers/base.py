"""The provider protocol: one chat call in, one :class:`CallResult` out, never an exception for upstream faults.

A provider owns its HTTP client and speaks one wire format. It measures timings with the injected monotonic
clock: `ttft_s` from when the request began on the wire (`began`) to the arrival of the first chunk that carries
content (text, refusal text or tool-call arguments), `latency_s` to the arrival of the end of the response.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from monitor.domain import CallResult, ErrorType
from monitor.providers.capped import ReplyTooLarge

Clock = Callable[[], float]
# OpenAI: code content_policy_violation / content_filter (Azure: "content management policy"), and invalid_prompt
# for a prompt its reasoning models' usage-policy check flags; Anthropic: "Output blocked by content filtering policy".
# The message of a call whose answer holds JSON nested deeper than Python's parser goes (a RecursionError)
TOO_DEEP = "malformed response: JSON nested too deeply to read"
_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")  # a Retry-After in seconds, ASCII digits (a fraction, as some servers send, too)
_CONTENT_POLICY = re.compile(r"content[ _-]?(policy|filter|management)|invalid_prompt")


@dataclass(frozen=True)
class ChatRequest:
    """One chat call: OpenAI-style messages plus sampling parameters (None means "server default")."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool = True
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    cache: dict[int, str] = field(default_factory=dict)  # message index -> TTL of a prompt-cache breakpoint after it
    timeout_s: float = 60.0
    extra_headers: dict[str, str] = field(default_factory=dict)


class Provider(Protocol):
    """Sends chat requests to one upstream API and reports what happened as data.

    `secrets` are the values no result of it may carry: the API key of a provider `build_provider` built, whose
    wrapper (providers.scrub) takes them out of every result; the runner takes them out of the message of an
    exception a provider raised too (a bug that put the request's headers in its text). A provider that scrubs
    nothing itself has none.
    """

    name: str  # the OTel gen_ai.provider.name
    server_address: str
    secrets: tuple[str, ...]

    async def complete(self, request: ChatRequest) -> CallResult:
        """Make one call; return a CallResult whose error_type is set when the call failed."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def monotonic() -> float:
    return time.perf_counter()


def began(sent: float | None, start: float, now: float) -> float:
    """Request start: when the request began on the wire as noted by the connection, else the call's `start`.

    The time the client spends building the request and waiting for its turn on the event loop is the daemon's,
    not the provider's, so it is left out where the connection can say when the bytes left. A time outside
    [start, now] cannot belong to this call.
    """
    return sent if sent is not None and start <= sent <= now else start


def mark_sent(result: CallResult, sent: float | None, start: float, now: float) -> float:
    """Note on `result` how long the request waited before it began on the wire; return request start."""
    origin = began(sent, start, now)
    result.send_wait_s = origin - start
    return origin


def request_start(result: CallResult, start: float) -> float:
    """The request start noted by `mark_sent`, else the call's `start` (no response came back)."""
    return start + (result.send_wait_s or 0.0)


def received(arrival: float | None, start: float, now: float) -> float:
    """The time bytes arrived as noted by the connection (see `providers.arrival`), else `now`.

    An arrival outside [start, now] cannot belong to this call (another clock, or a connection's stale note).
    """
    return arrival if arrival is not None and start <= arrival <= now else now


def mark_output(result: CallResult, *, answer: bool, reasoning: bool, at: Callable[[], float]) -> None:
    """Note a streamed chunk of output: the first of the answer sets `ttft_s`, the first of any output (reasoning
    streamed before the answer included) `first_output_s`; `at()`, the chunk's time from request start, is read
    only when one of them is set."""
    if (answer and result.ttft_s is None) or (reasoning and result.first_output_s is None):
        t = at()
        if result.first_output_s is None:
            result.first_output_s = t
        if answer and result.ttft_s is None:
            result.ttft_s = t


def status_error_type(status: int, body_text: str = "") -> ErrorType:
    """Map an HTTP error status (and the error body) to the error taxonomy."""
    low = body_text.lower()
    if status == 429:
        return ErrorType.RATE_LIMITED
    if status in (401, 403):
        return ErrorType.AUTH
    if status == 408:
        return ErrorType.TIMEOUT
    if status >= 500:
        return ErrorType.SERVER_ERROR
    if status == 400 and _CONTENT_POLICY.search(low):
        return ErrorType.CONTENT_FILTER
    return ErrorType.BAD_REQUEST


def answer_error_type(error: Any) -> ErrorType:
    """The error type of an error object a 200 answer carries (a stream's error event, or the whole body).

    Proxies that answer 200 before their upstream does (LiteLLM) and vLLM put the upstream's HTTP status in
    `code` ("429", 500): it types the error as the status would have. Otherwise a rate limit says so in its text.
    """
    body = json.dumps(error) if error is not None else ""
    code = error.get("code") if isinstance(error, dict) else None
    if isinstance(code, int | str) and not isinstance(code, bool) and str(code).isdigit() and 400 <= int(code) < 600:
        return status_error_type(int(code), body)
    return ErrorType.RATE_LIMITED if "rate_limit" in body else ErrorType.SERVER_ERROR


def retry_after_seconds(headers: Any) -> float | None:
    """Parse Retry-After (seconds, or retry-after-ms) from response headers."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms and _SECONDS.fullmatch(ms.strip()):
        return float(ms) / 1000.0
    ra = headers.get("retry-after")
    if not ra:
        return None
    if _SECONDS.fullmatch(ra.strip()):  # digits (RFC 9110), not all that float() takes ("1_000", "nan", "1e3")
        return float(ra)
    from email.utils import parsedate_to_datetime

    try:
        return max(parsedate_to_datetime(ra).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def ratelimit_headers(headers: Any) -> dict[str, str]:
    """Keep the rate-limit headers of a response (they are data, never metric labels)."""
    if headers is None:
        return {}
    keep = ("x-ratelimit-", "anthropic-ratelimit-", "retry-after", "openai-processing-ms")
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith(keep)}


def too_large(result: CallResult, e: ReplyTooLarge) -> None:
    """Note on `result` a reply that went past the byte cap: a `bad_response` naming the limit."""
    result.http_status = result.http_status or e.status
    result.error_type, result.error_message = ErrorType.BAD_RESPONSE, str(e)


def malformed(e: Exception) -> str:
    """The message of an answer that could not be read; a JSON syntax error shows where, and the text there."""
    if isinstance(e, json.JSONDecodeError):
        around = e.doc[max(e.pos - 30, 0):e.pos + 30]
        at = "" if e.msg.endswith(" at") else " at"  # "Unterminated string starting at" says it itself
        return short(f"malformed response: not JSON ({e.msg}{at} character {e.pos}): {around!r}")
    return short(f"malformed response: {e}")


def undecodable(e: Exception, status: int | None) -> tuple[ErrorType, str]:
    """The error type and message of a body that does not decode as its Content-Encoding says (gzip that is not):
    the HTTP library raises a `DecodingError`, neither a transport error nor a `ValueError`.

    An error status stands: the call is typed by it as if its body had been read (a 429 is still a rate limit) and
    the message says the body could not be decoded. Any other answer is a `bad_response`: it could not be read."""
    said = f"the body does not decode as its Content-Encoding says: {e}"
    if status is not None and status >= 400:
        return status_error_type(status), short(f"HTTP {status}: {said}")
    return ErrorType.BAD_RESPONSE, short(f"malformed response: {said}")


def timed_out(result: CallResult, timeout_s: float) -> str:
    """The message of a call with no complete answer in `timeout_s`: whether the answer had begun.

    A body still short of its Content-Length on a connection the server keeps open is a timeout too: nothing on
    the wire says the rest will not come (a server that closes the connection instead makes it an answer broken
    off: a `bad_response`, or for an error status the type the status says, as `broken_connection` has it).
    """
    if result.http_status is None:
        return f"no complete answer in {timeout_s:g}s: no response yet"
    return f"no complete answer in {timeout_s:g}s: HTTP {result.http_status} came, its body did not end"


CUT = "…"  # ends a text `short` cut (providers.scrub also scrubs the start of a key the cut left there)


def short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + CUT


def _names(exc: BaseException) -> set[str]:
    return {c.__name__ for c in type(exc).__mro__}


def broken_connection(exc: BaseException, status: int | None) -> tuple[ErrorType, str]:
    """Type a call whose connection failed: `connect` when none could be made (a proxy's refusal to reach the target
    included: httpcore's ProxyError) or the request could not be sent, `bad_response` when an answer had started
    (`status`, the status it came with) and broke off or what came was not HTTP, else `server_error`: the server took
    the request and closed the connection without answering (what a crashing upstream or a proxy does).

    An error status stands (as in `undecodable`): a 429 whose body broke off is still a rate limit, typed by its
    status, the message saying the error body broke off.

    `exc` is the exception caught; an SDK's error wraps the HTTP library's as its cause. Classes are matched by
    name because the openai SDK may be built on another httpx flavour (httpx2) than the one imported here.
    """
    seen: BaseException | None = exc
    while seen is not None and not _names(seen) & {"HTTPError", "SOCKSError"}:
        if isinstance(seen, ReplyTooLarge):  # wrapped by an SDK (openai 1.x wraps what its client raises)
            return ErrorType.BAD_RESPONSE, str(seen)
        seen = seen.__cause__ or seen.__context__
    detail = f"{type(seen).__name__}: {seen}" if seen is not None else str(exc)
    if status is not None and status >= 400:
        return status_error_type(status), f"HTTP {status}: the error body broke off: {detail}"
    if status is not None:
        return ErrorType.BAD_RESPONSE, f"response broken off: {detail}"
    if seen is None or _names(seen) & {"ConnectError", "ConnectTimeout", "WriteError"}:
        return ErrorType.CONNECT, f"connection failed: {detail}"
    if "SOCKSError" in _names(seen):  # socksio's: what came from a SOCKS proxy was not the handshake's answer
        return ErrorType.CONNECT, f"connection failed: the SOCKS proxy's handshake failed: {detail}"
    if "ProxyError" in _names(seen):  # the proxy did not reach the target: a SOCKS reply, an HTTP CONNECT refused
        return ErrorType.CONNECT, f"connection failed: the proxy did not connect: {detail}"
    if "RemoteProtocolError" in _names(seen) and "disconnected without" not in str(seen):
        # something came, but not HTTP: an illegal status or header line, conflicting lengths (a broken proxy)
        return ErrorType.BAD_RESPONSE, f"the answer is not valid HTTP: {detail}"
    return ErrorType.SERVER_ERROR, f"connection closed before an answer: {detail}"
