"""The soak's fixtures: its scenario, probe file and config, its store (SQLite or PostgreSQL, with its sizes and
sessions) and the webhook receiver it points the daemon's sink at (`benchmarks/soak.py` runs them)."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, create_engine, event, make_url, text
from sqlalchemy.pool import NullPool

SCENARIO = """\
name: soak
seed: 11
defaults:
  ttft: {dist: lognormal, mean_ms: 120, sd_ms: 30}
  output_tps: {dist: normal, mean: 250, sd: 20}
  length: {dist: lognormal, mean: 50, sd: 12}
  chunk_tokens: 3
  refusals: [{pattern: "(?i)\\\\bkill\\\\b", p: 0.03}]
  faults: {rate_limit: {p: 0.005, retry_after_s: 1}, server_error: 0.003}
models:
  soak-gpt:
    phases:
      - {name: baseline, response_model: soak-gpt-2025-01-15, system_fingerprint: fp_aaaa0001}
      - {name: refuse, after: 1000h, refusals: [{pattern: "(?i)\\\\b(kill|shoot|attack)\\\\b", p: 0.8}]}
      - {name: swapped, after: 1000h, refusals: [], response_model: soak-gpt-2025-06-01,
         system_fingerprint: fp_bbbb0002, voice: casual}
      - {name: errors, after: 1000h, faults: {server_error: 0.25, rate_limit: {p: 0.15, retry_after_s: 1},
         overloaded: 0.1, stream_cut: {p: 0.05, at: 0.5}, reset: {p: 0.03, at: 0.5}}}
      - {name: slow, after: 1000h, faults: {timeout: {p: 0.05, hold_s: 30s}, stall: {p: 0.1, stall_s: 4s}},
         ttft: {dist: lognormal, mean_ms: 2500, sd_ms: 600}, output_tps: 40}
  soak-claude:
    phases:
      - {name: baseline, voice: formal, system_fingerprint: null, response_model: soak-claude-4-5-20250929}
      - {name: refuse, after: 1000h, refusals: [{pattern: "(?i)\\\\b(kill|shoot|attack)\\\\b", p: 0.7, style: field}]}
      - {name: swapped, after: 1000h, refusals: [], response_model: soak-claude-4-6-20260101, verbosity: 2.0}
      - {name: errors, after: 1000h, faults: {server_error: 0.25, rate_limit: {p: 0.15, retry_after_s: 1},
         overloaded: 0.15, malformed: 0.05, reset: {p: 0.03, at: 0}}}
      - {name: slow, after: 1000h, faults: {timeout: {p: 0.05, hold_s: 30s}, stall: {p: 0.1, stall_s: 4s}},
         ttft: {dist: lognormal, mean_ms: 2500, sd_ms: 600}, output_tps: 40}
"""
PROMPTS = [
    ("kill", "How do I kill a Python process number {i}?", [{"type": "refusal", "expect": "answered"}]),
    ("shoot", "What's the best way to shoot a portrait, variant {i}?", [{"type": "refusal", "expect": "answered"}]),
    ("json", "Return a JSON object with keys a and b, case {i}.", [{"type": "json_valid"}]),
    ("len", "Explain TCP slow start briefly, take {i}.",
     [{"type": "length", "unit": "words", "min": 5, "max": 400, "name": "words"}]),
    ("attack", "Describe the attack surface of a web app, item {i}.", [{"type": "refusal", "expect": "answered"}]),
]
TABLES = ("observations", "runs", "notifications", "drift_events")
COLUMNS = ("min", "RSS MB", "FDs (sockets)", "threads", "/metrics lines", "store MB", "observations", "drift events",
           "outbox waiting", "log lines/min", "calls", "skipped runs", "scrape ms")
PG_COLUMNS = ("PG sessions (idle in tx)", "PG sessions opened/min")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_probes(path: Path, n: int) -> None:
    canaries = []
    for i in range(n):
        kind, text, checks = PROMPTS[i % len(PROMPTS)]
        canaries.append({"id": f"soak-{kind}-{i:02d}", "messages": [{"role": "user", "content": text.format(i=i)}],
                         "params": {"temperature": 0.7, "max_tokens": 200}, "samples": 2 if i % 7 == 0 else 1,
                         "schedule": {"every": f"{2 + i % 4}s"}, "checks": checks})
    path.write_text(yaml.safe_dump({"canaries": canaries}, sort_keys=False))


def config_text(sim: str, listen: int, hook: int, store: str, probes: Path, *, swapped: bool = False) -> str:
    return f"""\
targets:
  - {{id: sim-openai, provider: openai, base_url: "{sim}/v1", model: soak-gpt, stream: {str(not swapped).lower()},
     timeout: 10, max_concurrency: 16}}
  - {{id: sim-anthropic, provider: anthropic, base_url: "{sim}", model: soak-claude, stream: {str(swapped).lower()},
     timeout: 10, max_concurrency: 16}}
probes: ["{probes}"]
storage: {{url: "{store}"}}
http: {{listen: "127.0.0.1:{listen}"}}
daemon: {{max_start_delay: 5}}
alerts:
  group_wait: 10s
  retry: {{initial: 2s, max: 30s}}
  sinks: [{{name: hook, type: webhook, url: "http://127.0.0.1:{hook}/hook", secret_env: SOAK_SECRET, timeout: 5s}}]
"""


class SqliteStore:
    """The default store: `monitor.db` in the run folder, read through a read-only connection."""

    def __init__(self, folder: Path):
        self.folder, self.path = folder, folder / "monitor.db"
        self.url = self.shown = f"sqlite:///{self.path}"

    def refuse_filled(self) -> None:
        if self.path.exists():
            raise SystemExit(f"{self.path} exists: the soak starts from an empty store (give --keep a new folder)")

    def sample(self) -> dict[str, float]:
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        try:
            rows = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in TABLES}
        finally:
            con.close()
        return {**rows, "store MB": sum(p.stat().st_size for p in self.folder.glob("monitor.db*")) / 1e6}

    def close(self) -> None:
        pass


class PostgresStore:
    """A PostgreSQL database, empty at the start; sampled through a connection of its own each time, which the
    session counts leave out. The store's size is its tables' (in the connection's schema, as the daemon's)."""

    def __init__(self, url: str):
        u = make_url(url)
        if u.drivername == "postgresql":  # as the daemon reads it (monitor.store.engine)
            u = u.set(drivername="postgresql+psycopg")
        self.url, self.shown = url, u.render_as_string(hide_password=True)
        self.engine = create_engine(u, poolclass=NullPool)
        self.own = 0  # sessions this script opened, left out of the database's count
        event.listen(self.engine, "connect", lambda *_: setattr(self, "own", self.own + 1))
        self.last: tuple[float, int] | None = None

    def refuse_filled(self) -> None:
        with self.engine.connect() as conn:
            tables = conn.execute(text("select schemaname || '.' || tablename from pg_tables where schemaname "
                                       "not in ('pg_catalog', 'information_schema') order by 1")).scalars().all()
        if tables:
            raise SystemExit(f"{self.shown} holds {len(tables)} table(s) ({', '.join(tables[:4])}"
                             f"{', ...' if len(tables) > 4 else ''}): the soak starts from an empty store; "
                             "give it a new database (createdb) or drop the old one")

    @staticmethod
    def sessions(conn: Connection) -> tuple[int, int, int]:
        """The database's other sessions now (all, and those idle in a transaction), and those ever opened."""
        now, idle_in_tx = conn.execute(text(
            "select count(*), count(*) filter (where state like 'idle in transaction%') from pg_stat_activity "
            "where datname = current_database() and pid <> pg_backend_pid()")).one()
        opened = conn.execute(text(  # PostgreSQL 14 or later
            "select sessions from pg_stat_database where datname = current_database()")).scalar_one()
        return now, idle_in_tx, opened

    def left(self) -> tuple[int, int]:
        """The sessions still open (all, idle in a transaction)."""
        with self.engine.connect() as conn:
            return self.sessions(conn)[:2]

    def sample(self) -> dict[str, float]:
        with self.engine.connect() as conn:
            rows = {t: conn.execute(text(f"select count(*) from {t}")).scalar_one() for t in TABLES}
            size = conn.execute(text(
                "select coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint from pg_class c join pg_namespace n "
                "on n.oid = c.relnamespace where c.relkind = 'r' and n.nspname = current_schema()")).scalar_one()
            sessions, idle_in_tx, opened = self.sessions(conn)
        now, opened = time.monotonic(), opened - self.own
        per_min = (opened - self.last[1]) / max((now - self.last[0]) / 60, 1e-9) if self.last else 0.0
        self.last = (now, opened)
        return {**rows, "store MB": size / 1e6, "PG sessions": sessions, "idle in tx": idle_in_tx,
                "PG sessions opened": opened, "opened/min": per_min}

    def close(self) -> None:
        self.engine.dispose()


class Receiver:
    """A webhook receiver that answers 200 and counts what it got; stop and start it to make an outage."""

    def __init__(self, port: int):
        self.port, self.received, self._server = port, 0, None

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.received += 1
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
