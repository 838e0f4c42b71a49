"""OpenTelemetry tracing: one CLIENT span per call with the GenAI attributes; off unless OTEL_* asks for it.

This is the only module that touches the OpenTelemetry SDK; everything else uses the API's Tracer. The SDK (and
psutil, which its resources pull in: ~1.4 MB resident) is imported only when tracing is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from monitor import __version__
from monitor.domain import CallResult
from monitor.providers.base import ChatRequest
from monitor.telemetry import names as n

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter, SpanProcessor


def tracing_requested(environ: Mapping[str, str]) -> bool:
    """True when the standard OTEL_* variables ask for traces to be exported."""
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(exporter) or bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")) or bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def make_tracer_provider(environ: Mapping[str, str] | None = None, *,
                         exporter: SpanExporter | None = None) -> TracerProvider | None:
    """Build a TracerProvider exporting over OTLP/HTTP as OTEL_* configures, or to `exporter` (tests)."""
    env = os.environ if environ is None else environ
    if exporter is None and not tracing_requested(env):
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", "llm-monitor"),
                                "service.version": __version__})
    provider = TracerProvider(resource=resource)
    processor: SpanProcessor
    if exporter is not None:
        processor = SimpleSpanProcessor(exporter)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter())
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
