"""The last resort of a shutdown: a daemon whose shutdown outlives its bound exits anyway, saying what it left.

A store that hangs rather than refusing (a stopped server process: its statement timeout ends nothing, and its
kernel still acknowledges what is sent to it and answers the TCP keepalives that end a silent path's connections)
leaves the thread that asked it blocked for good. Python's
`asyncio.run` waits for the event loop's worker threads as it returns, and the interpreter for every executor's
thread as it exits: the daemon never ended, and a second SIGTERM changed nothing (a supervisor's SIGKILL did,
without a word about why). Started as the shutdown begins, :class:`ExitWatch` waits on a thread of its own (the
event loop may be the one blocked); past its bound it logs each thread still in llm-monitor's code, where it
waits, and ends the process with exit status 1.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

log = logging.getLogger("monitor.run")
STOP_SLACK_S = 30.0  # past the grace period and the held writes' last try: the rest of a shutdown (an analysis
# closing, the HTTP server's 5 s, the trace exporter's flush) takes seconds
_PACKAGE = str(Path(__file__).resolve().parent)


def where(frame: FrameType | None) -> str | None:
    """The innermost call of llm-monitor's own code in a thread's stack, as `qualname (file:line)`; None if none."""
    while frame is not None:
        path = frame.f_code.co_filename
        if path.startswith(_PACKAGE):
            return f"{frame.f_code.co_qualname} ({os.path.relpath(path, os.path.dirname(_PACKAGE))}:{frame.f_lineno})"
        frame = frame.f_back
    return None


def stuck() -> list[str]:
    """Each other thread that is in llm-monitor's code (a worker blocked on the store, or the event loop), with
    where; idle workers and the interpreter's own waits are left out."""
    frames = sys._current_frames()
    me = threading.get_ident()
    out = []
    for t in threading.enumerate():
        if t.ident is None or t.ident == me:
            continue
        at = where(frames.get(t.ident))
        if at is not None:
            out.append(f"{t.name}: {at}")
    return out


class ExitWatch:
    """End the process `bound_s` after `start` unless it has exited by then (a daemon thread: exiting ends it)."""

    def __init__(self, bound_s: float, *, code: int = 1, exit: Callable[[int], None] = os._exit):
        self.bound_s = bound_s
        self.code = code
        self._exit = exit
        self._cancelled = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._watch, name="exit-watch", daemon=True).start()

    def cancel(self) -> None:
        self._cancelled.set()

    def _watch(self) -> None:
        if self._cancelled.wait(self.bound_s):
            return
        left = stuck()
        log.error("shutdown still not done %.0f s after it began: exiting anyway, abandoning %d threads still "
                  "waiting (a store that takes connections and never answers holds them): %s", self.bound_s,
                  len(left), "; ".join(left) or "none in llm-monitor's code", extra={"abandoned": left})
        for handler in logging.getLogger().handlers:
            handler.flush()
        self._exit(self.code)
