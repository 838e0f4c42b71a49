"""The Anthropic face's prompt cache: the breakpoints a request marks with `cache_control`, and what each reads from
or writes to the cache.

Anthropic's rules, simplified: a breakpoint caches the prompt up to and including its block (the tools first, then
the system prompt, then the messages) for its TTL (5 minutes, or an hour with `ttl: 1h`), if that prefix is at least
the model's minimum long (`min_tokens`: 1,024 to 4,096 tokens by model); a
later request to the same model whose prompt starts with a cached prefix, up to one of its own breakpoints, reads
it and renews its TTL, and writes the rest up to its last breakpoint. A prompt that differs, a model that differs,
or a TTL that ran out reads nothing; nor does a request sent before the call that writes the prefix has read its
prompt (its first token): Anthropic's cache entry is there only once the first response begins, so a canary's
samples sent at once each write it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from monitor.sim import textgen

MIN_TOKENS = 1024  # Anthropic caches no shorter prefix on most models; `min_tokens` has the exceptions
_MIN_BY_MODEL = (  # Anthropic's documented minimums, by the model name's family (first match)
    (re.compile(r"opus-4-[5-9]|haiku-4-[5-9]"), 4096),
    (re.compile(r"sonnet-4-[6-9]|claude-3(-5)?-haiku|haiku-3"), 2048),
)
TTL_S = {"5m": 300.0, "1h": 3600.0}


@dataclass(frozen=True)
class Breakpoint:
    tokens: int  # the prompt's tokens up to and including the marked block
    ttl: str  # 5m or 1h
    key: bytes  # a digest of the prompt up to there


def _blocks(content: Any) -> list[tuple[str, Any]]:
    """A content's text blocks with each one's cache_control (a string is one block without)."""
    if isinstance(content, str):
        return [(content, None)]
    if isinstance(content, list):
        return [(str(b.get("text", "")), b.get("cache_control")) for b in content if isinstance(b, dict)]
    return []


def min_tokens(model: str) -> int:
    """The shortest prefix `model` caches."""
    return next((n for pattern, n in _MIN_BY_MODEL if pattern.search(model)), MIN_TOKENS)


def _tools(tools: Any) -> list[tuple[str, Any]]:
    """The tool definitions as blocks of the prompt, each with its cache_control (a tool may carry one too)."""
    if not isinstance(tools, list):
        return []
    return [(json.dumps({k: v for k, v in t.items() if k != "cache_control"}, sort_keys=True), t.get("cache_control"))
            for t in tools if isinstance(t, dict)]


def tool_tokens(tools: Any) -> int:
    """What the tool definitions count toward the prompt's tokens."""
    return sum(textgen.count_tokens(text) for text, _ in _tools(tools))


def breakpoints(system: Any, messages: list[dict[str, Any]], tools: Any = None) -> list[Breakpoint]:
    """The breakpoints of a Messages API body's `tools`, `system` and `messages`, in prompt order (a mark that is not
    an ephemeral one with a known TTL is none). The tools open the prompt: other tools, another prefix."""
    digest, tokens, found = hashlib.blake2b(digest_size=16), 0, []
    parts = [("tools", _tools(tools)), (None, _blocks(system))]
    parts += [(m.get("role"), _blocks(m.get("content"))) for m in messages]
    for role, blocks in parts:
        tokens += 3 if role not in (None, "tools") else 0  # a message's own tokens, as the face counts them
        for text, mark in blocks:
            digest.update(repr((role, text)).encode())
            tokens += textgen.count_tokens(text)
            if isinstance(mark, dict) and mark.get("type") == "ephemeral" and mark.get("ttl", "5m") in TTL_S:
                found.append(Breakpoint(tokens, mark.get("ttl", "5m"), digest.copy().digest()))
    return found


@dataclass
class PromptCache:
    """Cached prefixes per model, until when each is kept (seconds of `clock`)."""

    clock: Callable[[], float]
    _until: dict[tuple[str, bytes], float] = field(default_factory=dict)
    _ready: dict[tuple[str, bytes], float] = field(default_factory=dict)  # when a written entry can be read

    def use(self, model: str, points: list[Breakpoint], ready_at: float | None = None) -> tuple[int, int, int]:
        """Serve one request's breakpoints: (tokens read, written for 5 minutes, written for an hour); what it writes
        can be read from `ready_at` on (when its first token is due; now if None or past)."""
        now = self.clock()
        ready_at = now if ready_at is None else max(ready_at, now)
        self._until = {k: t for k, t in self._until.items() if t > now}
        self._ready = {k: t for k, t in self._ready.items() if k in self._until}
        hit = max((i for i, p in enumerate(points) if (model, p.key) in self._until
                   and self._ready.get((model, p.key), now) <= now), default=-1)
        read = points[hit].tokens if hit >= 0 else 0
        if hit >= 0:
            self._until[(model, points[hit].key)] = now + TTL_S[points[hit].ttl]
        written = {"5m": 0, "1h": 0}
        done = read
        least = min_tokens(model)
        for p in points[hit + 1:]:
            if p.tokens >= least:
                written[p.ttl] += p.tokens - done
                done = p.tokens
                self._until[(model, p.key)] = now + TTL_S[p.ttl]
                self._ready.setdefault((model, p.key), ready_at)  # an earlier write's, if one is under way
        return read, written["5m"], written["1h"]

    def clear(self) -> None:
        self._until.clear()
        self._ready.clear()


__all__ = ["MIN_TOKENS", "Breakpoint", "PromptCache", "breakpoints", "min_tokens", "tool_tokens"]
