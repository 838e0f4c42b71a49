"""Soak: does a daemon under a heavy, eventful schedule level off, or does something grow without bound?

Starts the simulated upstream and a real `llm-monitor run` (drift on, a webhook sink pointing at a small receiver in
this process; the store SQLite in the run folder, or the empty PostgreSQL database `--store` names) with N canaries
x 2 targets (the OpenAI wire format streaming, the Anthropic one not) at 2-5 s intervals, then scripts, at fixed
fractions of the run: a refusal change, a model swap, error bursts and slow answers on each upstream, SIGHUP reloads
(canaries added; nothing changed; an invalid file; streaming modes swapped and canaries removed) and an outage of
the webhook receiver. Every `--every` seconds it samples the daemon: resident memory, open file descriptors
(sockets), threads, /metrics lines, store size and rows, the outbox backlog, log lines, calls made and scheduled
runs skipped; on PostgreSQL (14 or later) also the database's sessions (pg_stat_activity: all, and idle in a
transaction) and how many it opened a minute (pg_stat_database.sessions: a pool that closes and opens connections
shows there), the store's size being its tables' with their indexes and TOAST (pg_total_relation_size; dead rows
included until a vacuum). At the end it sends SIGTERM and times the exit (on PostgreSQL: and counts the sessions
left behind).

Prints the samples (about a dozen rows) and how each level moved over the last third of the run, after the last
scripted event: a leak keeps climbing once the daemon has seen everything; the store grows with the calls made.
The machine's load shows in the skipped runs and the scrape time: compare runs on the same machine. Memory settles
late (in a 40-minute run it rose for about 33 minutes, then by 2.4 MB in the last 7): give it the 40 minutes.

The soak starts from an empty store: a `--keep` folder already holding `monitor.db`, or a database holding any
table, is refused (create a new one: `createdb -h 127.0.0.1 -U postgres soak`, then
`--store postgresql+psycopg://postgres@127.0.0.1:5432/soak`).

Usage: python benchmarks/soak.py [--minutes 40] [--canaries 30] [--every 30] [--keep DIR] [--ports N] [--store URL]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.table import Table
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


class Soak:
    def __init__(self, folder: Path, canaries: int, store: SqliteStore | PostgresStore, ports: int | None = None):
        self.folder, self.canaries, self.store = folder, canaries, store
        sim, listen, hook = (ports, ports + 1, ports + 2) if ports else (free_port(), free_port(), free_port())
        self.sim_port, self.port, self.hook = sim, listen, Receiver(hook)
        self.sim_url = f"http://127.0.0.1:{self.sim_port}"
        self.probes, self.cfg = folder / "probes", folder / "monitor.yaml"
        self.log = folder / "daemon.err"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.daemon: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        (self.folder / "scenario.yaml").write_text(SCENARIO)
        self.probes.mkdir(exist_ok=True)
        write_probes(self.probes / "soak.yaml", self.canaries)
        self.write_config()
        cli = [sys.executable, "-m", "monitor.cli", "--log-level", "warning"]
        self.procs.append(subprocess.Popen([*cli, "sim", "--port", str(self.sim_port), "--scenario",
                                            str(self.folder / "scenario.yaml")],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.hook.start()
        self.wait_for(self.sim_url + "/_sim/state")
        env = {**os.environ, "SOAK_SECRET": "whsec_" + "c29ha3NlY3JldHNvYWtzZWNyZXQ="}
        with self.log.open("wb") as err:
            self.daemon = subprocess.Popen([sys.executable, "-m", "monitor.cli", "run", "-c", str(self.cfg)],
                                           stdout=subprocess.DEVNULL, stderr=err, env=env)
        self.procs.append(self.daemon)
        self.wait_for(f"http://127.0.0.1:{self.port}/metrics")

    def write_config(self, **kwargs: bool) -> None:
        self.cfg.write_text(config_text(self.sim_url, self.port, self.hook.port, self.store.url, self.probes, **kwargs))

    @staticmethod
    def wait_for(url: str) -> None:
        for _ in range(600):
            try:
                httpx.get(url, timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"{url} did not answer")

    def phase(self, model: str, phase: str) -> None:
        httpx.post(self.sim_url + "/_sim/phase", json={"model": model, "phase": phase}, timeout=5)

    def hup(self) -> None:
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGHUP)

    def invalid_reload(self) -> None:
        good = self.cfg.read_text()
        self.cfg.write_text(good + "bogus_key: 1\n")
        self.hup()
        time.sleep(2)
        self.cfg.write_text(good)

    def events(self) -> list[tuple[float, str, Callable[[], None]]]:
        def both(phase: str) -> Callable[[], None]:
            return lambda: (self.phase("soak-gpt", phase), self.phase("soak-claude", phase))

        def more_canaries() -> None:
            write_probes(self.probes / "soak.yaml", self.canaries + 2)
            self.hup()

        def swap_streaming() -> None:
            write_probes(self.probes / "soak.yaml", self.canaries - 2)
            self.write_config(swapped=True)
            self.hup()

        return [(0.12, "refusals start (both upstreams)", both("refuse")),
                (0.20, "SIGHUP: 2 canaries added", more_canaries),
                (0.24, "model swap (both)", both("swapped")),
                (0.30, "error burst (Anthropic)", lambda: self.phase("soak-claude", "errors")),
                (0.33, "webhook receiver down", self.hook.stop),
                (0.37, "webhook receiver up", self.hook.start),
                (0.38, "error burst (OpenAI); Anthropic recovers",
                 lambda: (self.phase("soak-claude", "swapped"), self.phase("soak-gpt", "errors"))),
                (0.42, "SIGHUP: nothing changed", self.hup),
                (0.45, "OpenAI recovers", lambda: self.phase("soak-gpt", "swapped")),
                (0.48, "SIGHUP: an invalid file", self.invalid_reload),
                (0.50, "slow answers (Anthropic)", lambda: self.phase("soak-claude", "slow")),
                (0.57, "slow answers (OpenAI); Anthropic recovers",
                 lambda: (self.phase("soak-claude", "swapped"), self.phase("soak-gpt", "slow"))),
                (0.60, "SIGHUP: streaming modes swapped, 4 canaries removed", swap_streaming),
                (0.65, "OpenAI recovers", lambda: self.phase("soak-gpt", "swapped")),
                (0.66, "SIGHUP: nothing changed", self.hup)]

    def sample(self, started: float, last: dict[str, float]) -> dict[str, float]:
        assert self.daemon is not None
        pid = self.daemon.pid
        status = Path(f"/proc/{pid}/status").read_text()
        field = {line.split(":")[0]: line.split(":")[1].split() for line in status.splitlines()}
        fds = os.listdir(f"/proc/{pid}/fd")
        sockets = 0
        for fd in fds:
            with contextlib.suppress(OSError):  # closed meanwhile
                sockets += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        t0 = time.monotonic()
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=30).text
        scrape_ms = (time.monotonic() - t0) * 1000
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name = line.split("{")[0].split(" ")[0]
                values[name] = values.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        store = self.store.sample()
        now = time.monotonic()
        log_lines = sum(1 for _ in self.log.open("rb"))
        per_min = (log_lines - last["log_lines"]) / max((now - last["at"]) / 60, 1e-9) if last else 0.0
        return {"at": now, "min": (now - started) / 60, "RSS MB": int(field["VmRSS"][0]) / 1024,
                "FDs": len(fds), "sockets": sockets, "threads": int(field["Threads"][0]),
                "/metrics lines": len(text.splitlines()), **store,
                "outbox waiting": values.get("llm_monitor_notifications_pending", 0.0),
                "log_lines": log_lines, "log lines/min": per_min,
                "calls": values.get("llm_monitor_probe_attempts_total", 0.0),
                "skipped runs": values.get("llm_monitor_runs_skipped_total", 0.0), "scrape ms": scrape_ms}

    def stop(self) -> tuple[float, float | None]:
        """SIGTERM the daemon; return seconds to its exit and to its `stopped` log line."""
        assert self.daemon is not None
        t0 = time.time()
        self.daemon.send_signal(signal.SIGTERM)
        self.daemon.wait(120)
        took = time.time() - t0
        stopped = None
        for line in self.log.read_text().splitlines():
            if '"msg": "stopped"' in line:
                stopped = datetime.fromisoformat(json.loads(line)["ts"]).timestamp() - t0
        return took, stopped

    def close(self) -> None:
        self.hook.stop()
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                p.wait(30)


def row(s: dict[str, float], postgres: bool) -> list[str]:
    return [f"{s['min']:.1f}", f"{s['RSS MB']:.1f}", f"{s['FDs']:.0f} ({s['sockets']:.0f})", f"{s['threads']:.0f}",
            f"{s['/metrics lines']:.0f}", f"{s['store MB']:.1f}", f"{s['observations']:.0f}",
            f"{s['drift_events']:.0f}", f"{s['outbox waiting']:.0f}", f"{s['log lines/min']:.0f}",
            f"{s['calls']:.0f}", f"{s['skipped runs']:.0f}", f"{s['scrape ms']:.0f}",
            *([f"{s['PG sessions']:.0f} ({s['idle in tx']:.0f})", f"{s['opened/min']:.0f}"] if postgres else [])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=40.0)
    ap.add_argument("--canaries", type=int, default=30, help="canaries (each runs against both targets)")
    ap.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    ap.add_argument("--keep", type=Path, help="folder to keep the store, config and daemon log in")
    ap.add_argument("--ports", type=int, help="first of three ports to use (simulator, daemon, receiver); "
                                              "default: free ones")
    ap.add_argument("--store", metavar="URL", help="an empty PostgreSQL database (postgresql+psycopg://...) to "
                                                   "soak on; default: SQLite in the run folder")
    args = ap.parse_args()
    console = Console(width=200)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="llm-monitor-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    store = PostgresStore(args.store) if args.store else SqliteStore(folder)
    try:
        store.refuse_filled()
    except SystemExit:
        if args.keep is None:  # the folder made for this run holds nothing yet
            folder.rmdir()
        raise
    postgres = isinstance(store, PostgresStore)
    soak = Soak(folder, args.canaries, store, args.ports)
    samples: list[dict[str, float]] = []
    left: tuple[int, int] | None = None
    try:
        soak.start()
        started = time.monotonic()
        duration = args.minutes * 60
        pending = soak.events()
        next_sample = started
        while time.monotonic() < started + duration:
            now = time.monotonic()
            while pending and now >= started + pending[0][0] * duration:
                _, label, act = pending.pop(0)
                act()
                console.log(label)
            if now >= next_sample:
                samples.append(soak.sample(started, samples[-1] if samples else {}))
                next_sample += args.every
            time.sleep(0.2)
        samples.append(soak.sample(started, samples[-1]))
        took, stopped = soak.stop()
        if isinstance(store, PostgresStore):
            time.sleep(1)  # the server ends a session once it sees its socket closed
            left = store.left()
    finally:
        soak.close()
        store.close()
    table = Table(title=f"Soak: {args.canaries} canaries x 2 targets at 2-5 s, {args.minutes:g} minutes, "
                        f"{'PostgreSQL' if postgres else 'SQLite'} "
                        f"(python {sys.version.split()[0]}, {os.cpu_count()} cores)")
    for col in COLUMNS + (PG_COLUMNS if postgres else ()):
        table.add_column(col, justify="right")
    step = max(1, len(samples) // 12)
    for s in samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else []):
        table.add_row(*row(s, postgres))
    console.print(table)
    tail = [s for s in samples if s["min"] >= args.minutes * 2 / 3]
    if len(tail) >= 2:
        a, b = tail[0], tail[-1]
        moved = Table(title=f"The last third ({a['min']:.1f} -> {b['min']:.1f} min), after the last scripted event")
        for col in ("level", "from", "to", "change"):
            moved.add_column(col, justify="right")
        levels = ("RSS MB", "FDs", "sockets", "threads", "/metrics lines", "outbox waiting", "store MB")
        for key in levels + (("PG sessions", "idle in tx", "opened/min") if postgres else ()):
            moved.add_row(key, f"{a[key]:.1f}", f"{b[key]:.1f}", f"{b[key] - a[key]:+.1f}")
        console.print(moved)
    console.print(f"SIGTERM -> exit: [bold]{took:.2f} s[/]" + (f" (the `stopped` log line after {stopped:.2f} s)"
                                                               if stopped is not None else ""))
    if left is not None:
        console.print(f"PostgreSQL sessions left 1 s after the exit: {left[0]} ({left[1]} idle in a transaction)")
    console.print(f"webhook messages received: {soak.hook.received}; config and log in {folder}, store "
                  f"{store.shown}")


if __name__ == "__main__":
    main()
