"""Token counts the answer contradicts (a cache count beyond the prompt, a placeholder 0 beside text), through the
daemon's providers and a real loopback server: made unknown and noted, naming the field and the values; the call
stands, and counts that can be true are kept as they came."""

from __future__ import annotations

import json
from typing import Any

import pytest

from monitor.config.models import Prices
from monitor.domain import CallResult
from monitor.pricing import cost_usd
from tests.support.replies import (
    FINISH,
    answer,
    anthropic_stream,
    anthropic_whole,
    chunk,
    completion,
    events,
    reply,
)

PRICES = Prices(input=1.0, cached_input=0.1, output=2.0)  # USD per million tokens


async def openai(usage: dict[str, Any], stream: bool, content: str = "hi") -> CallResult:
    """What the OpenAI provider makes of an answer `content` with `usage`, streamed or whole."""
    if stream:
        raw = reply(events("openai", *([chunk(content=content)] if content else []), FINISH,
                           {**FINISH, "choices": [], "usage": usage}), ctype="text/event-stream")
    else:
        raw = completion(usage=usage, choices=[{"index": 0, "message": {"role": "assistant", "content": content},
                                                "finish_reason": "stop"}])
    r = await answer("openai", stream, raw)
    assert r.ok, r.error_message
    return r


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("field", ["prompt_tokens_details", "prompt_cache_hit_tokens"])
async def test_cached_tokens_beyond_the_prompt_are_not_believed(stream: bool, field: str) -> None:
    """2,000 cached tokens of a 100-token prompt were priced as they came: 2,000 at the cached price and the prompt
    at nothing. The cached count is unknown now, the prompt priced at its plain price."""
    cached: dict[str, Any] = {"prompt_tokens_details": {"cached_tokens": 2000}} if field == "prompt_tokens_details" \
        else {"prompt_cache_hit_tokens": 2000}
    r = await openai({"prompt_tokens": 100, "completion_tokens": 3, "total_tokens": 103, **cached}, stream)
    assert (r.usage.input_tokens, r.usage.cached_input_tokens, r.usage.output_tokens) == (100, None, 3)
    name = "usage.prompt_tokens_details.cached_tokens (or prompt_cache_hit_tokens)"
    assert r.usage_doubts == [(name, f"{name} 2000 exceeds usage.prompt_tokens 100: not believed")]
    assert cost_usd(r.usage, PRICES) == pytest.approx((100 * 1.0 + 3 * 2.0) / 1e6)


@pytest.mark.parametrize("stream", [True, False])
async def test_cached_tokens_within_the_prompt_stand(stream: bool) -> None:
    r = await openai({"prompt_tokens": 100, "completion_tokens": 3, "total_tokens": 103,
                      "prompt_tokens_details": {"cached_tokens": 100}}, stream)
    assert (r.usage.input_tokens, r.usage.cached_input_tokens, r.usage_doubts) == (100, 100, [])


async def test_reasoning_beyond_the_output_is_not_believed() -> None:
    """Output tokens include reasoning: more reasoning than output took the output rate's answer tokens below 0."""
    r = await openai({"prompt_tokens": 7, "completion_tokens": 30, "total_tokens": 37,
                      "completion_tokens_details": {"reasoning_tokens": 50}}, False)
    assert (r.usage.output_tokens, r.usage.reasoning_tokens) == (30, None)
    assert r.usage_doubts == [("usage.completion_tokens_details.reasoning_tokens",
                               "usage.completion_tokens_details.reasoning_tokens 50 exceeds usage.completion_tokens 30 "
                               "(which include them): not believed")]


PLACEHOLDER = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0,
               "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}


@pytest.mark.parametrize("stream", [True, False])
async def test_a_placeholder_usage_of_zeros_beside_text_is_unknown(stream: bool) -> None:
    """A proxy's usage of zeros beside the text it returns was a call of 0 tokens that cost $0: every count is
    unknown now (the cost too), as if it had sent no usage."""
    r = await openai(PLACEHOLDER, stream)
    assert r.text == "hi"
    u = r.usage
    assert (u.input_tokens, u.cached_input_tokens, u.output_tokens, u.reasoning_tokens) == (None,) * 4
    assert r.usage_doubts == [
        ("usage.completion_tokens", "usage.completion_tokens 0 for an answer with output (a placeholder, not a count)"),
        ("usage.prompt_tokens", "usage.prompt_tokens 0 for a prompt that is not empty (a placeholder, not a count)")]
    assert cost_usd(u, PRICES) is None


@pytest.mark.parametrize("stream", [True, False])
async def test_a_zero_output_count_beside_text_is_unknown_the_prompts_count_stands(stream: bool) -> None:
    r = await openai({"prompt_tokens": 12, "completion_tokens": 0, "total_tokens": 12}, stream)
    assert (r.usage.input_tokens, r.usage.output_tokens) == (12, None)
    assert [name for name, _ in r.usage_doubts] == ["usage.completion_tokens"]


@pytest.mark.parametrize("stream", [True, False])
async def test_zero_output_tokens_for_an_empty_answer_stand(stream: bool) -> None:
    """An answer with no output can have cost no output tokens: nothing contradicts the 0."""
    r = await openai({"prompt_tokens": 12, "completion_tokens": 0, "total_tokens": 12}, stream, content="")
    assert (r.text, r.usage.input_tokens, r.usage.output_tokens, r.usage_doubts) == ("", 12, 0, [])
    assert cost_usd(r.usage, PRICES) == pytest.approx(12 / 1e6)


@pytest.mark.parametrize("stream", [True, False])
async def test_anthropics_input_tokens_leave_out_the_cache_reads(stream: bool) -> None:
    """Anthropic's `input_tokens` are the input after the last cache breakpoint: cache reads beyond them are how a
    cached prompt looks, not counts to doubt (input tokens are all three added)."""
    usage = {"input_tokens": 5, "output_tokens": 3, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 10}
    r = await answer("anthropic", stream, anthropic_stream(usage, usage) if stream else anthropic_whole(usage))
    assert r.ok, r.error_message
    assert (r.usage.input_tokens, r.usage.cached_input_tokens, r.usage.cache_write_input_tokens) == (2015, 2000, 10)
    assert r.usage_doubts == []


@pytest.mark.parametrize("stream", [True, False])
async def test_an_anthropic_placeholder_of_zeros_beside_text_is_unknown(stream: bool) -> None:
    usage = {"input_tokens": 0, "output_tokens": 0}
    r = await answer("anthropic", stream, anthropic_stream(usage, usage) if stream else anthropic_whole(usage))
    assert r.ok and r.text == "hi", r.error_message
    assert (r.usage.input_tokens, r.usage.output_tokens) == (None, None)
    assert [name for name, _ in r.usage_doubts] == ["usage.output_tokens",
                                                   "usage.input_tokens (with the cache reads and writes)"]


async def test_anthropics_hour_long_cache_writes_beyond_all_writes_are_not_believed() -> None:
    usage = {"input_tokens": 5, "output_tokens": 3, "cache_creation_input_tokens": 10,
             "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 40}}
    r = await answer("anthropic", False, anthropic_whole(usage))
    assert r.ok, r.error_message
    assert (r.usage.cache_write_input_tokens, r.usage.cache_write_1h_input_tokens) == (10, None)
    assert r.usage_doubts == [("usage.cache_creation.ephemeral_1h_input_tokens",
                               "usage.cache_creation.ephemeral_1h_input_tokens 40 exceeds "
                               "usage.cache_creation_input_tokens 10: not believed")]


@pytest.mark.parametrize("stream", [True, False])
async def test_an_anthropic_refusal_before_any_output_costs_no_output_tokens(stream: bool) -> None:
    """A refusal before any output (stop_reason refusal, no content) is billed no output tokens: its 0 is a count.
    Its refusal text is the daemon's own word for it, not output that contradicts the 0."""
    usage = {"input_tokens": 12, "output_tokens": 0}
    if stream:
        start = {"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": usage}}
        raw = reply(events("anthropic", start, {"type": "message_delta", "delta": {"stop_reason": "refusal"},
                                                "usage": {"output_tokens": 0}}, {"type": "message_stop"}),
                    ctype="text/event-stream")
    else:
        raw = reply(json.dumps({"id": "msg_1", "type": "message", "model": "m", "stop_reason": "refusal",
                                "content": [], "usage": usage}).encode())
    r = await answer("anthropic", stream, raw)
    assert r.ok and r.refusal_text, r.error_message
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage_doubts) == (12, 0, [])
    assert cost_usd(r.usage, PRICES) == pytest.approx(12 / 1e6)


async def test_an_anthropic_stream_whose_message_delta_zeroes_the_input_keeps_message_starts_count() -> None:
    """message_delta's counts are cumulative; some Anthropic-compatible servers (SGLang's /v1/messages) send
    input_tokens 0 there after message_start's count. That 0 replaced the count, and the call was doubted as a
    placeholder: cost unknown, though the stream had said the input."""
    start = {"input_tokens": 12, "cache_read_input_tokens": 4, "output_tokens": 1}
    r = await answer("anthropic", True, anthropic_stream({"input_tokens": 0, "cache_read_input_tokens": 0,
                                                          "output_tokens": 3}, start))
    assert r.ok, r.error_message
    assert (r.usage.input_tokens, r.usage.cached_input_tokens, r.usage.output_tokens, r.usage_doubts) == \
        (16, 4, 3, [])
