"""Token counts the answer itself contradicts: made unknown, not believed.

`vet` drops counts that are not counts. These are counts, each in range, that cannot all be true:

- A part larger than its whole: cached input (OpenAI's ``prompt_tokens_details.cached_tokens``, DeepSeek's
  ``prompt_cache_hit_tokens``) beyond the prompt's tokens, cache reads and writes together beyond the input, writes
  kept for an hour beyond all writes, reasoning beyond the output tokens (which include it). Priced as it came,
  2,000 cached tokens of a 100-token prompt were billed at the cached price, the 100 at nothing. The part is
  unknown; the whole stands and is priced at its plain price (no discount that cannot be true is applied).
- A zero the call contradicts: some OpenAI-compatible servers and proxies send ``usage`` with every count 0 as a
  placeholder while they return text. 0 output tokens for an answer that has output, 0 input tokens for a prompt
  that is not empty, were a call that cost nothing. That count is unknown, as if the server had sent none (the
  cost is unknown: `llm_monitor_unpriced_calls_total` reason `no_usage`; no token usage sample, no output-tokens
  drift sample, no output rate), and so are the counts within it (the cache counts of the input, the reasoning of
  the output), which came from the same placeholder.

The call stands: nothing in the answer but the count is dropped. Each count dropped is noted in the result's
`usage_doubts`, naming the field and the values, for the runner to log once per target (monitor.doubts).
"""

from __future__ import annotations

from typing import Any

from monitor.domain import CallResult, Usage
from monitor.providers.base import ChatRequest

# What each count of a `Usage` is called on the wire, in each provider's answers
# (DeepSeek's cache hits are cached input tokens too: providers.openai_fields)
OPENAI_NAMES = {"input_tokens": "usage.prompt_tokens",
                "cached_input_tokens": "usage.prompt_tokens_details.cached_tokens (or prompt_cache_hit_tokens)",
                "output_tokens": "usage.completion_tokens",
                "reasoning_tokens": "usage.completion_tokens_details.reasoning_tokens"}
ANTHROPIC_NAMES = {"input_tokens": "usage.input_tokens (with the cache reads and writes)",
                   "cached_input_tokens": "usage.cache_read_input_tokens",
                   "cache_write_input_tokens": "usage.cache_creation_input_tokens",
                   "cache_write_1h_input_tokens": "usage.cache_creation.ephemeral_1h_input_tokens",
                   "output_tokens": "usage.output_tokens"}
# the refusal text of a refusal that said nothing (Anthropic's stop_reason refusal before any output): no output
REFUSED = "refusal"
_WITHIN = {"input_tokens": ("cached_input_tokens", "cache_write_input_tokens", "cache_write_1h_input_tokens"),
           "output_tokens": ("reasoning_tokens",)}


def prompted(request: ChatRequest) -> bool:
    """Whether a chat request has a prompt: a message with content, or tools."""
    return bool(request.tools) or any(m.get("content") for m in request.messages if isinstance(m, dict))


def doubt(result: CallResult, names: dict[str, str], *, prompt: bool) -> CallResult:
    """Make unknown the counts of `result` its answer (or, `prompt`, a prompt that was not empty) contradicts; note
    each in `result.usage_doubts` as (the field's wire name, what is wrong with it). `names`: the wire names."""
    u = result.usage
    counts: dict[str, Any] = {k: getattr(u, k) for k in ("input_tokens", "cached_input_tokens", "output_tokens",
                                                         "reasoning_tokens", "cache_write_input_tokens",
                                                         "cache_write_1h_input_tokens")}
    notes: list[tuple[str, str]] = []

    def name(key: str) -> str:
        return names.get(key, key)

    def drop(key: str, why: str) -> None:
        notes.append((name(key), f"{name(key)} {why}"))
        for k in (key, *_WITHIN.get(key, ())):
            counts[k] = None

    if counts["output_tokens"] == 0 and _output(result):
        drop("output_tokens", "0 for an answer with output (a placeholder, not a count)")
    if counts["input_tokens"] == 0 and prompt:
        drop("input_tokens", "0 for a prompt that is not empty (a placeholder, not a count)")
    def beyond(parts: tuple[str, ...], whole: str, aside: str = "") -> None:
        known = [k for k in parts if counts[k] is not None]
        if not known or counts[whole] is None or sum(counts[k] for k in known) <= counts[whole]:
            return
        said = " + ".join(f"{name(k)} {counts[k]}" for k in known)
        notes.append((" + ".join(name(k) for k in known), f"{said} exceed{'s' if len(known) == 1 else ''} "
                                                           f"{name(whole)} {counts[whole]}{aside}: not believed"))
        for k in known:
            counts[k] = None

    beyond(("cached_input_tokens", "cache_write_input_tokens"), "input_tokens")
    if counts["cache_write_input_tokens"] is None:  # the hour-long writes are some of the writes
        counts["cache_write_1h_input_tokens"] = None
    beyond(("cache_write_1h_input_tokens",), "cache_write_input_tokens")
    beyond(("reasoning_tokens",), "output_tokens", " (which include them)")
    if notes:
        result.usage = Usage(**counts, estimated=u.estimated)
        result.usage_doubts = notes
    return result


def _output(result: CallResult) -> bool:
    """Whether the answer has output: text, refusal text (not `REFUSED`, a refusal's that said nothing), tool calls,
    or reasoning streamed."""
    said = bool(result.refusal_text) and result.refusal_text != REFUSED
    return bool(result.text or said or result.tool_calls) or result.first_output_s is not None
