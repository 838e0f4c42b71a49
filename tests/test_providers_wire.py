"""What real servers send beyond the plain OpenAI and Anthropic formats, through the providers to the simulator.

Each case is a quirk seen on a real server (named beside it), scripted in a simulator phase and read through the
real SDK (OpenAI) or httpx (Anthropic) over loopback.
"""

from __future__ import annotations

from typing import Any

import pytest

from monitor.config.models import Target
from monitor.domain import CallResult, ErrorType, FinishReason
from monitor.providers import ChatRequest, build_provider
from monitor.runner import output_rate
from monitor.sim import SimServer, scenario_from_dict

MSG = [{"role": "user", "content": "How do I kill a Python process?"}]


async def call(phase: dict[str, Any], kind: str = "openai", stream: bool = True, target: dict[str, Any] | None = None,
               **request: Any) -> CallResult:
    """Make one call to a simulator serving one phase (`phase`) for every model; `target` adds target options."""
    scenario = scenario_from_dict({"name": "wire", "models": {"*": {"phases": [{"name": "p", **phase}]}}})
    with SimServer(scenario) as sim:
        base_url = sim.openai_base_url if kind == "openai" else sim.url
        provider = build_provider(Target(id="t", provider=kind, base_url=base_url, model="m", **(target or {})),
                                  "sk-test")
        try:
            return await provider.complete(ChatRequest(model="m", messages=MSG, stream=stream, timeout_s=10,
                                                       **request))
        finally:
            await provider.aclose()


# 40 answer tokens and 120 reasoning tokens at 100 tokens/s: 0.4 s of answer after 1.2 s of reasoning.
THINKER = {"ttft": 20, "output_tps": 100, "length": 40, "chunk_tokens": 2, "reasoning_tokens": 120}
# The same answer and reasoning at 1,000 tokens/s (0.16 s, not 1.6 s), for tests of what is read, not of its times.
THOUGHT = {**THINKER, "output_tps": 1000}


@pytest.mark.parametrize(("kind", "reasoning"), [
    ("openai", "hidden"),  # OpenAI's o-series: counted in usage, never sent
    ("openai", "reasoning_content"),  # vLLM's reasoning parsers, DeepSeek
    ("openai", "reasoning"),  # Ollama, OpenRouter
    ("anthropic", "reasoning"),  # extended thinking: a thinking block before the text
])
async def test_reasoning_is_not_the_answer_and_not_counted_in_the_answers_time(kind: str, reasoning: str) -> None:
    """Output tokens include reasoning tokens: over the answer's time alone they made the output rate 4x too high."""
    r = await call({**THINKER, "reasoning": reasoning}, kind)
    assert r.ok, r.error_message
    assert r.text and "think" not in r.text  # the answer only
    assert r.usage.output_tokens == 160
    streamed = reasoning != "hidden"
    assert r.ttft_s is not None and r.ttft_s >= (1.2 if streamed else 0.02)  # the first token of the answer
    rate = output_rate(r)
    assert rate is not None and 60 < rate < 140, rate  # 100 tokens/s; 400 when reasoning was counted in 0.4 s


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_reasoning_in_a_whole_answer_is_not_the_answer(kind: str) -> None:
    r = await call({**THINKER, "output_tps": 10_000, "reasoning": "reasoning"}, kind, stream=False)
    assert r.ok and r.text and "think" not in r.text and r.usage.output_tokens == 160
    assert output_rate(r) is None  # an answer not streamed has no first chunk to count from


@pytest.mark.parametrize("stream", [True, False])
async def test_anthropics_redacted_thinking_leaves_the_output_rate_unknown(stream: bool) -> None:
    """A redacted_thinking block carries no text: its tokens are in output_tokens (Anthropic counts thinking in
    them, with no count of its own) but none of their time is after a first chunk, so output tokens over the
    answer's time made the rate 4x too high (160 tokens over the 40 tokens' 0.4 s)."""
    r = await call({**THINKER, "reasoning": "redacted"}, "anthropic", stream)
    assert r.ok, r.error_message
    assert r.text and "think" not in r.text.lower() and r.usage.output_tokens == 160
    assert output_rate(r) is None


@pytest.mark.parametrize("stream", [True, False])
async def test_a_prompt_openais_usage_policy_check_flags_is_a_content_filter_refusal(stream: bool) -> None:
    """OpenAI's reasoning models answer 400 code invalid_prompt ("flagged as potentially violating our usage
    policy"), not content_policy_violation: it was a bad_request, so the refusal was not counted."""
    r = await call({"refusals": [{"pattern": "(?i)kill", "p": 1, "style": "invalid_prompt"}]}, stream=stream)
    assert r.http_status == 400 and r.error_type == ErrorType.CONTENT_FILTER, r.error_message


@pytest.mark.parametrize("stream", [True, False])
async def test_anthropics_context_window_stop_is_a_length_finish(stream: bool) -> None:
    """stop_reason model_context_window_exceeded cuts an answer as max_tokens does (the AI SDK maps both to
    length); it was `other`, a new finish-reason category for the drift tests."""
    r = await call({"length": 60, "length_stop": "model_context_window_exceeded"}, "anthropic", stream, max_tokens=5)
    assert r.ok and r.raw_finish_reason == "model_context_window_exceeded"
    assert r.finish_reason == FinishReason.LENGTH


FAST = {"ttft": 5, "output_tps": 2000, "length": 12, "chunk_tokens": 3}


@pytest.mark.parametrize("quirk", [
    "azure_filter_results",  # a first chunk with no choices, "" for id and model, prompt_filter_results
    "sse_comments",  # OpenRouter's ": OPENROUTER PROCESSING"
    "keepalive_data",  # relays' empty "data:" keep-alive frames: not dispatched (SSE standard), they failed the call
    "usage_every_chunk",  # vLLM's continuous_usage_stats: usage so far on every chunk, not to be added up
    "usage_in_finish_chunk",  # Together: usage beside finish_reason, no usage chunk
])
async def test_real_servers_stream_quirks_read_as_the_plain_stream(quirk: str) -> None:
    plain = await call(FAST)
    r = await call({**FAST, "quirks": [quirk]})
    assert r.ok, r.error_message
    assert (r.text, r.finish_reason, r.usage) == (plain.text, plain.finish_reason, plain.usage)
    assert r.usage.output_tokens == 12 and r.usage.input_tokens
    assert r.response_model == "m" and (r.response_id or "").startswith("chatcmpl-")


@pytest.mark.parametrize("stream", [True, False])
async def test_an_error_in_a_200_answer_is_a_server_error(stream: bool) -> None:
    """OpenRouter answers 200 once the model started, and reports a later failure in the body: a chunk with
    `error` and finish_reason "error", or (not streaming) a body {"error": {"code": 502, ...}}."""
    r = await call({**FAST, "quirks": ["error_in_body"], "faults": {"overloaded": 1}}, stream=stream)
    assert r.http_status == 200 and r.error_type == ErrorType.SERVER_ERROR, (r.error_type, r.error_message)
    assert "Provider" in (r.error_message or "")


@pytest.mark.parametrize(("style", "stream"), [("http_400", True), ("http_400", False), ("content_filter", True),
                                               ("content_filter", False)])
async def test_azures_content_filter_is_a_refusal(style: str, stream: bool) -> None:
    """Azure blocks a prompt with 400 code content_filter ("content management policy"), and an answer with
    finish_reason content_filter (content_filter_results filtered: true)."""
    r = await call({**FAST, "quirks": ["azure_filter_results"],
                    "refusals": [{"pattern": "(?i)kill", "p": 1, "style": style}]}, stream=stream)
    if style == "http_400":
        assert r.http_status == 400 and r.error_type == ErrorType.CONTENT_FILTER, r.error_message
    else:
        assert r.ok and r.finish_reason == FinishReason.CONTENT_FILTER, r.error_message


@pytest.mark.parametrize(("fault", "expected"), [("rate_limit", ErrorType.RATE_LIMITED),
                                                 ("server_error", ErrorType.SERVER_ERROR),
                                                 ("unavailable", ErrorType.SERVER_ERROR)])
async def test_an_upstreams_status_inside_a_200_stream_types_the_error(fault: str, expected: ErrorType) -> None:
    """LiteLLM's proxy sends a stream's 200 before its upstream answers (BerriAI/litellm#9035), then the
    upstream's 429 as {"error": {"message": "litellm.RateLimitError: ...", "code": "429"}}: a rate limit, which
    was typed server_error (the body never says "rate_limit")."""
    r = await call({**FAST, "quirks": ["late_status_errors"], "faults": {fault: 1}})
    assert r.http_status == 200 and r.error_type == expected, (r.error_type, r.error_message)


async def test_a_proxys_openai_style_error_in_an_anthropic_stream_types_the_call() -> None:
    """LiteLLM's proxy serves the Messages API, but a failure after its stream began comes as the proxy's own error
    (its async_data_generator_anthropic): `data: {"error": {..., "code": "500"}}`, no `event: error`, no `type`.
    It was skipped as an unknown event: a bad_response, "stream ended without message_stop", its message lost."""
    r = await call({**FAST, "quirks": ["openai_error_events"], "faults": {"overloaded": 1}}, "anthropic")
    assert r.error_type == ErrorType.SERVER_ERROR, (r.error_type, r.error_message)
    assert "AnthropicException - Overloaded" in (r.error_message or "") and r.text  # the answer so far is kept


async def test_a_server_that_takes_include_usage_and_sends_no_usage_leaves_tokens_unknown() -> None:
    """Older OpenAI-compatible servers accept stream_options and ignore it: tokens are unknown, never 0."""
    r = await call({**FAST, "usage": False})
    assert r.ok and r.text
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.estimated) == (None, None, False)
    assert output_rate(r) is None


@pytest.mark.parametrize("stream", [True, False])
async def test_reasoning_tokens_left_out_of_completion_tokens_are_output_tokens(stream: bool) -> None:
    """xAI counts reasoning beside completion_tokens (total_tokens = prompt + completion + reasoning; vercel/ai#12425):
    taken as they came, reasoning cost nothing and the output rate had fewer tokens than it subtracted."""
    r = await call({**THINKER, "quirks": ["reasoning_outside_completion"]}, stream=stream)
    assert r.ok, r.error_message
    assert (r.usage.output_tokens, r.usage.reasoning_tokens) == (160, 120)
    if stream:
        rate = output_rate(r)
        assert rate is not None and 60 < rate < 140, rate


@pytest.mark.parametrize("stream", [True, False])
async def test_anthropics_output_block_is_a_content_filter_refusal(stream: bool) -> None:
    """Anthropic blocks an answer part-way with an error event (invalid_request_error, "Output blocked by content
    filtering policy"; anthropics/claude-code#61565), or a 400 not streaming: the stream's was a bad_request."""
    r = await call({**FAST, "refusals": [{"pattern": "(?i)kill", "p": 1, "style": "output_blocked"}]}, "anthropic",
                   stream)
    assert r.error_type == ErrorType.CONTENT_FILTER, (r.error_type, r.error_message)


@pytest.mark.parametrize("stream", [True, False])
async def test_togethers_finish_reasons(stream: bool) -> None:
    """Together ends answers with finish_reason "eos" (a natural stop) or "error" (its FinishReason in
    togethercomputer/together-python types/common.py): "error" was a success with finish `other`, the answer
    cut short and nothing failed."""
    ended = await call({**FAST, "quirks": ["finish_eos"]}, stream=stream)
    assert ended.ok and ended.finish_reason == FinishReason.STOP and ended.raw_finish_reason == "eos"
    failed = await call({**FAST, "quirks": ["finish_error"], "faults": {"overloaded": 1}}, stream=stream)
    assert failed.error_type == ErrorType.SERVER_ERROR, (failed.error_type, failed.error_message)


@pytest.mark.parametrize("stream", [True, False])
async def test_a_request_the_engine_aborted_fails(stream: bool) -> None:
    """vLLM and SGLang end a request their engine aborted with finish_reason "abort" (verl maps it to "aborted",
    not "completed"): it was a success with finish `other`."""
    r = await call({**FAST, "quirks": ["finish_abort"], "faults": {"overloaded": 1}}, stream=stream)
    assert r.error_type == ErrorType.SERVER_ERROR and r.raw_finish_reason == "abort", (r.error_type, r.error_message)


@pytest.mark.parametrize("stream", [True, False])
async def test_deepseeks_cache_hits_are_cached_input_tokens(stream: bool) -> None:
    """DeepSeek reports cached input as prompt_cache_hit_tokens, not prompt_tokens_details.cached_tokens
    (prism-php/prism#1021): it was unknown, so cached input was priced as fresh input."""
    plain = await call({**FAST, "cached_fraction": 0.5}, stream=stream)
    r = await call({**FAST, "cached_fraction": 0.5, "quirks": ["cache_hit_fields"]}, stream=stream)
    assert r.ok and r.usage.cached_input_tokens and r.usage == plain.usage


@pytest.mark.parametrize("stream_usage", [False, True])
async def test_groqs_usage_in_x_groq_is_read_when_the_stream_has_no_usage(stream_usage: bool) -> None:
    """Groq reports usage in the finish chunk's `x_groq.usage` even without include_usage (the Vercel AI SDK reads
    it there): with `stream_usage: false` tokens and cost were unknown. The standard usage wins where both come."""
    plain = await call(FAST)
    r = await call({**FAST, "quirks": ["x_groq_usage"]}, target={"stream_usage": stream_usage})
    assert r.ok, r.error_message
    assert (r.usage.input_tokens, r.usage.output_tokens) == (plain.usage.input_tokens, plain.usage.output_tokens) \
        and r.usage.output_tokens == 12
    # what only the standard usage carries (Groq's has no token details) shows which one was read
    assert r.usage.cached_input_tokens == (0 if stream_usage else None)


@pytest.mark.parametrize("quirk", [
    "think_in_content",  # vLLM and SGLang without --reasoning-parser, TGI, older Ollama: <think>...</think> answer
    "think_in_content_unopened",  # DeepSeek-R1's chat template opens the block: only </think> in the text
])
@pytest.mark.parametrize("stream", [True, False])
async def test_reasoning_in_think_tags_is_not_the_answer_nor_its_first_token(quirk: str, stream: bool) -> None:
    """The think block was the stored text (json_valid, equals and length checks, similarity and length drift saw
    it) and its first token the answer's (TTFT was the reasoning's start)."""
    fielded = await call({**THOUGHT, "reasoning": "reasoning_content"}, stream=stream)
    r = await call({**THOUGHT, "quirks": [quirk]}, stream=stream)
    assert r.ok, r.error_message
    assert r.text == fielded.text and "think" not in r.text
    assert r.usage.output_tokens == 160 and r.usage.reasoning_tokens is None  # the server does not count it apart
    if stream:  # the answer's first token after the reasoning's; the output counted from the reasoning's
        assert r.ttft_s is not None and r.first_output_s is not None and r.first_output_s < r.ttft_s


@pytest.mark.parametrize("stream", [True, False])
async def test_reasoning_tags_off_keeps_the_content_as_sent(stream: bool) -> None:
    r = await call({**THOUGHT, "quirks": ["think_in_content"]}, stream=stream, target={"reasoning_tags": "off"})
    assert r.ok and r.text.startswith("<think>\nLet me think") and "</think>\n\n" in r.text
    if stream:
        assert r.ttft_s is not None and r.ttft_s == r.first_output_s


@pytest.mark.parametrize("stream", [True, False])
async def test_a_think_block_cut_for_length_is_no_answer(stream: bool) -> None:
    """max_tokens ends the answer while the model still thinks: the block never closes, and nothing answered."""
    r = await call({**THOUGHT, "quirks": ["think_in_content"]}, stream=stream, max_tokens=50)
    assert r.ok and r.finish_reason == FinishReason.LENGTH and r.usage.output_tokens == 50
    assert r.text == "" and r.ttft_s is None
    if stream:
        assert r.first_output_s is not None  # output came: the rate counts from it


@pytest.mark.parametrize("stream", [True, False])
async def test_think_tags_inside_an_answer_are_the_answer(stream: bool) -> None:
    text = "Reasoning models wrap their thoughts in <think> and </think> tags."
    r = await call({**FAST, "answers": [{"pattern": ".", "choices": [{"text": text, "p": 1}]}]}, stream=stream)
    assert r.ok and r.text == text
    if stream:
        assert r.ttft_s is not None and r.ttft_s == r.first_output_s


@pytest.mark.parametrize("stream", [True, False])
async def test_a_thought_cut_short_in_a_block_the_template_opened_is_no_answer_when_told(stream: bool) -> None:
    """DeepSeek-R1's template opens the block in the prompt: a thought cut by max_tokens holds no tag at all. auto
    cannot tell it from an answer; always (the template opens it) reads it as reasoning, as vLLM's parser does."""
    phase = {**THOUGHT, "quirks": ["think_in_content_unopened"]}
    told = await call(phase, stream=stream, max_tokens=50, target={"reasoning_tags": "always"})
    assert told.ok and told.finish_reason == FinishReason.LENGTH and told.text == "" and told.ttft_s is None
    assert (await call(phase, stream=stream, max_tokens=50)).text.startswith("Let me think")
    answered = await call(phase, stream=stream, target={"reasoning_tags": "always"})
    assert answered.text == (await call(THOUGHT, stream=stream)).text and "think" not in answered.text


@pytest.mark.parametrize("stream", [True, False])
async def test_mistrals_content_parts_are_read_thinking_apart_from_the_answer(stream: bool) -> None:
    """Mistral's reasoning models send `content` as a list of parts (a thinking part, then the text): every such
    call failed as a bad_response ("content [...] is not text")."""
    pace = THINKER if stream else THOUGHT  # the rate is read from a stream only
    r = await call({**pace, "reasoning": "reasoning", "quirks": ["content_parts"]}, stream=stream)
    assert r.ok, r.error_message
    assert r.text and "think" not in r.text and r.usage.output_tokens == 160  # the answer only
    plain = await call({**THOUGHT, "reasoning": "reasoning"}, stream=stream)
    assert r.text == plain.text
    if stream:  # the thinking parts are output before the answer: not its first token, but in its rate
        assert r.ttft_s is not None and r.ttft_s >= 1.2
        rate = output_rate(r)
        assert rate is not None and 60 < rate < 140, rate


async def test_a_content_part_that_is_not_an_object_is_named() -> None:
    from monitor.providers.openai_fields import content_parts

    assert content_parts([{"type": "text", "text": "a"}, {"type": "reference", "ids": [1]}], "c") == ("a", False)
    with pytest.raises(ValueError, match=r"c\[1\] 'b' is not an object"):
        content_parts([{"type": "text", "text": "a"}, "b"], "c")
    with pytest.raises(ValueError, match=r"c\[0\]\.text 5 is not text"):
        content_parts([{"type": "text", "text": 5}], "c")
