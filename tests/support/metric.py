"""Read one series of a registry in tests."""

from __future__ import annotations

from prometheus_client import CollectorRegistry


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """The value of one series (0 when it does not exist)."""
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value

