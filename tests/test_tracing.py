"""Tracing is off by default and follows the standard OTEL_* variables."""

from __future__ import annotations

import re

import pytest

from monitor.telemetry.tracing import make_tracer_provider, tracing_requested


@pytest.mark.parametrize("env,expected", [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
    ({"OTEL_TRACES_EXPORTER": "console"}, True),
    ({"OTEL_TRACES_EXPORTER": "console,otlp"}, True),
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


def test_the_console_exporter_and_the_service_name_of_the_resource_attributes(capfd: pytest.CaptureFixture[str]) -> None:
    provider = make_tracer_provider({"OTEL_TRACES_EXPORTER": "console",
                                     "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,service.name=my%20mon"})
    assert provider is not None and provider.resource.attributes["service.name"] == "my mon"
    with provider.get_tracer("t").start_as_current_span("chat sim-gpt"):
        pass
    provider.force_flush()
    provider.shutdown()
    assert '"name": "chat sim-gpt"' in capfd.readouterr().out  # printed, not sent over OTLP


@pytest.mark.parametrize("env,message", [
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER: unknown exporter 'zipkin' (value: 'zipkin')"),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
     "OTEL_EXPORTER_OTLP_PROTOCOL=grpc: the gRPC exporter is not installed"),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
     "unsupported protocol 'http/json'"),
])
def test_an_exporter_this_build_cannot_provide_is_a_clear_start_error(env: dict[str, str], message: str) -> None:
    import importlib.util

    from monitor.errors import MonitorError

    if "grpc" in message and importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is not None:
        pytest.skip("the gRPC exporter is installed here")

    with pytest.raises(MonitorError, match=re.escape(message)):
        make_tracer_provider(env)
