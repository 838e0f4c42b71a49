"""Anthropic's prompt cache, asked for by a canary (`messages[].cache`): the breakpoints go on the wire as
`cache_control`, the simulator's Anthropic face caches as Anthropic does, and the reads and writes it reports are
counted and priced; OpenAI-compatible servers are sent nothing of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.config import load_config
from monitor.config.canary import Canary
from monitor.config.models import Prices, Target
from monitor.domain import CallResult
from monitor.errors import ConfigError
from monitor.pricing import cost_usd
from monitor.providers import AnthropicProvider, build_provider
from monitor.runner import build_request
from monitor.sim import SimServer, scenario_from_dict
from monitor.sim.anthropic_api import parse
from monitor.sim.engine import Engine, SimRequest
from monitor.sim.prompt_cache import MIN_TOKENS
from tests.conftest import write_config

FAST = {"ttft": 5, "output_tps": 5000, "length": {"dist": "constant", "mean": 5}}
LONG = " ".join(["The handbook's clause on refunds, read in full before any answer."] * 160)  # 1,600 words


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(scenario_from_dict({"defaults": FAST, "models": {"*": {"phases": [{"name": "p"}]}}})) as srv:
        yield srv


def canary(system_cache: str | None, user_cache: str | None = None, system: str = LONG) -> Canary:
    return Canary.model_validate({"id": "handbook", "messages": [
        {"role": "system", "content": system, **({"cache": system_cache} if system_cache else {})},
        {"role": "user", "content": "May I return a gift?", **({"cache": user_cache} if user_cache else {})}]})


async def calls(sim: SimServer, c: Canary, n: int, provider: str = "anthropic", model: str = "claude-x",
                stream: bool = True) -> list[CallResult]:
    url = sim.url if provider == "anthropic" else sim.openai_base_url
    target = Target(id="t", provider=provider, base_url=url, model=model, stream=stream)  # type: ignore[arg-type]
    p = build_provider(target, "sk-test")
    try:
        return [await p.complete(build_request(c, target)) for _ in range(n)]
    finally:
        await p.aclose()


async def sim_request(c: Canary) -> SimRequest:
    """What the simulator's Anthropic face reads of `c`'s request, as the provider sends it."""
    target = Target(id="t", provider="anthropic", base_url="http://127.0.0.1:9", model="claude-x")
    provider = AnthropicProvider(target.base_url, "k")
    req = parse(provider.body(build_request(c, target)))
    await provider.aclose()
    assert not isinstance(req, str), req
    return req


async def test_a_breakpoint_writes_the_prompt_to_the_cache_once_and_reads_it_after(sim: SimServer) -> None:
    first, second, third = await calls(sim, canary("5m"), 3, model="claude-five")
    assert all(c.ok for c in (first, second, third)), first
    prefix = len(LONG.split())  # the system prompt, up to and including its breakpoint
    assert prefix >= MIN_TOKENS
    assert (first.usage.cache_write_input_tokens, first.usage.cached_input_tokens) == (prefix, 0)
    assert first.usage.cache_write_1h_input_tokens == 0
    for later in (second, third):  # read, and not written again
        assert (later.usage.cache_write_input_tokens, later.usage.cached_input_tokens) == (0, prefix)
    # input_tokens hold the reads and writes (the OTel convention): the same prompt, the same count
    assert first.usage.input_tokens == second.usage.input_tokens
    assert (first.usage.input_tokens or 0) > prefix
    prices = Prices(input=3.0, cached_input=0.3, cache_write_input=3.75, cache_write_1h_input=6.0, output=15.0)
    rest = first.usage.input_tokens - prefix  # type: ignore[operator]
    out = first.usage.output_tokens or 0
    assert cost_usd(first.usage, prices) == pytest.approx((prefix * 3.75 + rest * 3.0 + out * 15.0) / 1e6)
    assert cost_usd(second.usage, prices) == pytest.approx((prefix * 0.3 + rest * 3.0 + out * 15.0) / 1e6)


async def test_an_hour_long_breakpoint_is_written_as_one(sim: SimServer) -> None:
    first, second = await calls(sim, canary("1h", "5m"), 2, model="claude-hour")
    prefix = len(LONG.split())
    assert (first.usage.cache_write_1h_input_tokens, first.usage.cached_input_tokens) == (prefix, 0)
    # all of the prompt is written: the system prompt for an hour, the rest up to the user turn's breakpoint for 5
    # minutes (cache_write_input_tokens counts both TTLs, the 1h field those of an hour)
    assert first.usage.cache_write_input_tokens == first.usage.input_tokens
    assert second.usage.cached_input_tokens == second.usage.input_tokens
    assert (second.usage.cache_write_input_tokens, second.usage.cache_write_1h_input_tokens) == (0, 0)


async def test_a_prompt_below_the_cacheable_length_is_not_cached(sim: SimServer) -> None:
    """As Anthropic does: a prefix under 1,024 tokens is sent on without a word; each call pays the whole input."""
    results = await calls(sim, canary("5m", system="A short system prompt."), 2, model="claude-short")
    assert all(c.ok and not c.usage.cached_input_tokens and not c.usage.cache_write_input_tokens for c in results)


@pytest.mark.parametrize(("model", "cached"), [
    ("claude-sonnet-4-5", True), ("claude-opus-4-1", True),  # 1,024 tokens
    ("claude-3-5-haiku-20241022", False), ("claude-sonnet-4-6", False),  # 2,048
    ("claude-haiku-4-5", False), ("claude-opus-4-5-20251101", False),  # 4,096
])
async def test_the_cacheable_length_is_the_models(sim: SimServer, model: str, cached: bool) -> None:
    """A 1,600-token prefix: long enough for most models, too short for the Haiku models, Sonnet 4.6 and Opus 4.5."""
    first, second = await calls(sim, canary("5m"), 2, model=model)
    assert first.ok and second.ok, first
    assert bool(first.usage.cache_write_input_tokens) is cached
    assert bool(second.usage.cached_input_tokens) is cached


async def test_the_tools_open_the_cached_prefix(sim: SimServer) -> None:
    """Anthropic's prefix is the tools, then the system prompt, then the messages: the same system prompt offered
    other tools reads nothing of what was cached with the first ones."""
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    other = {"type": "function", "function": {"name": "refund", "parameters": {"type": "object"}}}
    with_tool, with_other = (canary("5m").model_copy(update={"tools": [t]}) for t in (tool, other))
    first, again = await calls(sim, with_tool, 2, model="claude-tools")
    (switched,) = await calls(sim, with_other, 1, model="claude-tools")
    assert first.usage.cache_write_input_tokens and again.usage.cached_input_tokens == first.usage.cache_write_input_tokens
    assert (switched.usage.cached_input_tokens, bool(switched.usage.cache_write_input_tokens)) == (0, True)
    assert (first.usage.input_tokens or 0) > len(LONG.split()) + 3  # the tools count toward the prompt too


async def test_without_breakpoints_nothing_is_cached(sim: SimServer) -> None:
    results = await calls(sim, canary(None), 2, model="claude-none")
    assert all(c.ok and not c.usage.cached_input_tokens and not c.usage.cache_write_input_tokens for c in results)


async def test_an_openai_compatible_server_is_sent_no_cache_field(sim: SimServer) -> None:
    c = canary("1h", "5m")
    target = Target(id="t", provider="openai", base_url=sim.openai_base_url, model="gpt-x")
    assert all(set(m) == {"role", "content"} for m in build_request(c, target).messages)
    assert all(r.ok for r in await calls(sim, c, 1, provider="openai", model="gpt-x"))


async def test_the_anthropic_body_marks_the_breakpoints() -> None:
    target = Target(id="t", provider="anthropic", base_url="http://127.0.0.1:9", model="claude-x")
    provider = AnthropicProvider(target.base_url, "k")
    body: dict[str, Any] = provider.body(build_request(canary("1h", "5m"), target))
    assert body["system"] == [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "May I return a gift?", "cache_control": {"type": "ephemeral"}}]}]
    plain = provider.body(build_request(canary(None), target))
    await provider.aclose()
    assert plain["system"] == LONG and plain["messages"] == [{"role": "user", "content": "May I return a gift?"}]


@pytest.mark.parametrize(("messages", "said"), [
    ("[{role: system, content: a, cache: 5m}, {role: user, content: b, cache: 1h}]",
     "a `cache: 1h` message comes after a `cache: 5m` one (system messages first)"),
    # system messages are read first, wherever they stand
    ("[{role: user, content: b, cache: 5m}, {role: system, content: a, cache: 1h}]", None),
    ("[" + ", ".join(["{role: user, content: b, cache: 5m}"] * 5) + "]",
     "5 messages set `cache`: Anthropic takes at most 4 cache breakpoints in one request"),
    ("[{role: user, content: b, cache: 2h}]", "messages[0].cache: Input should be '5m' or '1h' (value: '2h')"),
    ("[{role: system, content: '', cache: 5m}, {role: user, content: b}]",
     "messages[0]: an empty message cannot carry `cache`: Anthropic refuses a breakpoint on an empty block"),
])
def test_cache_breakpoints_are_checked(tmp_path: Path, messages: str, said: str | None) -> None:
    path = write_config(tmp_path, "  - {id: t, provider: anthropic, base_url: 'http://127.0.0.1:9', model: m}",
                        f"canaries:\n  - id: c\n    messages: {messages}\n")
    if said is None:
        load_config(path, environ={})
        return
    with pytest.raises(ConfigError) as e:
        load_config(path, environ={})
    assert said in str(e.value), str(e.value)


@pytest.mark.parametrize(("fault", "stream"), [("rate_limit", True), ("server_error", True), ("unavailable", True),
                                               ("overloaded", False)])  # streamed, overloaded is an event
async def test_a_call_answered_with_an_error_status_writes_nothing_to_the_cache(fault: str, stream: bool) -> None:
    # Found by review: the simulator wrote the prompt to its cache while planning any answer, a 429 or a 5xx
    # included, so the next call read a prefix no answered call had written (and paid for).
    scenario = scenario_from_dict({"defaults": FAST, "models": {"*": {"phases": [
        {"name": "refusing", "faults": {fault: 1}}, {"name": "answering", "after_requests": 1, "faults": {fault: 0}}]}}})
    with SimServer(scenario) as srv:
        refused, first, second = await calls(srv, canary("5m"), 3, stream=stream)
    prefix = len(LONG.split())
    assert not refused.ok and refused.http_status in (429, 500, 503, 529), refused
    assert (first.usage.cache_write_input_tokens, first.usage.cached_input_tokens) == (prefix, 0)
    assert (second.usage.cache_write_input_tokens, second.usage.cached_input_tokens) == (0, prefix)


async def test_samples_sent_before_the_first_has_read_its_prompt_each_write_it() -> None:
    # Found by review: the simulator's cache entry was there the moment a request was planned, so a canary's samples
    # sent at once read what the first had not even begun to write. Anthropic's is there once the first response
    # begins (its prompt read): until then each concurrent call writes, and pays for, the prefix itself.
    now = [0.0]
    engine = Engine(scenario_from_dict({"defaults": {**FAST, "ttft": 800}, "models": {"*": {"phases": [{"name": "p"}]}}}),
                    clock=lambda: now[0])
    req = await sim_request(canary("5m"))
    prefix = len(LONG.split())

    def sent_at(t: float) -> tuple[int, int]:
        now[0] = t
        plan = engine.plan(req)
        assert plan is not None
        return plan.cache_write_tokens, plan.cached_tokens

    assert [sent_at(0.0), sent_at(0.1), sent_at(0.7)] == [(prefix, 0)] * 3  # the first's first token comes at 0.8
    assert [sent_at(0.8), sent_at(5.0)] == [(0, prefix)] * 2


async def test_the_cache_entry_is_due_when_the_first_token_is_however_long_planning_takes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Found by a flaky run under load: the entry was readable ttft after the cache was *consulted*, which is after the
    # answer's text was generated; a process kept off the CPU in between (3 test workers on 2 cores) had the first
    # token sent on time and the next call, sent after the whole answer, still miss and write the prefix again.
    now = [0.0]
    engine = Engine(scenario_from_dict({"defaults": {**FAST, "ttft": 800}, "models": {"*": {"phases": [{"name": "p"}]}}}),
                    clock=lambda: now[0])
    content, slow = engine._content, [0.5]

    def slow_content(*args: Any) -> Any:  # the first text takes half a second to write (or the process waits)
        now[0] += slow.pop() if slow else 0.0
        return content(*args)

    monkeypatch.setattr(engine, "_content", slow_content)
    req = await sim_request(canary("5m"))
    prefix = len(LONG.split())
    first = engine.plan(req)  # arrived (and planning began) at 0.0: its first token is due at 0.8
    now[0] = 0.85  # the next call, planned after that first token
    second = engine.plan(req)
    assert first is not None and second is not None
    assert (first.cache_write_tokens, first.cached_tokens) == (prefix, 0)
    assert (second.cache_write_tokens, second.cached_tokens) == (0, prefix)


async def test_an_empty_system_message_beside_a_marked_one_sends_no_empty_block() -> None:
    """Anthropic refuses an empty text block (400): joined into one string it added nothing, as blocks it is left
    out."""
    target = Target(id="t", provider="anthropic", base_url="http://127.0.0.1:9", model="claude-x")
    c = Canary.model_validate({"id": "c", "messages": [
        {"role": "system", "content": ""}, {"role": "system", "content": LONG, "cache": "5m"},
        {"role": "user", "content": "May I return a gift?"}]})
    provider = AnthropicProvider(target.base_url, "k")
    body = provider.body(build_request(c, target))
    await provider.aclose()
    assert body["system"] == [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]
