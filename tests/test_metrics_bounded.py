"""The served model names in the GenAI histograms' `gen_ai_response_model` come from the server: a server naming a
new model at every call must not add series without end."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry

from monitor.config.models import Schedule
from monitor.telemetry.bounded import MAX_RESPONSE_MODELS, OTHER
from monitor.telemetry.metrics import Metrics
from tests.test_store_contract import obs

DURATION = "gen_ai_client_operation_duration_seconds"


def served_models(registry: CollectorRegistry, target: str) -> set[str]:
    return {s.labels["gen_ai_response_model"] for m in registry.collect() if m.name == DURATION
            for s in m.samples if s.labels.get("target") == target}


def call(i: int, model: str, target: str = "t"):  # type: ignore[no-untyped-def]
    o = obs(i, canary="c", target=target)
    return replace(o, call=replace(o.call, response_model=model))


def metrics(*targets: str) -> tuple[Metrics, CollectorRegistry]:
    registry = CollectorRegistry()
    m = Metrics(registry)
    m.declare([("c", t, Schedule(every="1m")) for t in targets], dict.fromkeys(targets))
    return m, registry


def test_a_server_naming_a_new_model_at_every_call_adds_a_bounded_number_of_series(
        caplog: pytest.LogCaptureFixture) -> None:
    m, registry = metrics("t", "u")
    with caplog.at_level(logging.WARNING, logger="monitor.telemetry"):
        for i in range(200):
            m.observe(call(i, f"proxy-model-req{i}"), "openai", "127.0.0.1")
        m.observe(call(0, "proxy-model-req0"), "openai", "127.0.0.1")  # one of the first keeps its name
    names = served_models(registry, "t")
    assert len(names) == MAX_RESPONSE_MODELS + 1 and OTHER in names and "proxy-model-req0" in names
    assert [r.getMessage() for r in caplog.records] == [
        f"target t: more than {MAX_RESPONSE_MODELS} distinct gen_ai_response_model values; calls naming a new one "
        f"are exported as {OTHER} (their observations keep the name; a restart, or a reload that removes the target, "
        "starts the count again)"]
    m.observe(call(0, "real-model", target="u"), "openai", "127.0.0.1")  # each target has its own count
    assert served_models(registry, "u") == {"real-model"}


def test_a_target_a_reload_removed_and_added_back_counts_its_models_again() -> None:
    m, registry = metrics("t")
    for i in range(MAX_RESPONSE_MODELS):
        m.observe(call(i, f"m{i}"), "openai", "127.0.0.1")
    m.declare([], {})  # removed: its series go
    m.declare([("c", "t", Schedule(every="1m"))], {"t": None})
    m.observe(call(0, "new-model"), "openai", "127.0.0.1")
    assert served_models(registry, "t") == {"new-model"}


def test_a_failed_call_without_a_model_takes_no_place() -> None:
    m, registry = metrics("t")
    m.observe(call(0, ""), "openai", "127.0.0.1")
    for i in range(MAX_RESPONSE_MODELS):
        m.observe(call(i, f"m{i}"), "openai", "127.0.0.1")
    assert served_models(registry, "t") == {"", *(f"m{i}" for i in range(MAX_RESPONSE_MODELS))}
