"""Streams cut inside their closing events, through the providers (the SDK, httpx) over loopback against the
simulator (`stream_cut` with `tail`: how many of the closing events go out before the cut).

An answer whose text and stop reason were delivered is an answer, whatever became of the events after them: on
OpenAI a stream that breaks after choice 0's finish reason, before the usage chunk and [DONE], has unknown token
counts (never 0, never invented) and an unknown cost; on Anthropic one that ends after message_delta (stop reason
and output usage), without message_stop, keeps its counts. One that ends before any stop reason is broken off (its
answer may be cut short): a bad_response.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.app import App
from monitor.config import load_config
from monitor.config.models import Prices
from monitor.domain import ErrorType
from monitor.pricing import cost_usd
from monitor.providers import ChatRequest
from monitor.providers import sse as sse_module
from monitor.sim import SimServer, scenario_from_dict
from tests.conftest import write_config
from tests.support.jsonserver import wire_server
from tests.support.metric import sample
from tests.support.runner_config import PROBES
from tests.test_providers import TRANSPORTS, make
from tests.test_providers_message_stop import HEAD, piece
from tests.test_providers_replies import build, call, sse

TEXT = "The answer is 42, as asked."
MSG = [{"role": "user", "content": "What is 6 times 7?"}]
BROKEN = "response broken off: RemoteProtocolError: "


def _cut(tail: int, abrupt: bool, at: float = 1.0) -> dict[str, Any]:
    return {"phases": [{"name": "cut", "answers": [{"pattern": ".", "choices": [{"text": TEXT, "p": 1}]}],
                        "faults": {"stream_cut": {"p": 1, "at": at, "tail": tail, "abrupt": abrupt}}}]}


# cut-<closing events sent>-<how>: abrupt closes the connection mid-body, clean ends the body without its last events
MODELS = {f"cut-{tail}-{how}": _cut(tail, how == "abrupt") for tail in (0, 1, 2) for how in ("abrupt", "clean")}
MODELS["cut-half"] = _cut(0, True, at=0.5)
# stall-<closing events sent>: the stream stops sending for 30 s there, then carries on
MODELS |= {f"stall-{tail}": {"phases": [{"name": "stall", "answers": [{"pattern": ".", "choices": [{"text": TEXT, "p": 1}]}],
                                         "faults": {"stall": {"p": 1, "at": 1.0, "tail": tail, "stall_s": 30}}}]}
           for tail in (0, 1)}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    scenario = {"name": "stream-ends", "seed": 1, "defaults": {"ttft": 5, "output_tps": 2000, "chunk_tokens": 2},
                "models": MODELS}
    with SimServer(scenario_from_dict(scenario)) as server:
        yield server


async def _call(sim: SimServer, kind: str, transport: str, model: str, timeout_s: float = 10) -> Any:
    provider = make(kind, sim, transport)
    try:
        return await provider.complete(ChatRequest(model=model, messages=MSG, stream=True, timeout_s=timeout_s))
    finally:
        await provider.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("how", ["abrupt", "clean"])
async def test_an_openai_stream_cut_after_its_finish_reason_is_an_answer_of_unknown_tokens(
        sim: SimServer, how: str, transport: str) -> None:
    """The finish chunk came, then the connection closed before the usage chunk and [DONE]: a closed connection
    made it a bad_response ("broken off"), though its text and finish reason were whole."""
    r = await _call(sim, "openai", transport, f"cut-1-{how}")
    assert r.ok, (r.error_type, r.error_message)
    assert (r.text, r.raw_finish_reason) == (TEXT, "stop")
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.cached_input_tokens, r.usage.reasoning_tokens) \
        == (None, None, None, None)  # unknown: not 0, not counted from the text
    assert cost_usd(r.usage, Prices(input=1.0, output=2.0)) is None


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("timeout_s", [10, 2], ids=["usage waited for", "the call's limit first"])
async def test_an_openai_stream_stalled_after_its_finish_reason_is_an_answer_of_unknown_tokens(
        sim: SimServer, timeout_s: float, transport: str) -> None:
    """The finish chunk came, then nothing (a proxy holding the stream open): the call timed out at its limit, its
    whole answer lost. The usage is waited for `sse.USAGE_WAIT_S` at most, never past the call's limit, and the
    answer's latency is its own, not that wait's."""
    r = await _call(sim, "openai", transport, "stall-1", timeout_s)
    assert r.ok, (r.error_type, r.error_message)
    assert (r.text, r.raw_finish_reason, r.usage.output_tokens) == (TEXT, "stop", None)
    assert r.latency_s is not None and r.latency_s < min(timeout_s, sse_module.USAGE_WAIT_S)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_openai_stream_stalled_before_its_finish_reason_times_out(sim: SimServer, transport: str) -> None:
    r = await _call(sim, "openai", transport, "stall-0", timeout_s=2)
    assert r.error_type == ErrorType.TIMEOUT, (r.error_type, r.error_message)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("how", ["abrupt", "clean"])
async def test_an_openai_stream_cut_after_its_usage_keeps_the_counts(sim: SimServer, how: str, transport: str) -> None:
    r = await _call(sim, "openai", transport, f"cut-2-{how}")
    assert r.ok, (r.error_type, r.error_message)
    assert r.text == TEXT and r.usage.input_tokens and r.usage.output_tokens


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("model", ["cut-0-abrupt", "cut-half"])
async def test_an_openai_stream_cut_before_its_finish_reason_is_broken_off(sim: SimServer, model: str,
                                                                          transport: str) -> None:
    r = await _call(sim, "openai", transport, model)
    assert r.error_type == ErrorType.BAD_RESPONSE, (r.error_type, r.error_message)
    assert (r.error_message or "").startswith(BROKEN), r.error_message
    assert r.raw_finish_reason is None and r.usage.output_tokens is None


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("how", ["abrupt", "clean"])
async def test_an_anthropic_stream_ended_after_message_delta_is_an_answer(sim: SimServer, how: str,
                                                                         transport: str) -> None:
    """content_block_stop and message_delta came (the stop reason, the output usage), message_stop did not: it was
    a bad_response, "stream ended without message_stop" (or broken off)."""
    r = await _call(sim, "anthropic", transport, f"cut-2-{how}")
    assert r.ok, (r.error_type, r.error_message)
    assert (r.text, r.raw_finish_reason) == (TEXT, "end_turn")
    assert r.usage.input_tokens and r.usage.output_tokens


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("model", ["cut-1-abrupt", "cut-1-clean", "cut-0-clean", "cut-half"])
async def test_an_anthropic_stream_ended_before_its_stop_reason_is_broken_off(sim: SimServer, model: str,
                                                                             transport: str) -> None:
    r = await _call(sim, "anthropic", transport, model)
    assert r.error_type == ErrorType.BAD_RESPONSE, (r.error_type, r.error_message)
    assert (r.error_message or "").startswith(BROKEN), r.error_message
    assert r.text and r.raw_finish_reason is None
    assert r.usage.input_tokens and r.usage.output_tokens is None  # message_start's 1 is a placeholder


async def test_an_anthropic_stream_held_open_after_message_delta_is_an_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """As an OpenAI one held open after its finish reason and usage: what follows is read for a second at most
    (`sse.DRAIN_S`); it was a timeout at the call's end."""
    finished = threading.Event()
    body = (sse("message_start", {"type": "message_start", "message": {"id": "msg_1", "model": "m"}})
            + sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": "hi"}})
            + sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                    "usage": {"output_tokens": 1}}))

    def answer(request: dict[str, Any], send: Any) -> None:
        send(HEAD + b"\r\n" + piece(body))
        finished.wait(30)  # neither message_stop nor the body's end comes

    try:
        with wire_server(answer) as url:
            r = await call(build("anthropic", url, "daemon", monkeypatch), True, timeout_s=10)
    finally:
        finished.set()
    assert r.ok, (r.error_type, r.error_message)
    assert (r.text, r.raw_finish_reason, r.usage.output_tokens) == ("hi", "end_turn", 1)


async def test_a_run_whose_streams_lost_their_usage_counts_no_tokens_and_no_cost(sim: SimServer,
                                                                                 tmp_path: Path) -> None:
    """Through the runner: the answers stand (checks, successes), their cost is unknown (counted apart, reason
    no_usage), and no token count is observed or spent."""
    target = (f"  - {{id: cut, provider: openai, base_url: '{sim.openai_base_url}', model: cut-1-abrupt, "
              "prices: {input: 1, output: 2}}")
    app = App(load_config(write_config(tmp_path, target, PROBES), environ={}), environ={}, serve_http=False,
              analyse=False)
    await app.start(schedule=False)
    try:
        ((canary, tgt),) = app.config.pairs()
        observations = await app.runner.run(canary, tgt)
    finally:
        await app.stop()
    reg, pair = app.registry, {"canary": canary.id, "target": "cut"}
    assert len(observations) == 3 and all(o.ok and o.call.text == TEXT for o in observations), \
        [(o.call.error_type, o.call.error_message) for o in observations]
    assert all(o.cost_usd is None and o.unpriced == "no_usage" for o in observations)
    assert sample(reg, "llm_monitor_unpriced_calls_total", **pair, reason="no_usage") == 3
    assert sample(reg, "llm_monitor_cost_usd_total", **pair) == 0
    assert sum(sample(reg, "gen_ai_client_token_usage_count", **pair, gen_ai_token_type=kind)
               for kind in ("input", "output")) == 0
    assert sample(reg, "llm_monitor_output_tokens_per_second_count", **pair) == 0


def _chunk(**fields: Any) -> bytes:
    return b"data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                   **fields}).encode() + b"\n\n"


@pytest.mark.parametrize("finished", [True, False], ids=["after its finish reason", "before it"])
async def test_an_openai_stream_whose_body_ends_inside_an_event_stands_after_its_finish_reason(
        finished: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy that ends the body cleanly in the middle of the usage chunk: the last event, without its blank line,
    does not parse. After the finish reason it is the tail cut, as a connection broken there (it was a bad_response,
    "not JSON", the answer lost); before it the answer may be cut short, and it stays one."""
    closing = [_chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])] if finished else []
    events = [_chunk(choices=[{"index": 0, "delta": {"content": "hi"}}]), *closing,
              _chunk(choices=[], usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4})[:40]]

    def answer(request: dict[str, Any], send: Any) -> None:
        send(HEAD + b"\r\n" + b"".join(piece(e) for e in events) + b"0\r\n\r\n")

    with wire_server(answer) as url:
        r = await call(build("openai", url, "daemon", monkeypatch), True)
    if finished:
        assert r.ok, (r.error_type, r.error_message)
        assert (r.text, r.raw_finish_reason, r.usage.output_tokens) == ("hi", "stop", None)
    else:
        assert r.error_type == ErrorType.BAD_RESPONSE and "not JSON" in (r.error_message or ""), r.error_message
