"""The simulator's brain: per-model state, phase selection, and one API-neutral plan per request.

Every request is planned synchronously the moment it arrives, from generators seeded with (scenario seed,
model, request index), so the same seed and the same request sequence per model give the same answers,
timings and faults. With ``temperature: 0`` or a request ``seed`` the content comes from (seed, model, phase,
prompt) instead, so repeats are exact, as they are (mostly) upstream.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from monitor.sim import textgen, toolargs
from monitor.sim.prompt_cache import Breakpoint, PromptCache
from monitor.sim.scenario import CUT_STYLES, FaultSpec, ModelSpec, Phase, RefusalRule, Scenario, Voice


def _key(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


def content_text(content: Any) -> str:
    """Return the text of a message's content: a string, or a list of parts with `text` (both APIs)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


THINK_IN_CONTENT = {"think_in_content", "think_in_content_unopened"}  # quirks: reasoning in <think> tags in content


@dataclass
class SimRequest:
    """What the simulator needs from a request, whichever API it came through."""

    api: Literal["openai", "anthropic"]
    model: str
    prompt: str
    input_tokens: int
    stream: bool
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    tool: dict[str, Any] | None = None  # {"name", "schema"} of the first tool offered
    cache_points: list[Breakpoint] = field(default_factory=list)  # the Anthropic face's cache_control marks
    waited_s: float = 0.0  # since the request arrived, when it is planned: its first token is due ttft after arrival


@dataclass
class Plan:
    """Everything one response will be: content, timing, usage, headers facts and the fault to inject."""

    model: str
    phase: str
    index: int
    stream: bool
    request_id: str
    response_id: str
    response_model: str
    fingerprint: str | None
    ttft_s: float
    tps: float
    latency_s: float | None
    chunk_tokens: int
    tokens: list[str]
    finish: Literal["stop", "length", "tool_calls"]
    refusal: RefusalRule | None
    refusal_split: int  # tokens before a content-filter cut
    tool_call: dict[str, str] | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    report_usage: bool
    fault: str | None
    fault_spec: FaultSpec | None
    cache_write_tokens: int = 0  # input written to the prompt cache for 5 minutes (the Anthropic face reports it)
    cache_write_1h_tokens: int = 0  # and for an hour
    ratelimit: dict[str, float] = field(default_factory=dict)
    stream_options: str = "accept"  # accept, reject (400) or forbid (422)
    reasoning_field: str | None = None  # the delta/message field reasoning is sent in; None: not sent; content:
    # in <think> tags before the answer (the think_in_content quirks)
    redacted: bool = False  # reasoning not sent shows as an Anthropic redacted_thinking block
    thought_cut: bool = False  # max_tokens ended the answer inside reasoning sent in the content: no </think>
    length_stop: str = "max_tokens"  # the Anthropic stop reason of an answer cut for length
    quirks: tuple[str, ...] = ()  # the OpenAI face's real-server quirks (monitor.sim.quirks)

    @property
    def text(self) -> str:
        """Return the whole answer text."""
        return "".join(self.tokens)

    def thinking(self) -> list[str]:
        """Return the reasoning tokens sent before the answer (none when reasoning is hidden)."""
        return textgen.thinking(self.reasoning_tokens) if self.reasoning_field else []

    def total_s(self) -> float:
        """Return how long a non-streaming answer takes in all."""
        if self.latency_s is not None:
            return self.latency_s
        streamed = self.reasoning_tokens if self.reasoning_field else 0  # as many as `thinking` sends
        return self.ttft_s + (streamed + len(self.tokens)) / self.tps


@dataclass
class ModelState:
    """Counters and overrides for one requested model name."""

    spec: ModelSpec
    requests: int = 0
    forced: str | None = None
    window: deque[tuple[float, int]] = field(default_factory=deque)


class Engine:
    """Holds the scenario and every model's state; plans responses and answers the admin API.

    ``clock`` returns monotonic seconds; phases with ``after`` switch on time since start (or last reset).
    """

    def __init__(self, scenario: Scenario, seed: int | None = None, clock: Callable[[], float] = time.monotonic):
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.clock = clock
        self.started = clock()
        self.models: dict[str, ModelState] = {}
        self.prompt_cache = PromptCache(clock)

    def reset(self) -> None:
        """Forget counters, forced phases, the start time and the prompt cache."""
        self.started = self.clock()
        self.models.clear()
        self.prompt_cache.clear()

    def _state(self, model: str) -> ModelState | None:
        if model not in self.models:
            spec = self.scenario.spec_for(model)
            if spec is None:
                return None
            self.models[model] = ModelState(spec)
        return self.models[model]

    def known_models(self) -> list[str]:
        """Return the model names listed in the scenario (without the ``*`` fallback)."""
        return [m for m in self.scenario.models if m != "*"]

    def phase_for(self, model: str) -> Phase | None:
        """Return the phase the next request for ``model`` will use."""
        st = self._state(model)
        if st is None:
            return None
        return self._phase(st)

    def _phase(self, st: ModelState) -> Phase:
        phases = st.spec.phases
        if st.forced is not None:
            return next(p for p in phases if p.name == st.forced)
        elapsed = self.clock() - self.started
        active = phases[0]
        for p in phases[1:]:
            if (p.after is not None and elapsed >= p.after) or (
                p.after_requests is not None and st.requests >= p.after_requests
            ):
                active = p
        return active

    def force(self, model: str, phase: str | None) -> None:
        """Pin ``model`` to ``phase`` (None: back to automatic); raise KeyError for unknown names."""
        st = self._state(model)
        if st is None:
            raise KeyError(f"unknown model {model!r}")
        if phase is not None and phase not in [p.name for p in st.spec.phases]:
            raise KeyError(f"model {model!r} has no phase {phase!r}")
        st.forced = phase

    def state(self) -> dict[str, Any]:
        """Describe uptime, and per model the current phase, whether forced, and the request count."""
        for m in self.known_models():
            self._state(m)
        return {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "uptime_s": round(self.clock() - self.started, 3),
            "models": {
                m: {"phase": self._phase(st).name, "forced": st.forced is not None, "requests": st.requests,
                    "phases": [p.name for p in st.spec.phases]}
                for m, st in self.models.items()
            },
        }

    def _voice(self, name: str) -> Voice:
        return self.scenario.voices.get(name) or textgen.BUILTIN_VOICES[name]

    def plan(self, req: SimRequest) -> Plan | None:
        """Plan the response to ``req`` and count it; None if no model spec serves it."""
        arrived = self.clock() - req.waited_s  # read first: writing the text may take a while (or wait for the CPU)
        st = self._state(req.model)
        if st is None:
            return None
        phase = self._phase(st)
        index = st.requests
        st.requests += 1
        mk = _key(req.model)
        rng = np.random.default_rng([self.seed, mk, index, 1])
        if req.temperature == 0 or req.seed is not None:
            crng = np.random.default_rng([self.seed, mk, _key(phase.name, req.prompt, req.seed), 2])
        else:
            crng = np.random.default_rng([self.seed, mk, index, 2])
        fault, fault_spec = _draw_fault(phase, rng)
        ttft = phase.ttft.sample_s(rng)
        tps = phase.output_tps.sample(rng, floor=0.1)
        latency = phase.latency.sample_s(rng) if phase.latency else None
        ids = rng.bytes(12).hex(), rng.bytes(12).hex()
        toks, finish, refusal, split, tool_call = self._content(phase, req, crng)
        reasoning, in_content, thought_cut = phase.reasoning_tokens, THINK_IN_CONTENT & set(phase.quirks), False
        # reasoning written in the content counts against max_tokens, as on the servers that send it so: a cut
        # inside it leaves the think block open and no answer
        budget = None if req.max_tokens is None else req.max_tokens - (reasoning if in_content else 0)
        if budget is not None and budget <= 0 and in_content and tool_call is None:
            reasoning, toks, finish, thought_cut = max(req.max_tokens or 0, 0), [], "length", True
        elif budget is not None and len(toks) > budget and tool_call is None:
            toks, finish = toks[: max(budget, 0)], "length"
        split = min(split, len(toks))
        if req.cache_points and _answered(fault, req.stream):  # breakpoints marked: the cache answers, not the
            # phase's fractions; a call refused with an error status (a 429, a 5xx) reads and writes nothing
            cached, write_5m, write_1h = self.prompt_cache.use(req.model, req.cache_points, ready_at=arrived + ttft)
        elif req.cache_points:
            cached, write_5m, write_1h = 0, 0, 0
        else:
            cached, write_5m, write_1h = (int(req.input_tokens * f) for f in (
                phase.cached_fraction, phase.cache_write_fraction, phase.cache_write_1h_fraction))
        if refusal is not None and refusal.style in CUT_STYLES:
            out = split + reasoning
        elif tool_call is not None:
            out = textgen.count_tokens(tool_call["name"] + " " + tool_call["arguments"]) + reasoning
        else:
            out = len(toks) + reasoning
        return Plan(
            model=req.model, phase=phase.name, index=index, stream=req.stream, request_id=ids[0], response_id=ids[1],
            response_model=phase.response_model or req.model, fingerprint=phase.system_fingerprint,
            ttft_s=ttft, tps=tps, latency_s=latency, chunk_tokens=phase.chunk_tokens, tokens=toks,
            finish=finish, refusal=refusal, refusal_split=split, tool_call=tool_call,
            input_tokens=req.input_tokens, output_tokens=out,
            cached_tokens=cached, reasoning_tokens=reasoning, cache_write_tokens=write_5m, cache_write_1h_tokens=write_1h,
            report_usage=phase.usage, fault=fault, fault_spec=fault_spec,
            ratelimit=self._ratelimit(st, phase, req.input_tokens + out),
            stream_options=phase.stream_options,
            reasoning_field="content" if in_content else None if phase.reasoning in ("hidden", "redacted")
            else phase.reasoning,
            redacted=phase.reasoning == "redacted" and phase.reasoning_tokens > 0, thought_cut=thought_cut,
            length_stop=phase.length_stop,
            quirks=tuple(phase.quirks),
        )

    def _content(self, phase: Phase, req: SimRequest, rng: np.random.Generator) -> tuple[Any, ...]:
        n = max(1, round(phase.length.sample(rng) * phase.verbosity))
        voice = self._voice(phase.voice)
        for rule in phase.refusals:
            if re.search(rule.pattern, req.prompt) and rng.random() < rule.p:
                text = rule.text or textgen.refusal_text(req.prompt, rule.language, rng)
                if rule.kind == "partial":
                    text = textgen.hedge_text(req.prompt, rule.language) + " " + textgen.filler(
                        voice, max(3, n // 2), req.prompt, rng)
                toks = textgen.tokens(text)
                if rule.style in CUT_STYLES:
                    toks = textgen.tokens(textgen.filler(voice, n, req.prompt, rng))
                    return toks, "stop", rule, int(len(toks) * rng.uniform(0.0, 0.5)), None
                return toks, "stop", rule, len(toks), None
        if req.tool is not None and rng.random() < phase.tools.call_p:
            args = toolargs.arguments(req.tool["schema"], rng, phase.tools.invalid_p, phase.tools.malformed_p)
            call = {"id": rng.bytes(12).hex(), "name": req.tool["name"], "arguments": args}
            return [], "tool_calls", None, 0, call
        for answer in phase.answers:
            if re.search(answer.pattern, req.prompt):
                u, acc = rng.random(), 0.0
                for choice in answer.choices:
                    acc += choice.p
                    if u < acc:
                        return textgen.tokens(choice.text), "stop", None, 0, None
                break
        return textgen.tokens(textgen.filler(voice, n, req.prompt, rng)), "stop", None, 0, None

    def _ratelimit(self, st: ModelState, phase: Phase, tokens: int) -> dict[str, float]:
        now = self.clock()
        while st.window and now - st.window[0][0] >= 60:
            st.window.popleft()
        st.window.append((now, tokens))
        reset = 60 - (now - st.window[0][0])
        limits = phase.ratelimits
        return {
            "limit_requests": limits.requests,
            "remaining_requests": max(0, limits.requests - len(st.window)),
            "limit_tokens": limits.tokens,
            "remaining_tokens": max(0, limits.tokens - sum(t for _, t in st.window)),
            "reset_s": round(reset, 3),
        }


# faults answered with an error (or redirect) status instead of the model's answer (`overloaded` is an event in a stream)
STATUS_FAULTS = frozenset({"rate_limit", "server_error", "unavailable", "redirect"})


def _answered(fault: str | None, stream: bool) -> bool:
    """Whether the model reads the prompt: not for a call refused with an error status."""
    return fault not in STATUS_FAULTS and not (fault == "overloaded" and not stream)


def _draw_fault(phase: Phase, rng: np.random.Generator) -> tuple[str | None, FaultSpec | None]:
    u, acc = rng.random(), 0.0
    for name, spec in zip(phase.faults.names(), phase.faults.items(), strict=True):
        acc += spec.p
        if u < acc:
            return name, spec
    return None, None
