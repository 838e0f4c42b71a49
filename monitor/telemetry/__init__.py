"""Telemetry: Prometheus metrics (injected registry) and OpenTelemetry tracing (the only SDK user)."""
