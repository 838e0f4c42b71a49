"""Helpers the commands share: loading config with exit code 2 on bad input."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from rich.markup import escape

from monitor.config.loader import Config, load_config
from monitor.console import Console
from monitor.durations import parse_duration
from monitor.errors import ConfigError, MonitorError, NoSchema, shown
from monitor.escapes import printable
from monitor.known_names import known_names  # noqa: F401  (the commands import it from here)
from monitor.timeinput import EXAMPLE, NOT_A_TIME, TimeInputError, parse_time

if TYPE_CHECKING:
    from monitor.store import Store

T = TypeVar("T")
EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def table_console() -> Console:
    """A terminal's console, or one 200 columns wide when piped: at 80 a table's columns fold into slivers (an id
    over eight lines, a base URL cut off), which `grep` and a pasted report cannot use."""
    c = Console(highlight=False)
    return c if c.is_terminal else Console(highlight=False, width=200)


def load_or_exit(path: str, web_config_file: str | None = None, *, listener: bool = False) -> Config:
    """Load the config, or print every issue (file:line: field: reason) and exit 2. The web config file (TLS
    and basic auth) is read only with `listener` (run, check-config)."""
    try:
        return load_config(path, web_config_file=web_config_file, listener=listener)
    except ConfigError as e:
        print_problems("invalid configuration", e.issues)
        if not os.path.lexists(path):  # the first run in a folder without one: say how to name it
            named = " ($LLM_MONITOR_CONFIG names it)" if (os.environ.get("LLM_MONITOR_CONFIG") or "").strip() == path \
                else ""  # set to a file that is not there: "set $LLM_MONITOR_CONFIG" alone read as if it were unset
            print(printable(f"no config file at {path}{named}: pass -c FILE or set $LLM_MONITOR_CONFIG (`llm-monitor "
                            "demo` needs none; README: Running it for real)"), file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def print_problems(title: str, problems: Sequence[object]) -> None:
    """Print a counted title and one indented line per problem to stderr (problems as plain text, unwrapped, with
    their control characters escaped as the console writes them: a file's name may hold an ESC)."""
    err_console.print(f"[bold red]{title}[/] ({len(problems)} problem{'s' if len(problems) != 1 else ''}):")
    for problem in problems:
        print(printable(f"  {problem}"), file=sys.stderr)


def open_store_or_exit(config: Config, *, create: bool = True) -> Store:
    """Open and migrate the configured store, or print why it cannot be used and exit 2.

    `create=False` (commands that only look at stored data): a SQLite file that does not exist is an error.
    """
    from monitor.store import Store
    from monitor.store.engine import Timeouts

    store = Store(config.storage.url, timeouts=Timeouts(connect_s=config.storage.connect_timeout))
    try:
        store.migrate(create=create)
    except MonitorError as e:
        store.close()
        said = f"{config.path}: storage.url: {e.reason}" if isinstance(e, NoSchema) else str(e)
        err_console.print(f"[bold red]error:[/] {escape(said)}")
        raise SystemExit(EXIT_CONFIG) from None
    return store


def when(text: str | None, flag: str, now: datetime) -> datetime | None:
    """A time (`timeinput.parse_time`), or a duration meaning that long before `now` (7d, 24h, 90m); raise
    ValueError naming the flag and the value."""
    if text is None:
        return None
    try:
        return now - timedelta(seconds=parse_duration(_ago(text)))
    except ValueError:
        pass
    try:
        return parse_time(text)
    except TimeInputError as e:
        what = "not an RFC 3339 time or a duration" if str(e) == NOT_A_TIME else str(e)
        raise ValueError(f"{flag}: {what}: {shown(text)} (e.g. {EXAMPLE}, or 7d for seven days ago)") from None


def _ago(text: str) -> str:
    """`text` without a trailing word "ago": `14d ago` is how the README and the help say `14d` (14 days ago)."""
    words = text.split()
    return " ".join(words[:-1]) if len(words) > 1 and words[-1].lower() == "ago" else text


def check_range(start: datetime | None, end: datetime | None, now: datetime | None = None) -> None:
    """Raise ValueError when --until is not after --since, or --since is after `now` (the range would hold
    nothing: a year mistyped, a local time read as UTC)."""
    if start is not None and now is not None and start > now:
        raise ValueError(f"--since ({start.isoformat()}) is in the future (now {now.isoformat(timespec='seconds')}): "
                         "nothing is stored there yet (times without an offset are UTC)")
    if start is not None and end is not None and end <= start:
        raise ValueError(f"--until ({end.isoformat()}) is not after --since ({start.isoformat()}): the range is empty")


def utc_time(at: datetime | str | None) -> str:
    """A time as the CLI's tables print it: in UTC to the second, with its offset (2026-11-30T09:00:00+00:00), as
    `alerts pending` prints it; a stored ISO 8601 text is read first (one without an offset is UTC)."""
    if isinstance(at, str):
        try:
            return utc_time(datetime.fromisoformat(at)) if at else ""
        except ValueError:
            return at  # shown as stored rather than not at all
    if at is None:
        return ""
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).isoformat(timespec="seconds")


def run_terminable(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(main), a SIGTERM first cancelling `main` as asyncio's runner does on Ctrl-C, then taking its
    usual course (the CLI's handler: `terminated`, exit 143) once `main` has ended.

    The CLI's handler turns SIGTERM into Ctrl-C, which asyncio's runner answers by cancelling the command's task
    (probe then stores its calls in flight as cancelled); but a process started in the background by a shell
    ignores Ctrl-C, the runner then takes no part, and the handler raised wherever the program was, inside asyncio
    or not, so a call in flight was never stored."""
    previous = signal.getsignal(signal.SIGTERM)
    if previous in (signal.SIG_IGN, None) or threading.current_thread() is not threading.main_thread():
        return asyncio.run(main)  # SIGTERM ignored, or handled by no Python code of ours, or not ours to handle
    task: asyncio.Task[T] | None = None
    terminated = False

    async def main_task() -> T:
        nonlocal task
        task = asyncio.current_task()  # type: ignore[assignment]
        return await main

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        nonlocal terminated
        if task is None or task.done() or terminated:  # not started yet, ended, or a second SIGTERM: at once
            signal.signal(signal.SIGTERM, previous)
            signal.raise_signal(signal.SIGTERM)
            return
        terminated = True
        task.cancel()
        loop.call_soon_threadsafe(lambda: None)  # wakes the loop if it waits for I/O (as asyncio's runner does)

    started = main_task()
    try:
        with asyncio.Runner() as runner:
            loop = runner.get_loop()
            signal.signal(signal.SIGTERM, on_sigterm)
            try:
                result = runner.run(started)
            except asyncio.CancelledError:
                if not terminated:
                    raise
            finally:
                signal.signal(signal.SIGTERM, previous)
    finally:
        if task is None:  # a SIGTERM before the command began: it never ran (no "never awaited" warnings)
            started.close()
            main.close()
    if terminated:
        signal.raise_signal(signal.SIGTERM)
        raise asyncio.CancelledError  # the usual course did not end the program (a handler that does not raise)
    return result
