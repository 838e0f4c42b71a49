"""Tracing is off by default and follows the standard OTEL_* variables."""

from __future__ import annotations

import pytest

from monitor.telemetry.tracing import make_tracer_provider, tracing_requested


@pytest.mark.parametrize("env,expected", [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
])
def test_tracing_requested(env: dict[str, str], expected: bool) -> None:
    assert tracing_requested(env) is expected


def test_provider_built_only_when_asked() -> None:
    assert make_tracer_provider({}) is None
    provider = make_tracer_provider({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SERVICE_NAME": "x"})
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "x"
    provider.shutdown()
