"""Upstreams that answer 200 with a malformed body, through the real SDKs and a real local server: each call is
a stored `bad_response` observation whose message names the field and the value; none is lost to a crash,
blocks the store or reaches pricing, checks and metrics with a value of the wrong type."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_config
from tests.support.daemon import cli
from tests.support.jsonserver import raw_server

PROBES = """\
canaries:
  - id: c1
    messages: [{role: user, content: hi}]
    checks: [{type: contains, value: hi}, {type: length, max: 100}]
"""


def _completion(**over: Any) -> dict[str, Any]:
    body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    return {**body, **over}


def _chunks(*chunks: dict[str, Any]) -> bytes:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    return b"".join(b"data: " + json.dumps({**base, **c}).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def _anthropic(**over: Any) -> dict[str, Any]:
    body = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
            "content": [{"type": "text", "text": "hi"}], "usage": {"input_tokens": 3, "output_tokens": 2}}
    return {**body, **over}


HUGE = 10**30
# model requested -> (provider, stream, content type, body, words the stored message must contain)
CASES: dict[str, tuple[str, bool, str, bytes, list[str]]] = {
    "tokens-as-text": ("openai", False, "application/json",
                       json.dumps(_completion(usage={"prompt_tokens": "3", "completion_tokens": "2"})).encode(),
                       ["input_tokens '3'", "output_tokens '2'", "is not a token count"]),
    "tokens-negative": ("openai", False, "application/json",
                        json.dumps(_completion(usage={"prompt_tokens": -3, "completion_tokens": 2})).encode(),
                        ["input_tokens -3 is not a token count"]),
    "tokens-huge": ("openai", False, "application/json",
                    json.dumps(_completion(usage={"prompt_tokens": HUGE, "completion_tokens": 2})).encode(),
                    ["input_tokens 1000000000", "is not a token count"]),
    "model-object": ("openai", False, "application/json",
                     json.dumps(_completion(model={"a": 1}, system_fingerprint=[1])).encode(),
                     ["model {'a': 1} is not a name", "system_fingerprint [1]"]),
    "model-100k": ("openai", False, "application/json", json.dumps(_completion(model="m" * 100_000)).encode(),
                   ["model 'mmmm", "is not a name of at most 200 characters"]),
    "content-number": ("openai", False, "application/json", json.dumps(_completion(choices=[
        {"index": 0, "message": {"role": "assistant", "content": 5}, "finish_reason": 7}])).encode(),
        ["content 5 is not text", "finish_reason 7"]),
    "finish-reason-100": ("openai", False, "application/json", json.dumps(_completion(choices=[
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "x" * 100}])).encode(),
        ["finish_reason 'xxx", "is not a name of at most 64 characters"]),
    "html-page": ("openai", False, "text/html", b"<html><body>502 Bad Gateway</body></html>",
                  ["expected a chat completion (a JSON object), got text/html", "502 Bad Gateway"]),
    "json-list": ("openai", False, "application/json", b"[1, 2, 3]",
                  ["expected a chat completion (a JSON object), got application/json", "[1, 2, 3]"]),
    "stream-tokens-huge": ("openai", True, "text/event-stream", _chunks(
        {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": HUGE, "completion_tokens": "two"}}),
        ["input_tokens 1000000000", "output_tokens 'two'"]),
    "stream-model-object": ("openai", True, "text/event-stream", _chunks(
        {"model": {"x": 1}, "system_fingerprint": 7,
         "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": 7}]}),
        ["model {'x': 1}", "system_fingerprint 7", "finish_reason 7"]),
    "anthropic-tokens": ("anthropic", False, "application/json",
                         json.dumps(_anthropic(usage={"input_tokens": HUGE, "output_tokens": -1})).encode(),
                         ["input_tokens 1000000000", "output_tokens -1"]),
    "anthropic-model": ("anthropic", False, "application/json", json.dumps(_anthropic(model=["m"])).encode(),
                        ["model ['m'] is not a name"]),
}


def upstream(answer: Callable[[str], tuple[str, bytes]]) -> contextlib.AbstractContextManager[str]:
    """A local server answering each POST with `answer(model requested) -> (content type, body)`, status 200."""
    return raw_server(lambda body, headers: (200, *answer(body["model"])))


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_malformed_answers_are_stored_as_bad_responses_naming_field_and_value(tmp_path: Path, store: str,
                                                                              request: pytest.FixtureRequest) -> None:
    with upstream(lambda model: CASES[model][2:4]) as url:
        targets = "\n".join(
            f"  - {{id: {name}, provider: {provider}, base_url: '{url}/v1', model: {name}, stream: {str(stream).lower()}}}"
            for name, (provider, stream, *_) in CASES.items())
        cfg = write_config(tmp_path, targets, PROBES)
        if store == "postgres":
            pg = request.getfixturevalue("pg_url")
            cfg.write_text(cfg.read_text().replace(f"sqlite:///{tmp_path / 'm.db'}", pg))
        out = cli("probe", "-c", str(cfg), "--json")
    assert out.returncode == 1, out.stderr  # every call failed, as data
    assert "crashed" not in out.stderr and "Traceback" not in out.stderr, out.stderr
    rows = {row["target"]: row for row in map(json.loads, out.stdout.splitlines())}
    assert set(rows) == set(CASES)
    for name, (*_, words) in CASES.items():
        row = rows[name]
        assert row["error_type"] == "bad_response", (name, row["error_message"])
        assert row["error_message"].startswith("malformed response: "), (name, row["error_message"])
        for word in words:
            assert word in row["error_message"], (name, word, row["error_message"])
        assert row["cost_usd"] is None and row["output_tokens"] in (None, 2)
        assert row["response_model"] in (None, "m") and row["system_fingerprint"] is None
        assert all(v is None for v in row["checks"].values())  # a failed call is not checked
    if store == "sqlite":
        with contextlib.closing(sqlite3.connect(tmp_path / "m.db")) as db:
            stored = dict(db.execute("select target, error_type from observations").fetchall())
        assert stored == {name: "bad_response" for name in CASES}
