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
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table
from soak_setup import (
    COLUMNS,
    PG_COLUMNS,
    SCENARIO,
    PostgresStore,
    Receiver,
    SqliteStore,
    config_text,
    free_port,
    write_probes,
)


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
