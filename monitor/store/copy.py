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
        if not isinstance(e, SQLAlchemyError | StoreError):
            raise
        why = str(e) if isinstance(e, StoreError) else (
            f"copying into {destination.safe_url} failed: {driver_message(e)}")
        raise StoreError(f"{why}; {cleaned}") from e
    return done


def _copy_table(src: Connection, dst: Connection, t: Table, source: Store, destination: Store, batch: int,
                progress: Progress | None) -> int:
    write = _insert(t, dst.dialect.name)
    dates = [c.name for c in t.c if isinstance(c.type, DateTime)]
    copied = 0
    for rows in _read(src, t, source, batch):
        values = [{f"v_{k}": v for k, v in row.items()} for row in rows]
        for v in values:
            for name in dates:
                v[f"v_{name}"] = _utc(v[f"v_{name}"])
        try:
            with dst.begin():
                dst.execute(write, values)
        except SQLAlchemyError as e:
            raise StoreError(f"writing table {t.name} into {destination.safe_url} failed: {driver_message(e)}") from e
        copied += len(values)
        if progress is not None:
            progress(t.name, copied)
    return copied


def _read(src: Connection, t: Table, source: Store, batch: int) -> Iterator[list[dict[str, Any]]]:
    """The table's rows, `batch` at a time, from a server-side cursor (JSON columns as their stored text)."""
    columns = [cast(c, Text).label(c.name) if isinstance(c.type, JSON) else c for c in t.c]
    try:
        result = src.execution_options(stream_results=True, yield_per=batch).execute(select(*columns))
        for part in result.mappings().partitions():
            yield [dict(row) for row in part]
    except SQLAlchemyError as e:
        raise StoreError(f"reading table {t.name} from {source.safe_url} failed: {driver_message(e)}") from e


def _insert(t: Table, dialect: str) -> Any:
    """INSERT of every column from parameters `v_<column>`; JSON from its text, as the source stored it."""

    def value(c: Any) -> Any:
        if not isinstance(c.type, JSON):
            return bindparam(f"v_{c.name}", type_=c.type)
        raw = bindparam(f"v_{c.name}", type_=Text)
        # SQLite stores the text as it is; a CAST to JSON there would apply NUMERIC affinity
        return cast(raw, JSON) if dialect == "postgresql" else raw

    return insert(t).values({c.name: value(c) for c in t.c})


def _utc(ts: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes (stored as UTC); PostgreSQL's in the session's zone: both as UTC."""
    if ts is None:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


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
        return (f"emptying {destination.safe_url} again failed too ({why}): it holds part of the copy; empty it "
                "(drop and create the database, or delete the file) before trying again")
    return f"nothing was kept in {destination.safe_url} (its tables were emptied again)"
