"""CLI commands for alerts: send a test message through a sink, list the outbox (table or JSON lines), send again
what was given up on."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TextIO

import httpx
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from monitor import jsonl
from monitor.alerts.config import AlertsConfig
from monitor.alerts.delivery import DISABLED_NOTE
from monitor.alerts.events import DEAD, DELIVERED, HELD, WAITING, AlertEvent, Notification
from monitor.alerts.outbox import Outbox
from monitor.alerts.policy import plan
from monitor.alerts.sender import Sender
from monitor.alerts.sinks import build_sink
from monitor.alerts.sinks.base import shown_url
from monitor.commands.common import err_console, table_console
from monitor.console import Console, cell, write_line
from monitor.domain import utcnow
from monitor.errors import MonitorError
from monitor.escapes import printable
from monitor.keylike import shown_path

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2


def alerts_config(config: Any) -> AlertsConfig:
    """Return the AlertsConfig of a loaded Config (validating a raw `alerts:` mapping if need be)."""
    raw = getattr(config, "alerts", config)
    return raw if isinstance(raw, AlertsConfig) else AlertsConfig.model_validate(dict(raw or {}))


def _sinks_of(config: Any, sink: str | None, err: Console) -> tuple[AlertsConfig, list[str]] | None:
    """The alerts configuration and its sink names, or None with why said on `err`: the configuration is invalid,
    or `sink` (when given) is not one of its sinks."""
    try:
        cfg = alerts_config(config)
    except ValidationError as e:
        err.print(f"[bold red]error:[/] invalid alerts configuration: {escape(str(e))}")
        return None
    names = [s.name for s in cfg.sinks]
    if sink is not None and sink not in names:
        err.print(f"[bold red]error:[/] no sink named {escape(repr(sink))} (configured: {', '.join(names) or 'none'})")
        return None
    return cfg, names


def alerts_test(config: Any, sink_name: str, *, environ: Mapping[str, str] | None = None,
                transport: httpx.AsyncBaseTransport | None = None, now: Callable[[], datetime] = utcnow,
                console: Console | None = None) -> int:
    """Send a test notification through one sink now and print the outcome; return the exit code. A delivery
    goes to standard output, every failure to standard error (`console` takes both when given)."""
    out = console or Console(highlight=False, soft_wrap=True)  # piped: one line each, not cut at 80 columns
    err = console or Console(stderr=True, highlight=False, soft_wrap=True)
    known = _sinks_of(config, sink_name, err)
    if known is None:
        return EXIT_CONFIG
    cfg = known[0]
    try:  # only the sink under test: another sink's unset secret is check-config's to report, not this test's
        spec = next(s for s in cfg.sinks if s.name == sink_name)
        sinks = {sink_name: build_sink(spec, cfg, os.environ if environ is None else environ)}
    except MonitorError as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}")
        return EXIT_CONFIG
    event = AlertEvent(kind="test", canary="llm-monitor", target="test", signal="test", severity="info",
                       summary="llm-monitor test notification: if you can read this, the sink works",
                       evidence={"note": "sent by `llm-monitor alerts test`"})
    notification = plan(event, cfg, now(), {}, sinks=[sink_name]).notifications[0]

    async def _send() -> Any:
        sender = Sender(Outbox(None), sinks, cfg, transport=transport, now=now)  # type: ignore[arg-type]
        try:
            return await sender.send_now(sink_name, notification)
        finally:
            await sender.stop()

    result = asyncio.run(_send())
    sink = f"{sink_name} ({escape(_where(spec, sinks[sink_name].url))})"
    if result.ok:
        out.print(f"[green]delivered[/] test message {notification.message_id} to {sink}: "
                  f"HTTP {result.status} in {result.elapsed_s:.2f}s")
        return EXIT_OK
    gone = " (410 Gone: the daemon disables a sink that answers so, until the config is reloaded)" \
        if result.status == 410 else ""
    err.print(f"[red]failed[/] to deliver to {sink}: {escape(str(result.error))}{gone}")
    return EXIT_FAIL


def _where(spec: Any, url: str) -> str:
    """`slack, https://hooks.slack.com/<redacted>, url_env SLACK_URL`: a sink's type and URL without its secrets, and
    the variable or file a secret URL was read from."""
    source = f"url_env {spec.url_env}" if getattr(spec, "url_env", None) else \
        f"url_file {shown_path(spec.url_file)}" if getattr(spec, "url_file", None) else ""
    return ", ".join(x for x in (spec.type, shown_url(url, secret=bool(source) or spec.type == "slack"), source) if x)


def _record(n: Notification, behind: str | None = None) -> dict[str, Any]:
    def iso(ts: datetime | None) -> str | None:
        return ts.isoformat() if ts else None

    return {"message_id": n.message_id, "sink": n.sink, "kind": n.kind, "group": n.group_key, "signal": n.signal,
            "status": n.status, "attempts": n.attempts, "next_attempt_at": iso(n.next_attempt_at),
            "created_at": iso(n.created_at), "delivered_at": iso(n.delivered_at), "last_error": n.last_error,
            "waits_behind": behind, "asked_at": iso(n.asked_at), "sent_as": n.sent_as}


@contextmanager
def _stored(config: Any, store: Any | None) -> Iterator[Any]:
    """The given store, or the configured one opened and closed after: migrated to this version's schema only if it
    exists (the outbox commands never start a store: a mistyped path is an error, not a new file)."""
    from monitor.store import Store  # the store's modules only when a command reads it

    st = store or Store(config.storage.url)
    try:
        st.migrate(create=False)
        yield st
    finally:
        if store is None:
            st.close()


def alerts_pending(config: Any, *, limit: int = 100, every: bool = False, dead: bool = False, as_json: bool = False,
                   console: Console | None = None, stdout: TextIO | None = None, store: Any = None) -> int:
    """Print the waiting and held notifications (`every`: delivered and dead ones too; `dead`: only the dead ones,
    which `alerts resend` sends again) as a table or JSON lines; a held one says why in its last error."""
    out = console or table_console()
    try:
        with _stored(config, store) as st:
            outbox = Outbox(st.engine)
            rows = outbox.query(statuses=(DEAD,) if dead else None if every else (*WAITING, HELD), limit=limit)
            behind = outbox.waits_behind(rows)
            counts = outbox.counts()
    except MonitorError as e:
        err_console.print(f"[bold red]error:[/] {escape(str(e))}")
        return EXIT_CONFIG
    waiting = sum(counts.get(s, 0) for s in WAITING)
    total = counts.get(DEAD, 0) if dead else sum(counts.values()) if every else waiting + counts.get(HELD, 0)
    if as_json:
        for n in rows:
            write_line(jsonl.line(_record(n, behind.get(n.id))), stdout)
        if total > len(rows):  # the table's title says so; JSON lines end without a word
            err_console.print(f"note: showing {len(rows)} of {total} notifications (-n/--limit)",
                              highlight=False)
        return EXIT_OK
    title = f"outbox: {waiting} pending" + (f", {counts[HELD]} held" if counts.get(HELD) else "")
    if every or dead:
        title += f", {counts.get(DEAD, 0)} dead, {counts.get(DELIVERED, 0)} delivered"
    table = Table(title=title + (f" (showing {len(rows)})" if total > len(rows) else ""))
    for col in ("message id", "sink", "kind", "group", "signal", "status", "attempts", "next attempt",
                "created", *(("delivered",) if every and not dead else ()), "last error"):
        table.add_column(col, overflow="fold")
    for n in rows:  # a next attempt only for what still waits for one
        # Text cells: a receiver's error, a group's labels and a check's signal are data, never console markup
        table.add_row(*map(cell, (n.message_id, n.sink, n.kind, n.group_key, n.signal, n.status, str(n.attempts),
                                  n.next_attempt_at.isoformat(timespec="seconds") if n.status in WAITING else "",
                                  n.created_at.isoformat(timespec="seconds"),
                                  *((n.delivered_at.isoformat(timespec="seconds") if n.delivered_at else "",)
                                    if every and not dead else ()),
                                  (n.last_error or "")[:120])))
    out.print(table)
    held_back: dict[str, list[str]] = {}  # below the table: a column of ids folded the others' ids and times
    for n in rows:
        if n.id in behind:
            held_back.setdefault(behind[n.id], []).append(n.message_id)
    for first, later in held_back.items():
        out.print(f"{', '.join(later)} {'waits' if len(later) == 1 else 'wait'} behind {first} (an alert's messages, "
                  "per sink, group and signal, go out in order: sent, however due, once that one is delivered or "
                  "given up on)", soft_wrap=True, markup=False)
    return EXIT_OK


def _say_gone(asked: Sequence[Any], stdout: TextIO | None) -> None:
    """Tell of each sink whose re-sent rows were given up on for a 410 that the running daemon keeps them waiting for
    its reload (it disables such a sink until then: monitor.alerts.delivery), and to reload it once the URL is fixed."""
    gone: dict[str, int] = {}
    for a in asked:
        n = a.notification
        if a.skipped is None and (n.last_error or "").startswith(("HTTP 410", DISABLED_NOTE)):
            gone[n.sink] = gone.get(n.sink, 0) + 1
    for sink, count in gone.items():
        what = "the notification" if count == 1 else f"the {count} notifications"
        write_line(f"note: sink {sink} answered 410 Gone: a running daemon disables it until its configuration is "
                   f"reloaded, and keeps {what} re-sent there waiting (pending, `alerts pending` says why) until then: "
                   "reload it (SIGHUP or POST /-/reload) once its URL is fixed", stdout)


def alerts_resend(config: Any, ids: Sequence[str], sink: str | None = None, *, now: Callable[[], datetime] = utcnow,
                  stdout: TextIO | None = None, store: Any = None) -> int:
    """Make the notifications given up on (dead) that `ids` name (message ids or row ids), or every one of `sink`,
    due again for the daemon to send; print each re-sent on standard output, each not re-sent (and why) on standard
    error. Exit 0 done, 1 a named one not found or not re-sent, 2 a usage or store problem."""
    if not ids and sink is None:
        err_console.print("[bold red]error:[/] name the notifications to send again (their message ids, as `alerts "
                          "pending --dead` lists them), or --sink NAME for every one given up on at a sink")
        return EXIT_CONFIG
    known = _sinks_of(config, sink, err_console)
    if known is None:
        return EXIT_CONFIG
    names = known[1]
    try:
        with _stored(config, store) as st:
            asked = Outbox(st.engine).resend_dead(now(), ids=list(dict.fromkeys(ids)) or None, sink=sink,
                                                  configured=names)
    except MonitorError as e:
        err_console.print(f"[bold red]error:[/] {escape(str(e))}")
        return EXIT_CONFIG
    found = {x for a in asked for x in (a.notification.id, a.notification.message_id, a.notification.sent_as)}
    missing = [i for i in dict.fromkeys(ids) if i not in found]
    for a in asked:
        n = a.notification
        what = f"{n.message_id} ({n.sink}, {n.kind}, {n.group_key}{' ' + n.signal if n.signal else ''})"
        if a.skipped is None:
            write_line(printable(f"re-sent {what}: waits for delivery again"), stdout)  # the store's text
        else:
            err_console.print(f"not re-sent {what}: {a.skipped}", markup=False)
    for i in missing:
        err_console.print(f"no notification {i} in the outbox", markup=False)
    done = sum(a.skipped is None for a in asked)
    if done:
        write_line(f"{done} notification{' given up on waits' if done == 1 else 's given up on wait'} for delivery "
                   "again: the running daemon's leader sends them at its next look at the outbox (within 16 s by "
                   "default), a stopped one when it starts", stdout)
    elif not ids:
        write_line(f"nothing given up on at sink {sink}", stdout)
    _say_gone(asked, stdout)
    return EXIT_FAIL if ids and (missing or done < len(asked)) else EXIT_OK
