"""Wire the optional layers (quality annotation, drift, alerts) into an App's hooks."""

from __future__ import annotations

from typing import Any

from monitor.config.loader import Config


def daemon_features(config: Config, *, console: Any = None) -> dict[str, Any]:
    """Return App keyword arguments that plug in the quality and analysis layers for `config`."""
    return {}
