"""Prompt-cache writes: read from Anthropic's usage (split by TTL where it says), priced above the input price,
stored, traced and shown in the JSON API; OpenAI-compatible calls have none and cost what they did.

Anthropic bills a cache write at 1.25 times the input price (5-minute TTL) or 2 times (1-hour TTL); they were
priced as plain input. Each case goes through the simulator (or a scripted loopback server) and the real
providers, runner and store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text

from monitor.app import App
from monitor.config import load_config
from monitor.config.models import Prices
from monitor.domain import ErrorType, Usage
from monitor.pricing import cost_usd
from monitor.sim import SimServer, scenario_from_dict
from monitor.store import Store
from monitor.store.engine import make_engine
from monitor.telemetry.tracing import make_tracer_provider
from tests.conftest import write_config
from tests.support.replies import answer, anthropic_stream, anthropic_whole, events, reply
from tests.support.runner_config import PROBES
from tests.test_providers_wire import call

# 20% of the input read from the cache, 30% written for 5 minutes, 25% for an hour.
WRITES = {"ttft": 5, "output_tps": 5000, "cached_fraction": 0.2, "cache_write_fraction": 0.3,
          "cache_write_1h_fraction": 0.25}
SONNET = Prices(input=3.0, cached_input=0.3, cache_write_input=3.75, cache_write_1h_input=6.0, output=15.0)


def expected_cost(u: Usage, p: Prices) -> float:
    """The bill, written out: each kind of input token at its own price."""
    assert u.input_tokens is not None and u.output_tokens is not None
    read, written, hour = u.cached_input_tokens or 0, u.cache_write_input_tokens or 0, u.cache_write_1h_input_tokens or 0
    return ((u.input_tokens - read - written) * p.input + read * (p.cached_input or p.input)
            + (written - hour) * (p.cache_write_input or p.input) + hour * (p.cache_write_1h_input or p.input)
            + u.output_tokens * p.output) / 1e6


@pytest.mark.parametrize("stream", [True, False])
async def test_an_anthropic_calls_cache_writes_are_read_by_ttl_and_counted_in_its_input(stream: bool) -> None:
    r = await call(WRITES, "anthropic", stream)
    assert r.ok, r.error_message
    u = r.usage
    assert u.input_tokens and u.cached_input_tokens and u.cache_write_input_tokens and u.cache_write_1h_input_tokens
    assert u.cache_write_input_tokens == int(u.input_tokens * 0.3) + int(u.input_tokens * 0.25)
    assert u.cache_write_1h_input_tokens == int(u.input_tokens * 0.25)
    assert u.cached_input_tokens == int(u.input_tokens * 0.2)


@pytest.mark.parametrize("stream", [True, False])
async def test_openai_compatible_calls_report_no_cache_writes(stream: bool) -> None:
    """The simulator's OpenAI face reports no writes, as OpenAI does not: none is read, and the cost is as before."""
    r = await call(WRITES, "openai", stream)
    assert r.ok, r.error_message
    u = r.usage
    assert u.cache_write_input_tokens is None and u.cache_write_1h_input_tokens is None
    assert u.input_tokens and u.cached_input_tokens and u.output_tokens
    p = Prices(input=0.15, cached_input=0.075, output=0.6)
    assert cost_usd(u, p) == pytest.approx(((u.input_tokens - u.cached_input_tokens) * 0.15
                                            + u.cached_input_tokens * 0.075 + u.output_tokens * 0.6) / 1e6)


@pytest.mark.parametrize("stream", [True, False])
async def test_writes_without_a_ttl_breakdown_are_5_minute_writes(stream: bool) -> None:
    """Answers from before the 1-hour TTL carry cache_creation_input_tokens alone."""
    usage = {"input_tokens": 10, "cache_creation_input_tokens": 40, "cache_read_input_tokens": 50, "output_tokens": 5}
    r = await answer("anthropic", stream, anthropic_stream({"output_tokens": 5}, usage) if stream
                     else anthropic_whole(usage))
    assert r.ok, r.error_message
    u = r.usage
    assert (u.input_tokens, u.cached_input_tokens, u.cache_write_input_tokens, u.cache_write_1h_input_tokens) == (
        100, 50, 40, None)
    assert cost_usd(u, SONNET) == pytest.approx((10 * 3.0 + 50 * 0.3 + 40 * 3.75 + 5 * 15.0) / 1e6)


@pytest.mark.parametrize(("breakdown", "counts"), [
    ({"ephemeral_5m_input_tokens": 3, "ephemeral_1h_input_tokens": 4}, (17, 7, 4)),
    ({"ephemeral_1h_input_tokens": 4}, (14, 4, 4)),
    ({"ephemeral_5m_input_tokens": 3}, (13, 3, None)),
    ({}, (10, None, None)),
])
async def test_a_breakdown_without_its_total_gives_the_total(breakdown: dict[str, int],
                                                             counts: tuple[int | None, ...]) -> None:
    usage = {"input_tokens": 10, "cache_creation": breakdown, "output_tokens": 5}
    r = await answer("anthropic", False, anthropic_whole(usage))
    assert r.ok, r.error_message
    assert (r.usage.input_tokens, r.usage.cache_write_input_tokens, r.usage.cache_write_1h_input_tokens) == counts


@pytest.mark.parametrize(("usage", "words"), [
    ({"input_tokens": 7, "output_tokens": 3, "cache_creation_input_tokens": 4,
      "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": "4"}},
     "cache_write_1h_input_tokens '4' is not a token count"),
    ({"input_tokens": 7, "output_tokens": 3, "cache_creation_input_tokens": 4,
      "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": -4}},
     "cache_write_1h_input_tokens -4 is not a token count"),
    ({"input_tokens": 7, "output_tokens": 3, "cache_creation_input_tokens": 4, "cache_creation": [4]},
     "usage.cache_creation [4] is not an object"),
], ids=["text", "negative", "not-an-object"])
@pytest.mark.parametrize("stream", [True, False])
async def test_an_odd_ttl_breakdown_is_named_not_priced(usage: dict[str, Any], words: str, stream: bool) -> None:
    raw = anthropic_stream({"output_tokens": 3}, usage) if stream else anthropic_whole(usage)
    r = await answer("anthropic", stream, raw)
    assert r.error_type == ErrorType.BAD_RESPONSE, (r.error_type, r.usage)
    assert r.error_message and words in r.error_message, r.error_message
    assert r.usage.cache_write_1h_input_tokens is None


def test_unset_write_prices_are_the_input_price_and_a_1h_count_past_the_writes_is_capped() -> None:
    u = Usage(input_tokens=100, cached_input_tokens=10, output_tokens=0, cache_write_input_tokens=30,
              cache_write_1h_input_tokens=10)
    assert cost_usd(u, Prices(input=1.0, output=0.0)) == pytest.approx(100 / 1e6)
    only_5m = Prices(input=1.0, cache_write_input=2.0, output=0.0)
    assert cost_usd(u, only_5m) == pytest.approx((70 + 20 * 2.0 + 10) / 1e6)
    odd = Usage(input_tokens=100, output_tokens=0, cache_write_input_tokens=30, cache_write_1h_input_tokens=50)
    assert cost_usd(odd, SONNET) == pytest.approx((70 * 3.0 + 30 * 6.0) / 1e6)  # never a negative 5-minute count


async def test_a_call_with_cache_writes_is_priced_stored_traced_and_served(tmp_path: Path) -> None:
    """End to end: shipped prices (sim-claude: 3.75 and 6.00 USD per million written) and a target's own."""
    from starlette.testclient import TestClient

    from monitor.http import build_http_app

    scenario = scenario_from_dict({"name": "cw", "seed": 1, "defaults": WRITES,
                                   "models": {"sim-claude": {"phases": [{"name": "p"}]}}})
    own = "{input: 1, cached_input: 0.1, cache_write_input: 1.25, cache_write_1h_input: 2, output: 5}"
    with SimServer(scenario) as sim:
        tgt = (f"  - {{id: shipped, provider: anthropic, base_url: '{sim.url}', model: sim-claude}}\n"
               f"  - {{id: own, provider: anthropic, base_url: '{sim.url}', model: sim-claude, prices: {own}}}")
        cfg = load_config(write_config(tmp_path, tgt, PROBES), environ={})
        exporter = InMemorySpanExporter()
        app = App(cfg, environ={}, serve_http=False, analyse=False,
                  tracer_provider=make_tracer_provider({}, exporter=exporter))
        await app.start(schedule=False)
        try:
            done = [o for canary, target in cfg.pairs() for o in await app.runner.run(canary, target)]
            stored = {o.id: o for o in app.store.observations(limit=100)}
            with TestClient(build_http_app(app)) as api:
                served = {o["id"]: o for o in api.get("/api/observations", params={"limit": 100}).json()}
        finally:
            await app.stop()
    assert len(done) == 6 and all(o.ok for o in done)
    prices = {"shipped": SONNET, "own": Prices(input=1, cached_input=0.1, cache_write_input=1.25,
                                               cache_write_1h_input=2, output=5)}
    spans = {s.attributes["gen_ai.response.id"]: s.attributes for s in exporter.get_finished_spans()}
    for o in done:
        u = o.call.usage
        assert u.cache_write_input_tokens and u.cache_write_1h_input_tokens
        assert o.cost_usd == pytest.approx(expected_cost(u, prices[o.target]))
        as_input = cost_usd(Usage(u.input_tokens, u.cached_input_tokens, u.output_tokens), prices[o.target])
        assert as_input is not None and o.cost_usd > as_input  # what it was priced at before
        assert stored[o.id].call.usage == u and stored[o.id].cost_usd == pytest.approx(o.cost_usd)
        assert served[o.id]["cache_write_input_tokens"] == u.cache_write_input_tokens
        assert served[o.id]["cache_write_1h_input_tokens"] == u.cache_write_1h_input_tokens
        assert served[o.id]["cached_input_tokens"] == u.cached_input_tokens
        attrs = spans[o.call.response_id]
        assert attrs["gen_ai.usage.cache_creation.input_tokens"] == u.cache_write_input_tokens
        assert attrs["gen_ai.usage.cache_read.input_tokens"] == u.cached_input_tokens
        assert attrs["gen_ai.usage.input_tokens"] == u.input_tokens  # reads and writes included


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_rows_stored_before_the_cache_write_columns_read_as_unknown(kind: str, tmp_path: Path,
                                                                   request: pytest.FixtureRequest) -> None:
    from tests.support.schema import upgrade_to

    url = f"sqlite:///{tmp_path / 'old.db'}" if kind == "sqlite" else request.getfixturevalue("pg_url")
    engine = make_engine(url)
    upgrade_to(engine, "0006", then=(
        "INSERT INTO observations (id, run_id, canary, target, provider, request_model, sample_index, started_at, "
        "text, input_tokens, cached_input_tokens, output_tokens, tokens_estimated, cost_usd, stream, tool_calls, "
        "ratelimit, checks) VALUES ('old1', 'r', 'c', 't', 'anthropic', 'm', 0, '2026-11-01 12:00:00+00:00', 'hi', "
        "100, 20, 5, false, 0.0004, true, '[]', '{}', '[]')"))
    engine.dispose()
    store = Store(url)
    try:
        store.migrate()
        (old,) = store.observations(canary="c")
        u = old.call.usage
        assert (u.input_tokens, u.cached_input_tokens, u.output_tokens) == (100, 20, 5)
        assert u.cache_write_input_tokens is None and u.cache_write_1h_input_tokens is None
        assert old.cost_usd == 0.0004  # as it was priced then: not recomputed
        assert old.as_json()["cache_write_input_tokens"] is None
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT cache_write_input_tokens FROM observations")).scalar() is None
    finally:
        store.close()


def test_a_phase_whose_cache_shares_add_up_to_more_than_the_input_is_refused() -> None:
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError, match="add up to more than the whole input"):
        scenario_from_dict({"name": "cw", "models": {"m": {"phases": [
            {"name": "p", "cached_fraction": 0.5, "cache_write_fraction": 0.3, "cache_write_1h_fraction": 0.3}]}}})


async def test_an_odd_breakdown_does_not_hide_the_streams_own_error() -> None:
    # Found by review: the usage was read in a `finally`, so its ValueError replaced the error event already on its
    # way: an overloaded_error came back as a bad_response about cache_creation
    start = {"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {
        "input_tokens": 7, "output_tokens": 1, "cache_creation": 7}}}
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    r = await answer("anthropic", True, reply(events("anthropic", start, overloaded), ctype="text/event-stream"))
    assert r.error_type == ErrorType.SERVER_ERROR and "overloaded_error" in (r.error_message or ""), (
        r.error_type, r.error_message)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_an_upgrade_cut_short_between_its_steps_is_done_whole_at_the_next_start(kind: str, tmp_path: Path,
                                                                               request: pytest.FixtureRequest) -> None:
    """A start killed inside a migration of several steps (here 0007's two new columns, at the first start of a
    new version) leaves the schema as it was, so the next start runs it whole. SQLite ran a migration's DDL outside
    any transaction: the first column stayed with the schema still at 0006, and every later start failed on adding
    it again (`duplicate column name`)."""
    from alembic import op
    from sqlalchemy import inspect

    from monitor.errors import StoreError
    from monitor.store.schema import HEAD
    from tests.support.schema import upgrade_to

    url = f"sqlite:///{tmp_path / 'old.db'}" if kind == "sqlite" else request.getfixturevalue("pg_url")
    engine = make_engine(url)
    upgrade_to(engine, "0006")
    engine.dispose()
    store = Store(url)
    try:
        add = op.add_column

        def killed(table: str, column: Any, *args: object, **kwargs: object) -> None:
            if column.name == "cache_write_1h_input_tokens":
                raise RuntimeError("killed")  # stands for the process's end: nothing after it runs
            add(table, column, *args, **kwargs)  # type: ignore[arg-type]

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(op, "add_column", killed)
            with pytest.raises((RuntimeError, StoreError)):
                store.migrate()
        columns = {c["name"] for c in inspect(store.engine).get_columns("observations")}
        assert "cache_write_input_tokens" not in columns  # nothing of the step was kept
        assert store.migrate() == HEAD
        columns = {c["name"] for c in inspect(store.engine).get_columns("observations")}
        assert {"cache_write_input_tokens", "cache_write_1h_input_tokens"} <= columns
    finally:
        store.close()
