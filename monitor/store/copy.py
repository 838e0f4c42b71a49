"""Copy a whole store into another database (SQLite to PostgreSQL or back), every row as it is stored.

The tables are the table models' (SQLModel's metadata, in foreign-key order), so a table added with its model is
copied without a change here; `unmodelled_tables` names any the database holds beyond them. Rows stream from the
source (a server-side cursor on PostgreSQL) and are written `batch` at a time, each batch in a transaction of its
own: memory stays flat for millions of observations, and a SQLite destination's WAL stays small. Primary keys
and every value are kept: JSON columns travel as the text stored (so SQL NULL and JSON null stay apart and
nothing is re-serialised), and datetimes as UTC (SQLite keeps them without a zone; written as they are into
PostgreSQL they would be taken in the session's time zone). A copy that fails empties the destination again,
so the next try starts from an empty store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Integer,
    Table,
    Text,
    bindparam,
    cast,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import SQLModel

from monitor.errors import StoreError
from monitor.store import drift_tables as _drift_tables
from monitor.store import outbox_table as _outbox_table
from monitor.store import tables as _tables
from monitor.store.convert import aware
from monitor.store.repository import Store, driver_message
from monitor.store.schema import VERSION_TABLE

MODELS = (_tables, _drift_tables, _outbox_table)  # the table models' modules: importing each puts its tables in
# SQLModel's metadata (the outbox's is otherwise imported only by the alerts package)
BATCH = 1000
Progress = Callable[[str, int], None]  # (table, rows copied so far), after every batch


@dataclass
class Copied:
    """One table's copy: how many rows, in how long."""

    table: str
    rows: int
    seconds: float


def store_tables() -> list[Table]:
    """Every table of the store, parents before the tables whose foreign keys point at them."""
    return list(SQLModel.metadata.sorted_tables)


def unmodelled_tables(store: Store, tables: Sequence[Table]) -> list[str]:
    """The tables the database holds that are neither in `tables` nor Alembic's version table."""
    known = {t.name for t in tables} | {VERSION_TABLE}
    return sorted(set(inspect(store.engine).get_table_names()) - known)


def first_filled(store: Store, tables: Sequence[Table]) -> str | None:
    """The first of `tables` that exists in the store and holds a row, or None."""
    with store.engine.connect() as conn:
        existing = set(inspect(conn).get_table_names())
        for t in tables:
            if t.name in existing and conn.execute(select(text("1")).select_from(t).limit(1)).first() is not None:
                return t.name
    return None


def count_rows(store: Store, tables: Sequence[Table]) -> dict[str, int]:
    """Rows per table."""
    with store.engine.connect() as conn:
        return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in tables}


def copy_tables(source: Store, destination: Store, tables: Sequence[Table], *, batch: int = BATCH,
                progress: Progress | None = None) -> list[Copied]:
    """Copy every row of `tables` from `source` into `destination` (which has them, empty); reset PostgreSQL's
    sequences after. On failure the destination is emptied again and a StoreError names the table and URL."""
    done: list[Copied] = []
    try:
        with source.engine.connect() as src:
            if source.dialect == "postgresql":  # one snapshot for every table, read-only
                src = src.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with destination.engine.connect() as dst:
                for t in tables:
                    start = time.monotonic()
                    rows = _copy_table(src, dst, t, source, destination, batch, progress)
                    done.append(Copied(t.name, rows, time.monotonic() - start))
                reset_sequences(dst, tables)
    except BaseException as e:
        cleaned = _empty_again(destination, tables)
        if isinstance(e, StoreError):
            why = str(e)
        elif isinstance(e, SQLAlchemyError):
            why = f"copying into {destination.shown} failed: {driver_message(e)}"
        elif isinstance(e, KeyboardInterrupt):  # Ctrl-C: say what became of the destination, not a traceback
            why = f"interrupted after {sum(c.rows for c in done)} rows of {len(done)} tables"
        else:
            raise
        raise StoreError(f"{why}; {cleaned}") from e
    return done


def _copy_table(src: Connection, dst: Connection, t: Table, source: Store, destination: Store, batch: int,
                progress: Progress | None) -> int:
    write = _copy_in if dst.dialect.name == "postgresql" else _inserter(t)
    dates = [i for i, c in enumerate(t.c) if isinstance(c.type, DateTime)]
    copied = 0
    for rows in _read(src, t, source, batch):
        for row in rows:
            for i in dates:
                row[i] = _utc(row[i])
        try:
            with dst.begin():
                write(dst, t, rows)
        except SQLAlchemyError as e:
            raise StoreError(f"writing table {t.name} into {destination.shown} failed: {driver_message(e)}") from e
        except psycopg.Error as e:  # COPY talks to the driver: its errors are not wrapped
            raise StoreError(f"writing table {t.name} into {destination.shown} failed: "
                             f"{type(e).__name__}: {' '.join(str(e).split())}") from e
        copied += len(rows)
        if progress is not None:
            progress(t.name, copied)
    return copied


def _read(src: Connection, t: Table, source: Store, batch: int) -> Iterator[list[list[Any]]]:
    """The table's rows in column order, `batch` at a time, from a server-side cursor (JSON as its stored text)."""
    columns = [cast(c, Text).label(c.name) if isinstance(c.type, JSON) else c for c in t.c]
    try:
        result = src.execution_options(stream_results=True, yield_per=batch).execute(select(*columns))
        for part in result.partitions():
            yield [list(row) for row in part]
    except SQLAlchemyError as e:
        raise StoreError(f"reading table {t.name} from {source.shown} failed: {driver_message(e)}") from e


def _copy_in(dst: Connection, t: Table, rows: list[list[Any]]) -> None:
    """PostgreSQL's COPY FROM STDIN: about three times the rows per second of INSERTs (psycopg adapts the values;
    JSON goes in as its text)."""
    prep = dst.dialect.identifier_preparer
    columns = ", ".join(prep.quote(c.name) for c in t.c)
    raw: Any = dst.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY {prep.format_table(t)} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _inserter(t: Table) -> Callable[[Connection, Table, list[list[Any]]], None]:
    """An INSERT of every column from parameters `v_<column>` (SQLite: JSON as the text stored, with no CAST,
    which would apply NUMERIC affinity)."""
    names = [f"v_{c.name}" for c in t.c]
    stmt = insert(t).values({c.name: bindparam(name, type_=Text if isinstance(c.type, JSON) else c.type)
                             for c, name in zip(t.c, names, strict=True)})

    def write(dst: Connection, _t: Table, rows: list[list[Any]]) -> None:
        dst.execute(stmt, [dict(zip(names, row, strict=True)) for row in rows])

    return write


def _utc(ts: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes (stored as UTC); PostgreSQL's in the session's zone: both as UTC."""
    stored = aware(ts)
    return None if stored is None else stored.astimezone(UTC)


def reset_sequences(conn: Connection, tables: Sequence[Table]) -> list[str]:
    """On PostgreSQL, move every sequence behind an integer column of `tables` past the largest value copied
    (explicit ids do not advance it: the next insert would collide); return the sequences set."""
    if conn.dialect.name != "postgresql":
        return []  # SQLite's next rowid (and AUTOINCREMENT's sqlite_sequence) follows explicit ids by itself
    done = []
    with conn.begin():
        for t in tables:
            name = conn.dialect.identifier_preparer.format_table(t)
            for c in t.c:
                if not isinstance(c.type, Integer):
                    continue
                seq = conn.execute(select(func.pg_get_serial_sequence(name, c.name))).scalar_one()
                if seq is None:
                    continue
                top = select(func.max(c)).scalar_subquery()
                conn.execute(select(func.setval(seq, func.coalesce(top, 0) + 1, False)))
                done.append(seq)
    return done


def _empty_again(destination: Store, tables: Sequence[Table]) -> str:
    """Delete what a failed copy wrote; say what became of the destination."""
    try:
        with destination.engine.begin() as conn:
            for t in reversed(tables):
                conn.execute(delete(t))
    except Exception as e:
        why = driver_message(e) if isinstance(e, SQLAlchemyError) else f"{type(e).__name__}: {e}"
        return (f"emptying {destination.shown} again failed too ({why}): it holds part of the copy; empty it "
                "(drop and create the database, or delete the file) before trying again")
    return f"nothing was kept in {destination.shown} (its tables were emptied again)"
