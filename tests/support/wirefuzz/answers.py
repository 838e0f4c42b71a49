"""Valid answers the mutations start from: OpenAI and Anthropic, whole and streamed, text or a tool call."""

from __future__ import annotations

import random
from typing import Any


def openai_whole(rng: random.Random) -> dict[str, Any]:
    tools = rng.random() < 0.25
    message: dict[str, Any] = {"role": "assistant", "content": None if tools else "Hello world", "refusal": None}
    if tools:
        message["tool_calls"] = [{"id": "call_1", "type": "function",
                                  "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m", "system_fingerprint": "fp_1",
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if tools else "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10,
                      "prompt_tokens_details": {"cached_tokens": 2},
                      "completion_tokens_details": {"reasoning_tokens": 0}}}


def openai_events(rng: random.Random) -> list[Any]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "system_fingerprint": "fp_1"}
    tools = rng.random() < 0.25
    events: list[Any] = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                               "finish_reason": None}]}]
    if tools:
        events.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
            "finish_reason": None}]})
        for piece in ('{"city"', ': "Paris"}'):
            events.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": piece}}]}, "finish_reason": None}]})
    else:
        for piece in ("Hel", "lo", " world"):
            events.append({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if tools else "stop"}]})
    events.append({**base, "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10,
                                                    "prompt_tokens_details": {"cached_tokens": 2},
                                                    "completion_tokens_details": {"reasoning_tokens": 0}}})
    events.append("[DONE]")
    return events


def anthropic_whole(rng: random.Random) -> dict[str, Any]:
    tools = rng.random() < 0.25
    content: list[dict[str, Any]] = [{"type": "text", "text": "Hello world"}]
    if tools:
        content.append({"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}})
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": content,
            "stop_reason": "tool_use" if tools else "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 2,
                      "cache_creation_input_tokens": 3,
                      "cache_creation": {"ephemeral_5m_input_tokens": 2, "ephemeral_1h_input_tokens": 1}}}


def anthropic_events(rng: random.Random) -> list[Any]:
    tools = rng.random() < 0.25
    events: list[Any] = [
        {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                                              "content": [], "stop_reason": None,
                                              "usage": {"input_tokens": 7, "output_tokens": 1,
                                                        "cache_read_input_tokens": 2,
                                                        "cache_creation_input_tokens": 3,
                                                        "cache_creation": {"ephemeral_5m_input_tokens": 2,
                                                                           "ephemeral_1h_input_tokens": 1}}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    for piece in ("Hel", "lo", " world"):
        events.append({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})
    events.append({"type": "content_block_stop", "index": 0})
    if tools:
        events.append({"type": "content_block_start", "index": 1,
                       "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}})
        for piece in ('{"city"', ': "Paris"}'):
            events.append({"type": "content_block_delta", "index": 1,
                           "delta": {"type": "input_json_delta", "partial_json": piece}})
        events.append({"type": "content_block_stop", "index": 1})
    events.append({"type": "message_delta", "delta": {"stop_reason": "tool_use" if tools else "end_turn",
                                                      "stop_sequence": None}, "usage": {"output_tokens": 3}})
    events.append({"type": "message_stop"})
    return events
