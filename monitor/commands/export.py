"""`llm-monitor export`: stored observations as replay dump lines (JSONL), for `replay` or other tools.

Lines are oldest first and hold what `replay` reads (`drift.dump`): canary, target, text, started_at and the
facts that were recorded (finish reason, served model, fingerprint, checks, refusal, the provider's refusal
text, output tokens, latency, TTFT, error type). Rows are read in batches, so a large store exports in bounded memory. Completions are
stored already scrubbed of API keys; nothing else secret is in an observation.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from rich.markup import escape

from monitor import jsonl
from monitor.commands.common import (
    EXIT_CONFIG,
    EXIT_FAIL,
    EXIT_OK,
    check_range,
    err_console,
    known_names,
    load_or_exit,
    open_store_or_exit,
    when,
)
from monitor.drift.dump import observation_row
from monitor.errors import MonitorError

if TYPE_CHECKING:
    from monitor.config import Config
    from monitor.store import Store


def main(config_path: str, canary: str | None, target: str | None, since: str | None, until: str | None,
         output: str | None) -> int:
    config = load_or_exit(config_path)
    now = datetime.now(UTC)
    try:
        start, end = when(since, "--since", now), when(until, "--until", now)
        check_range(start, end, now)
    except ValueError as e:
        err_console.print(f"[red]error:[/] {escape(str(e))}")
        return EXIT_CONFIG
    for flag, value, known in (("--canary", canary, [c.id for c in config.canaries]),
                               ("--target", target, [t.id for t in config.targets])):
        if value is not None and value not in known:  # stored data of a removed one is still exported, with a note
            err_console.print("[yellow]note:[/] " + escape(f"{flag} {value!r} is not in the configuration "
                                                         f"(known: {known_names(known, value)}); exporting what the store "
                                                         "holds for it"))
    clash = None if output is None else _own_file(config, output)
    if clash:
        err_console.print("[red]error:[/] " + escape(f"-o {output}: that is {clash}, which the export would replace; "
                                                     "write the dump to another file"))
        return EXIT_CONFIG
    unusable = None if output is None else _unusable(Path(output))
    if unusable:  # a bad argument (exit 2), said before the store is read, not a write failing at the end (exit 1)
        err_console.print("[red]error:[/] " + escape(f"-o {output}: {unusable}"))
        return EXIT_CONFIG
    store = open_store_or_exit(config, create=False)
    try:
        if output is None:
            count = _write(store, sys.stdout, canary, target, start, end)
        else:
            count = _write_file(store, Path(output), canary, target, start, end)
    except MonitorError as e:
        err_console.print(f"[red]error:[/] {escape(str(e))}")
        return EXIT_FAIL
    except BrokenPipeError:
        if output is None:
            raise  # a closed stdout pipe (| head) is not an error: the console-script entry ends quietly
        err_console.print("[red]error:[/] " + escape(f"{output}: cannot write: broken pipe"))
        return EXIT_FAIL
    except OSError as e:
        err_console.print("[red]error:[/] " + escape(f"{output or 'standard output'}: cannot write: {e.strerror or e}"))
        return EXIT_FAIL
    finally:
        store.close()
    err_console.print(escape(f"exported {count} observation{'s' if count != 1 else ''}"
                             + (f" to {output}" if output else "")))
    return EXIT_OK


def _unusable(path: Path) -> str | None:
    """Why `path` cannot be the dump's file: a folder, or in a folder that is not there."""
    if path.is_dir():
        return "that is a folder: name a file"
    folder = path.absolute().parent
    return None if folder.is_dir() else f"no folder {folder} to write it in"


def _own_file(config: Config, output: str) -> str | None:
    """What `output` is when it names a file llm-monitor itself reads (the SQLite store and the files beside it, the
    config, a probe file, the web config file): the dump would have replaced it, a whole store lost to a typo."""
    owned = [(config.path, "the configuration file"), *((f, "a probe file") for f in config.probe_files)]
    if config.web_file:
        owned.append((config.web_file, "the web config file"))
    if config.storage.url.startswith("sqlite:"):
        from sqlalchemy.engine import make_url

        database = make_url(config.storage.url).database
        if database and not database.startswith(":"):
            owned += [(database + suffix, "the store's SQLite file" if not suffix else f"the store's {suffix} file")
                      for suffix in ("", "-wal", "-shm", "-journal", ".leader")]
    target = os.path.realpath(output)
    for path, what in owned:
        if os.path.realpath(path) == target or (os.path.exists(path) and os.path.exists(output)
                                                and os.path.samefile(path, output)):
            return f"{what} ({os.path.abspath(path)})" if what.startswith("the store") else what
    return None


def _write(store: Store, out: IO[str], canary: str | None, target: str | None, start: datetime | None,
           end: datetime | None) -> int:
    count = 0
    for obs in store.iter_observations(canary=canary, target=target, since=start, before=end):
        out.write(jsonl.line(observation_row(obs)) + "\n")
        count += 1
    return count


def _write_file(store: Store, path: Path, canary: str | None, target: str | None, start: datetime | None,
                end: datetime | None) -> int:
    """Write to a temporary file beside `path` and rename it over `path`: an export that fails leaves no half file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            count = _write(store, f, canary, target, start, end)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count
