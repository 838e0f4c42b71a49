"""`llm-monitor store copy`: move a store between SQLite and PostgreSQL (or into another database of one kind).

Everything is copied, ids included: observations, runs, baselines, drift events (open ones too) and the alert
outbox. The source is only read, and must be at this version's schema; the destination is created or upgraded
to it and must hold no row. Nothing may write to the source meanwhile: its leader lock (PostgreSQL's advisory
lock, SQLite's `<database>.leader` flock) is taken for the copy, so a running daemon makes the copy refuse and
a daemon starting during it waits as a standby; the row counts of both are compared at the end.
Exit codes: 0 copied, 1 the copy failed or the counts differ, 2 bad arguments, config or stores.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Table as SqlTable
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from monitor.commands.common import EXIT_CONFIG, EXIT_FAIL, EXIT_OK, err_console, load_or_exit, table_console
from monitor.config.store_url import port_problem
from monitor.config.validate import redact_url
from monitor.errors import MonitorError, StoreError
from monitor.store import Store
from monitor.store.copy import (
    BATCH,
    Copied,
    copy_tables,
    count_rows,
    first_filled,
    store_tables,
    unmodelled_tables,
)
from monitor.store.leader import Leadership
from monitor.store.repository import driver_message


class Refused(Exception):
    """The copy cannot start as asked (exit 2); nothing was written."""


def copy(config_path: str, source_url: str | None, destination_url: str, batch: int = BATCH) -> int:
    """Copy the store at `source_url` (default: the config's storage.url) into `destination_url`."""
    if source_url is None:
        source_url = load_or_exit(config_path).storage.url
    try:
        check_urls(source_url, destination_url)
    except ValueError as e:
        _error(str(e))
        return EXIT_CONFIG
    source, destination = Store(source_url), Store(destination_url)
    try:
        try:  # first: a missing SQLite file is an error here, not a new empty file left behind
            source.migrate(create=False)  # the schema must be this version's: checked, never changed
        except StoreError as e:
            raise Refused(f"the source store {source.shown}: {e}") from None
        with _leading(source, "source"), _leading(destination, "destination"):
            return _copy(source, destination, batch)
    except Refused as e:
        _error(str(e))
        return EXIT_CONFIG
    except MonitorError as e:
        _error(str(e))
        return EXIT_FAIL
    except SQLAlchemyError as e:  # a store failing outside the copy itself (counting rows, a file not a database)
        _error(f"the store failed: {driver_message(e)}")
        return EXIT_FAIL
    finally:
        source.close()
        destination.close()


def check_urls(source: str, destination: str) -> None:
    """Raise ValueError unless both are file or PostgreSQL stores, and two different ones."""
    keys = []
    for flag, text in (("--from", source), ("--to", destination)):
        problem = port_problem(text)
        if problem:  # SQLAlchemy's int() raised a ValueError of its own, or libpq failed each connection
            raise ValueError(f"{flag}: {problem} ({text!r})")
        try:
            url = make_url(text)
        except ArgumentError:
            raise ValueError(f"{flag}: not a database URL: {text!r} (e.g. sqlite:///llm-monitor.db or "
                             "postgresql+psycopg://user@host/db)") from None
        backend = url.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"{flag}: {backend} is not a store llm-monitor supports (sqlite or postgresql)")
        if backend == "sqlite" and url.database in (None, "", ":memory:"):
            raise ValueError(f"{flag}: an in-memory SQLite database lives only in the process that opens it: "
                             "give a file (sqlite:///path/to/llm-monitor.db)")
        keys.append((backend, os.path.realpath(url.database or "")) if backend == "sqlite"
                    else (backend, url.host or "", url.port or 5432, url.database or ""))
    if keys[0] == keys[1]:
        raise ValueError("--from and --to name the same store")


@contextmanager
def _leading(store: Store, role: str) -> Iterator[None]:
    """Hold the store's leader lock for the copy, or refuse: a daemon leading it would write meanwhile."""
    try:
        with store.engine.connect():
            pass
    except SQLAlchemyError as e:  # else Leadership would take it for a lock held elsewhere
        raise Refused(f"cannot open the {role} store {store.shown}: {driver_message(e)}") from None
    lock = Leadership(store.engine, role="store copy")  # its lock is never taken over
    try:
        if not lock.try_acquire():
            raise Refused(f"a daemon is running on the {role} store {store.shown} (it holds the store's leader "
                          "lock): stop every llm-monitor daemon using it before copying (rows written during the "
                          "copy would be lost)")
        yield
    finally:
        lock.release()


def _copy(source: Store, destination: Store, batch: int) -> int:
    tables = store_tables()
    filled = first_filled(destination, tables)
    if filled is not None:
        raise Refused(f"the destination store {destination.shown} is not empty (table {filled} holds rows): "
                      "copy into a new database or file; nothing was written")
    try:
        destination.migrate()
    except StoreError as e:
        raise Refused(f"the destination store: {e}") from None
    for name in unmodelled_tables(source, tables):
        err_console.print(f"[yellow]note:[/] table {name} in {escape(_url(source))} is not llm-monitor's: "
                          "not copied")
    err_console.print(f"copying {escape(_url(source))} into {escape(_url(destination))}; keep every daemon "
                      "and probe on the source stopped until it is done")
    before = count_rows(source, tables)
    copied = _with_progress(source, destination, tables, before, batch)
    mismatches = _compare(source, destination, tables, copied)
    _print(copied, source, destination)
    for line in mismatches:
        _error(line)
    return EXIT_FAIL if mismatches else EXIT_OK


def _with_progress(source: Store, destination: Store, tables: list[SqlTable], before: dict[str, int],
                   batch: int) -> list[Copied]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        tasks = {t.name: bar.add_task(t.name, total=before[t.name]) for t in tables}
        return copy_tables(source, destination, tables, batch=batch,
                           progress=lambda table, rows: bar.update(tasks[table], completed=rows))


def _compare(source: Store, destination: Store, tables: list[SqlTable], copied: list[Copied]) -> list[str]:
    """Lines naming each table whose rows differ between the source now, the copy and the destination."""
    now, there = count_rows(source, tables), count_rows(destination, tables)
    out = []
    for c in copied:
        if not now[c.table] == c.rows == there[c.table]:
            out.append(f"table {c.table}: the source holds {now[c.table]} rows now, {c.rows} were copied and the "
                       f"destination holds {there[c.table]}: something wrote to a store during the copy; stop it, "
                       "then copy again into an empty destination")
    return out


def _print(copied: list[Copied], source: Store, destination: Store) -> None:
    console = table_console()
    console.print(f"copied {escape(_url(source))} into {escape(_url(destination))}")
    table = Table()
    for name in ("table", "rows", "seconds", "rows/s"):
        table.add_column(name, justify="left" if name == "table" else "right")
    for c in copied:
        rate = f"{c.rows / c.seconds:,.0f}" if c.seconds > 0 and c.rows else "-"
        table.add_row(c.table, f"{c.rows:,}", f"{c.seconds:.2f}", rate)
    console.print(table)


def _url(store: Store) -> str:
    """The store's URL without its password (written as <redacted>, as everywhere else)."""
    return redact_url(store.safe_url)


def _error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(redact_url(message))}")
