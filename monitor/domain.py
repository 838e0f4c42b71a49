"""Plain values shared by every layer: what one probe call produced, and what was learned from it.

These are the domain objects; the store keeps its own table models and converts at its boundary.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

# Calls the daemon makes for its own use are stored, priced and measured like probe calls under these canary ids
# (no configured canary can have them: canary ids start with a letter or a digit), so their cost counts in the
# target's spend and cap. They have no run and are not analysed for drift.
JUDGE_CANARY = "_judge"  # llm_judge checks, the refusal judge and their calibration
EMBEDDINGS_CANARY = "_embeddings"  # the semantic-similarity signal's embeddings calls
# Why a scheduled run did not happen: the pair's previous run was still going, or the scheduler reached it more
# than its grace (one interval) late.
RUN_OVERRUN, RUN_MISSED, RUN_SPEND_CAP = "overrun", "missed", "spend_cap"
# Why a billed call has no cost: the model that answered has no price, or the server reported no token counts.
UNPRICED_NO_PRICE, UNPRICED_NO_USAGE = "no_price", "no_usage"
MAX_TOKENS = 100_000_000  # per call: more than any model reads or writes, and within a 32-bit integer column
# The largest max_tokens taken (a request parameter), and so the most output tokens a tokens check can bound: models
# write at most a few hundred thousand tokens in one answer today
MAX_ANSWER_TOKENS = 1_000_000
SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(text: str) -> str:
    """`text` with its surrogates paired where they can be, the others replaced by U+FFFD: encodable as UTF-8 (a
    JSON escape of half a pair, `"\\ud800"`, decodes to a string no store or file can take)."""
    if not SURROGATE.search(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class ErrorType(StrEnum):
    """Why a call failed: one low-cardinality taxonomy for metrics, storage and alerts."""

    TIMEOUT = "timeout"
    CONNECT = "connect"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    CONTENT_FILTER = "content_filter"
    BAD_RESPONSE = "bad_response"
    CANCELLED = "cancelled"
    INTERNAL = "internal"  # llm-monitor's own code failed, not the upstream: kept out of drift


class FinishReason(StrEnum):
    """Finish reasons normalised across providers (the raw value is kept beside)."""

    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"
    REFUSAL = "refusal"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as reported by the server. ``None`` means unknown, never zero-by-default.

    ``input_tokens`` counts every input token, cache reads and writes included (the OTel convention);
    ``cached_input_tokens`` are the cache reads among them, ``cache_write_input_tokens`` the cache writes
    (Anthropic's ``cache_creation_input_tokens``; OpenAI-compatible servers report none and bill none), and
    ``cache_write_1h_input_tokens`` those of the writes kept for an hour (billed higher than the 5-minute default;
    None when the server does not break the writes down by TTL).
    """

    input_tokens: int | None = None
    cached_input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    estimated: bool = False  # True when counts were estimated locally because the server reported none
    cache_write_input_tokens: int | None = None
    cache_write_1h_input_tokens: int | None = None


@dataclass(slots=True)
class CallResult:
    """What a provider returns for one chat call: the wire-level facts, success or failure.

    Timings come from the client's own monotonic clock: ``ttft_s`` is request start to the arrival of the first
    chunk with content (or refusal text); ``latency_s`` is request start to the arrival of the end of the
    response. Request start is when the request began on the wire (see `providers.arrival`); ``send_wait_s`` is
    the time before that, from the provider call's start (the client building and queueing the request; kept in
    memory only, not stored). Reasoning a server streams before the answer (``reasoning_content``, ``reasoning``,
    Anthropic's thinking blocks, a ``<think>`` block leading the content: `providers.thinktags`) is not content:
    it is not in ``text``, and ``ttft_s`` waits for the answer, as it does where reasoning is hidden;
    ``first_output_s`` is request start to the arrival of the first chunk of any output, reasoning included (in
    memory only: the output rate counts from it). ``unseen_reasoning`` says the
    server wrote reasoning it did not stream and counts only inside the output tokens (Anthropic's
    ``redacted_thinking``): their time cannot be told, so neither can the output rate (in memory only).
    """

    text: str = ""
    finish_reason: FinishReason | None = None
    raw_finish_reason: str | None = None
    response_model: str | None = None
    system_fingerprint: str | None = None
    request_id: str | None = None
    response_id: str | None = None  # the completion's own id (chatcmpl-..., msg_...): for the trace span, not stored
    usage: Usage = field(default_factory=Usage)
    latency_s: float | None = None
    ttft_s: float | None = None
    http_status: int | None = None
    ratelimit: dict[str, str] = field(default_factory=dict)
    retry_after_s: float | None = None
    error_type: ErrorType | None = None
    error_message: str | None = None
    refusal_text: str | None = None  # OpenAI's `refusal` field, Anthropic's stop_reason=refusal text
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # [{"name": str, "arguments": str}]
    stream: bool = False
    send_wait_s: float | None = None
    first_output_s: float | None = None
    unseen_reasoning: bool = False
    # token counts the answer contradicts, made unknown (providers.doubt): (field, what is wrong); in memory only
    usage_doubts: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error_type is None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check on one completion. ``passed`` is None when the check could not be applied."""

    name: str
    type: str
    passed: bool | None
    detail: str = ""


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Observation:
    """One probe call of one canary against one target: the unit llm-monitor stores, measures and diffs."""

    canary: str
    target: str
    provider: str
    request_model: str
    started_at: datetime
    call: CallResult
    run_id: str = ""
    sample_index: int = 0
    cost_usd: float | None = None
    output_tokens_per_s: float | None = None
    checks: list[CheckResult] = field(default_factory=list)
    refusal: str | None = None  # none | partial | full
    refusal_score: float | None = None
    id: str = field(default_factory=new_id)

    @property
    def ok(self) -> bool:
        return self.call.ok

    @property
    def text(self) -> str:
        return self.call.text

    @property
    def unpriced(self) -> str | None:
        """Why a billed call has no cost (`no_price`, `no_usage`), or None: priced, or a failed call without token
        counts (none came back: counted as no spend on every target alike)."""
        if self.cost_usd is not None:
            return None
        u = self.call.usage
        if u.input_tokens is not None and u.output_tokens is not None:  # counted, so billed: no price for them
            return UNPRICED_NO_PRICE
        return UNPRICED_NO_USAGE if self.ok else None

    def as_json(self) -> dict[str, Any]:
        """The public JSON shape (``probe --json``, the HTTP API, dumps for ``replay``)."""
        c = self.call
        return {
            "id": self.id,
            "run_id": self.run_id,
            "canary": self.canary,
            "target": self.target,
            "provider": self.provider,
            "request_model": self.request_model,
            "sample_index": self.sample_index,
            "started_at": self.started_at.isoformat(),
            "text": c.text,
            "finish_reason": c.finish_reason.value if c.finish_reason else None,
            "raw_finish_reason": c.raw_finish_reason,
            "response_model": c.response_model,
            "system_fingerprint": c.system_fingerprint,
            "request_id": c.request_id,
            "input_tokens": c.usage.input_tokens,
            "cached_input_tokens": c.usage.cached_input_tokens,
            "cache_write_input_tokens": c.usage.cache_write_input_tokens,
            "cache_write_1h_input_tokens": c.usage.cache_write_1h_input_tokens,
            "output_tokens": c.usage.output_tokens,
            "reasoning_tokens": c.usage.reasoning_tokens,
            "tokens_estimated": c.usage.estimated,
            "cost_usd": self.cost_usd,
            "latency_s": c.latency_s,
            "ttft_s": c.ttft_s,
            "output_tokens_per_s": self.output_tokens_per_s,
            "http_status": c.http_status,
            "retry_after_s": c.retry_after_s,
            "error_type": c.error_type.value if c.error_type else None,
            "error_message": c.error_message,
            "refusal_text": c.refusal_text,
            "tool_calls": c.tool_calls,
            "stream": c.stream,
            "checks": {r.name: r.passed for r in self.checks},  # name -> true/false/null, as replay reads it
            "check_details": {r.name: r.detail for r in self.checks},  # why (null: why it could not be applied)
            "refusal": self.refusal,
            "refusal_score": self.refusal_score,
        }
