"""The fields of an OpenAI-style answer that servers fill each their own way: `content` and `usage`.

Both are read the same from a whole answer's JSON and from a stream's chunks. `content` is text, or (Mistral's
reasoning models) a list of parts of which only the ``text`` ones are the answer. `usage` holds the token counts
under names and sums that differ by server (DeepSeek's cache hits, xAI's reasoning beside the output); they are
passed on as they came, for `vet` to name a count that is not one.
"""

from __future__ import annotations

from typing import Any

from monitor.domain import Usage
from monitor.providers.shape import get, obj


def content_parts(content: Any, where: str) -> tuple[Any, bool]:
    """The answer in a message's or delta's `content`, and whether it held reasoning. Mistral's reasoning models
    (Magistral; Mistral Small with reasoning_effort) send a list of parts: ``thinking`` parts are reasoning, not the
    answer; ``text`` parts are the answer; others (references) hold no answer text. Anything but a list is handed
    back as it came (`vet` names content that is not text)."""
    if not isinstance(content, list):
        return content, False
    texts, thought = [], False
    for i, part in enumerate(content):
        kind = obj(part, f"{where}[{i}]").get("type")
        if kind == "text":
            texts.append(get(part, "text", str, f"{where}[{i}].") or "")
        thought = thought or kind == "thinking"
    return "".join(texts), thought


def usage_of(u: Any) -> Usage:
    """Usage from an answer's JSON (a chunk's, or a whole answer's); the counts as they came, for `vet`."""
    if u is None:
        return Usage()
    cached = (get(u, "prompt_tokens_details", dict, "usage.") or {}).get("cached_tokens")
    if cached is None:  # DeepSeek's own name for it
        cached = u.get("prompt_cache_hit_tokens")
    reasoning: Any = (get(u, "completion_tokens_details", dict, "usage.") or {}).get("reasoning_tokens")
    prompt, output = u.get("prompt_tokens"), u.get("completion_tokens")
    counts = (prompt, output, reasoning, u.get("total_tokens"))
    if all(type(c) is int for c in counts) and reasoning > 0 and counts[3] == prompt + output + reasoning:
        # xAI counts reasoning beside completion_tokens, not in it (its total_tokens adds all three); output
        # tokens include reasoning, as OpenAI counts them, so that reasoning is priced and rated
        output += reasoning
    return Usage(input_tokens=prompt, cached_input_tokens=cached, output_tokens=output, reasoning_tokens=reasoning)
