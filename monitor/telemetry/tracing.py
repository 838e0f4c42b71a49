"""OpenTelemetry tracing: one CLIENT span per call with the GenAI attributes; off unless OTEL_* asks for it.

This is the only module that touches the OpenTelemetry SDK; everything else uses the API's Tracer. The SDK (and
psutil, which its resources pull in: ~1.4 MB resident) is imported only when tracing is asked for.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import unquote

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from monitor import __version__
from monitor.domain import CallResult
from monitor.errors import MonitorError
from monitor.providers.base import ChatRequest
from monitor.telemetry import names as n

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter, SpanProcessor


_EXPORTERS = ("otlp", "console", "none")


def _exporters(environ: Mapping[str, str]) -> list[str]:
    """The exporters OTEL_TRACES_EXPORTER names (a comma-separated list); an unknown one is a start error."""
    raw = environ.get("OTEL_TRACES_EXPORTER", "")
    names = [x.strip().lower() for x in raw.split(",") if x.strip()]
    unknown = [x for x in names if x not in _EXPORTERS]
    if unknown:
        raise MonitorError(f"OTEL_TRACES_EXPORTER: unknown exporter {unknown[0]!r} (value: {raw!r}); expected "
                           f"{', '.join(_EXPORTERS)}")
    return names


def tracing_requested(environ: Mapping[str, str]) -> bool:
    """True when the standard OTEL_* variables ask for traces to be exported."""
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    names = _exporters(environ)
    if names:
        return "none" not in names
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")) or bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def _service_name(environ: Mapping[str, str]) -> str:
    """OTEL_SERVICE_NAME, else `service.name` in OTEL_RESOURCE_ATTRIBUTES, else llm-monitor (the spec's order)."""
    if environ.get("OTEL_SERVICE_NAME", "").strip():
        return environ["OTEL_SERVICE_NAME"].strip()
    for item in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, _, value = item.partition("=")
        if key.strip() == "service.name" and value.strip():
            return unquote(value.strip())
    return "llm-monitor"


def _otlp(environ: Mapping[str, str]) -> SpanExporter:
    """The OTLP exporter of the protocol OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL names (default http/protobuf)."""
    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf").strip().lower()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcSpanExporter,  # type: ignore[import-not-found, unused-ignore]
            )
        except ImportError as e:
            raise MonitorError("OTEL_EXPORTER_OTLP_PROTOCOL=grpc: the gRPC exporter is not installed (pip install "
                               "opentelemetry-exporter-otlp-proto-grpc), or use http/protobuf") from e
        return GrpcSpanExporter()  # type: ignore[no-any-return, unused-ignore]
    raise MonitorError(f"OTEL_EXPORTER_OTLP_PROTOCOL: unsupported protocol {protocol!r}; expected http/protobuf or "
                       "grpc")


def make_tracer_provider(environ: Mapping[str, str] | None = None, *,
                         exporter: SpanExporter | None = None) -> TracerProvider | None:
    """Build a TracerProvider exporting as OTEL_* configures (OTLP over HTTP or gRPC, console), or to `exporter`
    (tests). Raises MonitorError for an exporter or protocol it cannot provide."""
    env = os.environ if environ is None else environ
    if exporter is None and not tracing_requested(env):
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    processors: list[SpanProcessor] = []
    if exporter is not None:
        processors.append(SimpleSpanProcessor(exporter))
    else:
        for name in _exporters(env) or ["otlp"]:
            processors.append(BatchSpanProcessor(_otlp(env) if name == "otlp" else ConsoleSpanExporter(out=sys.stdout)))
    provider = TracerProvider(resource=Resource.create({"service.name": _service_name(env),
                                                        "service.version": __version__}))
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def get_tracer(provider: TracerProvider | None) -> Tracer:
    return provider.get_tracer("llm-monitor", __version__) if provider else trace.NoOpTracer()


def start_call_span(tracer: Tracer, provider_name: str, server: str, request: ChatRequest, canary: str,
                    target: str) -> Span:
    """Start the CLIENT span of one chat call, with the request attributes."""
    attrs: dict[str, object] = {
        n.ATTR_OPERATION: "chat", n.ATTR_PROVIDER: provider_name, n.ATTR_REQUEST_MODEL: request.model,
        n.ATTR_STREAM: request.stream, n.ATTR_SERVER_ADDRESS: server, n.ATTR_CANARY: canary, n.ATTR_TARGET: target,
    }
    for attr, value in ((n.ATTR_TEMPERATURE, request.temperature), (n.ATTR_MAX_TOKENS, request.max_tokens),
                        (n.ATTR_SEED, request.seed), (n.ATTR_TOP_P, request.top_p)):
        if value is not None:
            attrs[attr] = value
    return tracer.start_span(f"chat {request.model}", kind=SpanKind.CLIENT, attributes=attrs)  # type: ignore[arg-type]


def end_call_span(span: Span, result: CallResult) -> None:
    """Set the response attributes (never prompt or completion text) and end the span."""
    u = result.usage
    for attr, value in ((n.ATTR_RESPONSE_MODEL, result.response_model), (n.ATTR_RESPONSE_ID, result.response_id),
                        (n.ATTR_INPUT_TOKENS, u.input_tokens), (n.ATTR_OUTPUT_TOKENS, u.output_tokens),
                        (n.ATTR_CACHED_TOKENS, u.cached_input_tokens),
                        (n.ATTR_CACHE_WRITE_TOKENS, u.cache_write_input_tokens),
                        (n.ATTR_REASONING_TOKENS, u.reasoning_tokens), (n.ATTR_TTFC, result.ttft_s),
                        (n.ATTR_FINGERPRINT, result.system_fingerprint)):
        if value is not None:
            span.set_attribute(attr, value)
    if result.raw_finish_reason:
        span.set_attribute(n.ATTR_FINISH_REASONS, [result.raw_finish_reason])
    if result.error_type is not None:
        span.set_attribute(n.ATTR_ERROR_TYPE, result.error_type.value)
        span.set_status(Status(StatusCode.ERROR, result.error_type.value))
    span.end()
