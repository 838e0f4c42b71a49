"""Hold a daemon's drift analyses back, as an analysis thread that has fallen behind does."""

from __future__ import annotations

import threading
from typing import Any

from monitor.app import App


def hold_analyses(app: App) -> threading.Event:
    """Make every analysis wait until the returned event is set (an analysis thread that has fallen behind)."""
    assert app.analysis is not None
    go = threading.Event()
    analyse = app.analysis._analyse

    def held(obs: Any) -> Any:
        go.wait(30)
        return analyse(obs)

    app.analysis._analyse = held  # type: ignore[method-assign]
    return go
