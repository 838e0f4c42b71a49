"""Scenario files for the simulated upstream: strict pydantic models, loading and validation.

A scenario names a seed and, per model, an ordered list of phases. Each phase patches the one before it (the
first patches the scenario's ``defaults``), so a phase lists only what changes; :mod:`monitor.sim.loader`
does the merging. Every model is ``extra="forbid"``.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.durations import parse_duration as _parse_duration

Quirk = Literal["azure_filter_results", "sse_comments", "keepalive_data", "usage_every_chunk", "usage_in_finish_chunk",
                "error_in_body", "late_status_errors", "openai_error_events", "reasoning_outside_completion",
                "finish_eos", "finish_error", "finish_abort", "cache_hit_fields", "x_groq_usage", "think_in_content",
                "think_in_content_unopened", "content_parts", "usage_placeholder"]


def parse_duration(value: Any) -> float:
    """Turn ``90s``, ``1.5m``, ``250ms`` or a number of seconds into seconds."""
    try:
        return _parse_duration(value)
    except ValueError:
        raise ValueError("expected a duration like 90s, 2m or 500ms") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Dist(_Strict):
    dist: Literal["constant", "normal", "lognormal", "uniform"] = "constant"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # A bare number means a constant.
        if isinstance(data, int | float) and not isinstance(data, bool):
            return {"dist": "constant", cls._mean_field(): data}
        return data

    @classmethod
    def _mean_field(cls) -> str:
        return "mean"

    def _draw(self, rng: np.random.Generator, mean: float, sd: float) -> float:
        if self.dist == "constant" or sd == 0:
            return mean
        if self.dist == "normal":
            return float(rng.normal(mean, sd))
        if self.dist == "uniform":
            return float(rng.uniform(mean - sd * math.sqrt(3), mean + sd * math.sqrt(3)))
        sigma2 = math.log1p((sd / mean) ** 2)  # lognormal with the given mean and sd
        return float(rng.lognormal(math.log(mean) - sigma2 / 2, math.sqrt(sigma2)))


class Duration(_Dist):
    """A random duration in milliseconds: ``{dist: lognormal, mean_ms: 400, sd_ms: 120}`` or a bare number."""

    mean_ms: float = Field(ge=0)
    sd_ms: float = Field(default=0.0, ge=0)

    @classmethod
    def _mean_field(cls) -> str:
        return "mean_ms"

    def sample_s(self, rng: np.random.Generator) -> float:
        """Draw one duration in seconds (never negative)."""
        if self.mean_ms == 0:
            return 0.0
        return max(0.0, self._draw(rng, self.mean_ms, self.sd_ms)) / 1000.0


class Count(_Dist):
    """A random positive quantity (tokens, tokens/s): ``{dist: normal, mean: 80, sd: 20}`` or a bare number."""

    mean: float = Field(gt=0)
    sd: float = Field(default=0.0, ge=0)

    def sample(self, rng: np.random.Generator, floor: float = 1.0) -> float:
        """Draw one value, at least ``floor``."""
        return max(floor, self._draw(rng, self.mean, self.sd))


class Choice(_Strict):
    """One scripted answer text and its probability."""

    text: str
    p: float = Field(ge=0, le=1)


class ScriptedAnswer(_Strict):
    """Answer a prompt matching ``pattern`` with one of ``choices``; leftover probability gives filler text."""

    pattern: str
    choices: list[Choice] = Field(min_length=1)

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str) -> str:
        return _check_regex(v)

    @model_validator(mode="after")
    def _sum(self) -> ScriptedAnswer:
        if sum(c.p for c in self.choices) > 1 + 1e-9:
            raise ValueError("choice probabilities add up to more than 1")
        return self


RefusalStyle = Literal["text", "field", "content_filter", "output_blocked", "http_400", "invalid_prompt"]
CUT_STYLES = ("content_filter", "output_blocked")  # styles that stop the answer part-way


class RefusalRule(_Strict):
    """Refuse a prompt matching ``pattern`` with probability ``p``.

    ``style``: ``text`` (a refusal as ordinary content), ``field`` (OpenAI ``refusal`` field / Anthropic
    ``stop_reason: refusal``), ``content_filter`` (partial text then finish ``content_filter`` / stop reason
    ``refusal``), ``output_blocked`` (partial text, then Anthropic's "Output blocked by content filtering policy"
    as a stream's error event, or its 400 when not streaming; the OpenAI face answers it as ``content_filter``),
    ``http_400`` (a 400 content-policy error), ``invalid_prompt`` (OpenAI's 400 for a prompt its
    reasoning models' usage-policy check flags; the Anthropic face answers it as ``http_400``). ``kind: partial``
    hedges, then answers briefly.
    """

    pattern: str
    p: float = Field(ge=0, le=1)
    style: RefusalStyle = "text"
    kind: Literal["full", "partial"] = "full"
    language: Literal["auto", "en"] = "auto"
    text: str | None = None

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str) -> str:
        return _check_regex(v)


class ToolBehaviour(_Strict):
    """What to do when the request offers ``tools``: call the first tool with probability ``call_p``."""

    call_p: float = Field(default=1.0, ge=0, le=1)
    invalid_p: float = Field(default=0.0, ge=0, le=1)
    malformed_p: float = Field(default=0.0, ge=0, le=1)


class FaultSpec(_Strict):
    """A fault striking with probability ``p`` (a bare number is shorthand for ``{p: number}``)."""

    p: float = Field(ge=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, int | float) and not isinstance(data, bool):
            return {"p": data}
        return data


class RetryFault(FaultSpec):
    """A fault answered with an error status and a ``Retry-After`` header."""

    retry_after_s: float = Field(default=1.0, ge=0)


class TimeoutFault(FaultSpec):
    """Hold the request ``hold_s`` seconds before answering (longer than any sane client timeout)."""

    hold_s: Annotated[float, Field(ge=0)] = 600.0

    @field_validator("hold_s", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)


class MidFault(FaultSpec):
    """A fault that strikes part-way through the body; ``at`` is the fraction of output sent first."""

    at: float = Field(default=0.5, ge=0, le=1)


class TailFault(MidFault):
    """A fault that may strike inside the stream's closing events.

    ``tail`` (streams only, with ``at: 1``): how many of the stream's closing events go out before the fault. OpenAI:
    the chunk with the finish reason, the usage chunk (when ``include_usage`` was asked for), ``[DONE]``;
    Anthropic: ``content_block_stop``, ``message_delta`` (stop reason and output usage), ``message_stop``. ``tail:
    1`` on OpenAI strikes after the finish reason, before the usage; ``tail: 2`` on Anthropic after
    ``message_delta``.
    """

    tail: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _whole_answer_first(self) -> TailFault:
        if self.tail and self.at < 1:
            raise ValueError(f"tail {self.tail} needs at: 1 (the closing events follow the whole answer; at is "
                             f"{self.at})")
        return self


class CutFault(TailFault):
    """End the stream early: ``abrupt: false`` ends the HTTP body cleanly without ``[DONE]``/``message_stop``,
    ``abrupt: true`` closes the connection mid-body (``tail``: see `TailFault`)."""

    abrupt: bool = False


class StallFault(TailFault):
    """Stop sending for ``stall_s`` seconds, then carry on (``tail``: see `TailFault`)."""

    stall_s: Annotated[float, Field(ge=0)] = 10.0

    @field_validator("stall_s", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)


class RedirectFault(FaultSpec):
    """Answer ``status`` (a 3xx) with ``Location: location``: an upstream that moved, or a proxy sending elsewhere."""

    location: str = Field(min_length=1)
    status: int = Field(default=307, ge=300, le=399)


class Faults(_Strict):
    """Fault probabilities; at most one fault strikes a request. ``reset.at: 0`` resets before the headers."""

    rate_limit: RetryFault | None = None
    server_error: FaultSpec | None = None
    unavailable: RetryFault | None = None
    overloaded: FaultSpec | None = None
    timeout: TimeoutFault | None = None
    malformed: FaultSpec | None = None
    stream_cut: CutFault | None = None
    stall: StallFault | None = None
    reset: MidFault | None = None
    redirect: RedirectFault | None = None

    @model_validator(mode="after")
    def _sum(self) -> Faults:
        if sum(f.p for f in self.items()) > 1 + 1e-9:
            raise ValueError("fault probabilities add up to more than 1")
        return self

    def items(self) -> list[FaultSpec]:
        """Return the configured faults in declaration order."""
        return [f for f in (getattr(self, n) for n in type(self).model_fields) if f is not None]

    def names(self) -> list[str]:
        """Return the names of the configured faults in declaration order."""
        return [n for n in type(self).model_fields if getattr(self, n) is not None]


class RateLimits(_Strict):
    """Limits reported in the rate-limit headers (per model, per minute)."""

    requests: int = Field(default=10_000, ge=1)
    tokens: int = Field(default=2_000_000, ge=1)


class Phase(_Strict):
    """Everything that shapes one model's answers while a phase is active (see module docstring)."""

    name: str
    after: float | None = None
    after_requests: int | None = Field(default=None, ge=0)
    ttft: Duration = Duration(mean_ms=200)
    latency: Duration | None = None
    output_tps: Count = Count(mean=80)
    length: Count = Count(dist="lognormal", mean=60, sd=20)
    verbosity: float = Field(default=1.0, gt=0)
    chunk_tokens: int = Field(default=2, ge=1)
    voice: str = "plain"
    response_model: str | None = None
    system_fingerprint: str | None = "fp_sim0001"
    usage: bool = True
    # reject: an older server answering 400 to it; forbid: one that validates strictly (Mistral), answering 422
    stream_options: Literal["accept", "reject", "forbid"] = "accept"
    cached_fraction: float = Field(default=0.0, ge=0, le=1)
    # Shares of the input the Anthropic face reports as written to the prompt cache, for 5 minutes and for an hour
    # (cache_creation_input_tokens, broken down in cache_creation); the OpenAI face reports no writes, as OpenAI.
    cache_write_fraction: float = Field(default=0.0, ge=0, le=1)
    cache_write_1h_fraction: float = Field(default=0.0, ge=0, le=1)
    reasoning_tokens: int = Field(default=0, ge=0)
    # How those reasoning tokens show: hidden (counted in usage only, as OpenAI's o-series), or streamed before the
    # answer in a delta field of that name (reasoning_content: vLLM, DeepSeek; reasoning: Ollama, OpenRouter);
    # the Anthropic face sends a streamed one as a thinking block. redacted: the Anthropic face sends a
    # redacted_thinking block (its data encrypted, no text) before the answer; the OpenAI face hides it.
    reasoning: Literal["hidden", "reasoning_content", "reasoning", "redacted"] = "hidden"
    # The stop reason of an Anthropic answer cut for length: model_context_window_exceeded is what the Messages API
    # gives when the context window, not max_tokens, ended it.
    length_stop: Literal["max_tokens", "model_context_window_exceeded"] = "max_tokens"
    quirks: list[Quirk] = []  # real servers' departures from OpenAI's wire format (monitor.sim.quirks)
    refusals: list[RefusalRule] = []
    answers: list[ScriptedAnswer] = []
    tools: ToolBehaviour = ToolBehaviour()
    faults: Faults = Faults()
    ratelimits: RateLimits = RateLimits()

    @field_validator("after", mode="before")
    @classmethod
    def _after(cls, v: Any) -> float | None:
        return None if v is None else parse_duration(v)

    @model_validator(mode="after")
    def _one_trigger(self) -> Phase:
        if self.after is not None and self.after_requests is not None:
            raise ValueError("give either after or after_requests, not both")
        if self.cached_fraction + self.cache_write_fraction + self.cache_write_1h_fraction > 1:
            raise ValueError("cached_fraction, cache_write_fraction and cache_write_1h_fraction add up to more than "
                             "the whole input (at most 1)")
        return self


class Voice(_Strict):
    """A vocabulary and style filler text is generated from; swapping voice models a silent model swap."""

    words: list[str] = Field(min_length=5)
    openers: list[str] = []
    closers: list[str] = []
    sentence_words: tuple[int, int] = (8, 16)
    bullet_p: float = Field(default=0.0, ge=0, le=1)
    echo_p: float = Field(default=0.08, ge=0, le=1)


class ModelSpec(_Strict):
    """One model's phases (already merged: each phase is complete)."""

    phases: list[Phase] = Field(min_length=1)


class Scenario(_Strict):
    """A complete, validated scenario: seed, optional API key, custom voices and per-model phases.

    Build one with :func:`load_scenario` or :func:`builtin_scenario`. A model named ``"*"`` answers for any
    model name not listed. ``api_key`` (if set) is required as OpenAI bearer token and Anthropic ``x-api-key``.
    """

    name: str = "scenario"
    seed: int = 0
    api_key: str | None = None
    voices: dict[str, Voice] = {}
    models: dict[str, ModelSpec] = Field(min_length=1)

    def spec_for(self, model: str) -> ModelSpec | None:
        """Return the spec serving ``model`` (exact name first, then ``"*"``)."""
        return self.models.get(model) or self.models.get("*")


def _check_regex(v: str) -> str:
    try:
        re.compile(v)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return v
