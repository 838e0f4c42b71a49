"""Take secrets out of the rows already stored (`llm-monitor store scrub`).

A key an upstream echoed (a LiteLLM-style proxy's 401 "Received API Key = sk-...") is scrubbed before anything is
stored since providers.scrub; a store written before that, or a secret that leaked some other way, still holds it in
the free text and JSON columns listed in `COLUMNS`. Rows that may hold one are found in SQL by a LIKE on each of
the caller's `needles` (what every text holding a secret holds: a key's start, which a message cut short keeps, or
a URL's host, never its scheme), so the rest of the store is neither read nor written. They are read by primary key
order, `batch` at a time, and each batch is rewritten in a transaction of its own: a crash loses nothing and a rerun
finds nothing more to do. A JSON column is parsed and the strings inside it scrubbed (dictionary keys too), then
stored as JSON again, so it stays valid whatever the secret holds. Every UPDATE sets a column only where it still holds what was read (a compare-and-set): a daemon that wrote
the row meanwhile keeps its write, and the row is counted as `busy` for a rerun to take.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Column, ColumnElement, Engine, Table, Text, cast, or_, select, update

from monitor.store.drift_tables import BaselineRow, DriftEventRow
from monitor.store.outbox_table import NotificationRow
from monitor.store.tables import ObservationRow

BATCH = 500
# The columns a secret can reach, table by table: what a call returned (observations), the drift evidence made of it
# (events and baselines) and what alerts carry (the outbox). Ids, names from the config and enums are left alone.
COLUMNS: dict[str, tuple[str, ...]] = {
    "observations": ("text", "error_message", "refusal_text", "response_model", "system_fingerprint", "request_id",
                     "raw_finish_reason", "tool_calls", "ratelimit", "checks", "signals"),
    "drift_events": ("data",),
    "baselines": ("note", "data"),
    "notifications": ("payload", "last_error"),
}
_TABLES: dict[str, Any] = {"observations": ObservationRow, "drift_events": DriftEventRow, "baselines": BaselineRow,
                           "notifications": NotificationRow}


@dataclass
class Scrubbed:
    """One table's scrub: rows rewritten, and rows a writer changed between the read and the rewrite (left as that
    writer left them; a rerun takes them)."""

    table: str
    rows: int = 0
    busy: int = 0


def scrub_tables(engine: Engine, needles: Sequence[str], clean: Callable[[str], str], *, batch: int = BATCH,
                 done: Callable[[Scrubbed], None] | None = None) -> list[Scrubbed]:
    """Rewrite, with `clean`, every text of `COLUMNS` in a row holding one of `needles`; `done` after each table."""
    out = []
    for name, columns in COLUMNS.items():
        table: Table = _TABLES[name].__table__
        result = _scrub_table(engine, table, [table.c[c] for c in columns], needles, clean, batch)
        out.append(result)
        if done is not None:
            done(result)
    return out


def _scrub_table(engine: Engine, table: Table, columns: list[Column[Any]], needles: Sequence[str],
                 clean: Callable[[str], str], batch: int) -> Scrubbed:
    result = Scrubbed(table.name)
    if not needles:
        return result
    key = table.c.id
    read = [cast(c, Text).label(c.name) if _is_json(c) else c for c in columns]
    found = or_(*(_holds(c, n) for c in columns for n in needles))
    last: str | None = None
    while True:
        query = select(key, *read).where(found).order_by(key).limit(batch)
        if last is not None:
            query = query.where(key > last)
        with engine.begin() as conn:
            rows = conn.execute(query).all()
            for row in rows:
                changed = _changed(row._mapping, columns, clean)
                if not changed:
                    continue  # a needle matched without its secret (SQLite's LIKE ignores case), or text already clean
                unchanged = [(cast(c, Text) if _is_json(c) else c) == old for c, (old, _) in changed.items()]
                written = conn.execute(update(table).where(key == row.id, *unchanged)
                                       .values({c.name: new for c, (_, new) in changed.items()}))
                if written.rowcount:
                    result.rows += 1
                else:
                    result.busy += 1
        if len(rows) < batch:
            return result
        last = rows[-1].id


def _changed(row: Any, columns: list[Column[Any]], clean: Callable[[str], str]) -> dict[Column[Any], tuple[str, Any]]:
    """The columns of `row` that `clean` changes: (the text read, the value to write)."""
    out: dict[Column[Any], tuple[str, Any]] = {}
    for c in columns:
        old = row[c.name]
        if old is None:
            continue
        if _is_json(c):
            value, dirty = _clean_json(json.loads(old), clean)
            if dirty:
                out[c] = (old, value)
        else:
            new = clean(old)
            longest = getattr(c.type, "length", None)  # "<redacted>" is longer than a short key: kept in its column
            new = new[:longest] if longest else new
            if new != old:
                out[c] = (old, new)
    return out


def _clean_json(value: Any, clean: Callable[[str], str]) -> tuple[Any, bool]:
    """`value` with every string in it (dictionary keys too) cleaned, and whether any changed."""
    if isinstance(value, str):
        new = clean(value)
        return new, new != value
    if isinstance(value, list):
        items = [_clean_json(v, clean) for v in value]
        return [v for v, _ in items], any(d for _, d in items)
    if isinstance(value, dict):
        pairs = [(_clean_json(k, clean), _clean_json(v, clean)) for k, v in value.items()]
        return {k: v for (k, _), (v, _) in pairs}, any(dk or dv for (_, dk), (_, dv) in pairs)
    return value, False


def _holds(c: Column[Any], needle: str) -> ColumnElement[bool]:
    """Whether the column's stored text holds `needle`; in a JSON column also as JSON writes it (escaped)."""
    if not _is_json(c):
        return c.contains(needle, autoescape=True)
    forms = {needle, json.dumps(needle)[1:-1], json.dumps(needle, ensure_ascii=False)[1:-1]}
    return or_(*(cast(c, Text).contains(f, autoescape=True) for f in sorted(forms)))


def _is_json(c: Column[Any]) -> bool:
    return isinstance(c.type, JSON)
