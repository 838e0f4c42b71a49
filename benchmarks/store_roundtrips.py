"""Store round trips: how often the daemon talks to its store, per observation and per idle second, and why.

Runs the daemon (`App`, in a child process of this script) against the bundled simulator (`llm-monitor sim`,
steady scenario) with N canary x target pairs (one sample each, every `--every` seconds, one webhook sink
answering 200) on a fresh PostgreSQL database and a fresh SQLite file. After a warm-up it counts for
`--minutes` ("busy": observations stored per minute in the table's heading), then pauses the schedule and
counts for `--idle` seconds ("idle").

On PostgreSQL the store is reached through a counting TCP proxy in the child: a round trip is each time the
client speaks after the server did (or first on a connection), so BEGIN, the pool's pre-ping, COMMIT and the
rollback on return all count as they cross the wire, whatever the driver does. Each round trip is charged to the
code that had the connection checked out (its innermost `monitor` function, from the pool's checkout event; a
pre-ping, which runs before that event, goes to the checkout it precedes; a new session's start-up to
"(connect)"). On SQLite there is no wire: it counts statements and commits (each commit a write lock and a WAL
append) per source, from SQLAlchemy's engine events.

Before/after side by side: `--baseline DIR` runs the same measurement, alternating, with the `monitor` package of
another checkout (e.g. `git worktree add /tmp/base main`; its code is imported instead of this one's).

Usage: python benchmarks/store_roundtrips.py [--pairs 40] [--every 4] [--minutes 3] [--idle 60] [--warmup 20]
       [--baseline DIR] [--pg postgresql+psycopg://postgres@127.0.0.1:5432] [--no-sqlite] [--no-pg] [--port N]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432"


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=40)
    ap.add_argument("--every", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--idle", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=20.0)
    ap.add_argument("--baseline", type=Path, help="a checkout whose monitor package is the 'before'")
    ap.add_argument("--pg", default=PG_ADMIN, help="PostgreSQL server URL (without a database)")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--port", type=int, default=0, help="first of 3 ports (simulator, webhook, proxy)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(run_child(json.loads(args.child)))))
        return
    ports = (args.port, args.port + 1, args.port + 2) if args.port else (0, 0, 0)
    hook = ThreadingHTTPServer(("127.0.0.1", ports[1]), _Ok)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    sim_port = ports[0] or _free_port()
    scenario = HERE / "monitor" / "sim" / "scenarios" / "steady.yaml"
    sim = subprocess.Popen([sys.executable, "-m", "monitor.cli", "sim", "--port", str(sim_port), "--scenario",
                            str(scenario)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: list[dict[str, Any]] = []
    try:
        _wait(f"http://127.0.0.1:{sim_port}/_sim/state")
        codes = [("after", str(HERE))] + ([("before", str(args.baseline.resolve()))] if args.baseline else [])
        stores = [s for s, off in (("postgresql", args.no_pg), ("sqlite", args.no_sqlite)) if not off]
        for store in stores:
            for label, code in (codes[::-1] if len(codes) > 1 else codes):  # before first, then after
                spec = {"code": code, "label": label, "store": store, "pg": args.pg, "pairs": args.pairs,
                        "every": args.every, "minutes": args.minutes, "idle": args.idle, "warmup": args.warmup,
                        "sim": f"http://127.0.0.1:{sim_port}", "hook": f"http://127.0.0.1:{hook.server_port}/hook",
                        "proxy_port": ports[2]}
                print(f"running {label} on {store} ({args.minutes:g} min busy, {args.idle:g} s idle) ...",
                      file=sys.stderr, flush=True)
                done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                                      cwd=str(HERE), capture_output=True, text=True, check=False)
                if done.returncode:
                    sys.exit(f"child failed:\n{done.stderr[-4000:]}")
                results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        sim.terminate()
        sim.wait(10)
        hook.shutdown()
    print_tables(results, args)


PROBES_HEAD = "canaries:\n"
# The leader lock's session is checked out once, by the try that took the lock; its checks every second follow.
LABELS = {"Leadership._try_pg": "Leadership (lock session: the 1 s check)"}


class Counts:
    """Round trips on the wire (PostgreSQL), statements, commits and checkouts, per source; thread-safe."""

    def __init__(self, monitor_dir: str):
        self.monitor_dir = monitor_dir
        self.lock = threading.Lock()
        self.wire: dict[str, int] = {}
        self.statements: dict[str, int] = {}
        self.commits: dict[str, int] = {}
        self.checkouts: dict[str, int] = {}
        self._current: dict[int, str | None] = {}  # client port -> source holding that connection
        self._pending: dict[int, int] = {}  # round trips before the source is known (pre-ping, start-up)

    def source(self) -> str:
        """The innermost function of the monitor package on this thread's stack."""
        f = sys._getframe(1)
        while f is not None:
            if f.f_code.co_filename.startswith(self.monitor_dir):
                return f.f_code.co_qualname
            f = f.f_back  # type: ignore[assignment]
        return "(other)"

    @staticmethod
    def _add(d: dict[str, int], key: str, n: int = 1) -> None:
        d[key] = d.get(key, 0) + n

    def turn(self, port: int) -> None:
        with self.lock:
            src = self._current.get(port)
            if src is None:
                self._pending[port] = self._pending.get(port, 0) + 1
            else:
                self._add(self.wire, src)

    def bind(self, port: int | None, source: str | None) -> None:
        if port is None:
            return
        with self.lock:
            n = self._pending.pop(port, 0)
            if n and source is not None:
                self._add(self.wire, source, n)
            self._current[port] = None if source == "(connect)" else source

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return {k: dict(getattr(self, k)) for k in ("wire", "statements", "commits", "checkouts")}


def _port(dbapi_conn: Any) -> int | None:
    import socket

    pgconn = getattr(dbapi_conn, "pgconn", None)
    if pgconn is None:
        return None
    with socket.fromfd(pgconn.socket, socket.AF_INET, socket.SOCK_STREAM) as s:
        return int(s.getsockname()[1])


def listen(counts: Counts) -> None:
    """Count through SQLAlchemy's events on every engine and pool (the leader lock's NullPool engine too)."""
    from sqlalchemy import Engine, event
    from sqlalchemy.pool import Pool

    def port_of(record: Any, dbapi_conn: Any) -> int | None:
        if "rt_port" not in record.info:
            record.info["rt_port"] = _port(dbapi_conn)
        return record.info["rt_port"]  # type: ignore[no-any-return]

    @event.listens_for(Pool, "connect")
    def _connect(dbapi_conn: Any, record: Any) -> None:
        counts.bind(port_of(record, dbapi_conn), "(connect)")

    @event.listens_for(Pool, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        src = counts.source()
        with counts.lock:
            counts._add(counts.checkouts, src)
        counts.bind(port_of(record, dbapi_conn), src)

    @event.listens_for(Pool, "checkin")
    def _checkin(dbapi_conn: Any, record: Any) -> None:
        if dbapi_conn is not None:
            counts.bind(record.info.get("rt_port"), None)

    @event.listens_for(Engine, "before_cursor_execute")
    def _stmt(*_: Any) -> None:
        src = counts.source()
        with counts.lock:
            counts._add(counts.statements, src)

    @event.listens_for(Engine, "commit")
    def _commit(_conn: Any) -> None:
        src = counts.source()
        with counts.lock:
            counts._add(counts.commits, src)


def _use_code(code: str) -> str:
    """Import `monitor` from the checkout `code` (before anything imports it), not the editable install."""
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")
                        and "editable" not in type(f).__module__]
    sys.path.insert(0, code)
    import monitor

    where = str(Path(monitor.__file__).resolve().parent)
    if not where.startswith(str(Path(code).resolve())):
        raise SystemExit(f"monitor imported from {where}, not {code}")
    return where + os.sep


def _config(folder: Path, spec: dict[str, Any], url: str) -> Path:
    lines = [PROBES_HEAD]
    for i in range(spec["pairs"]):
        lines.append(f"  - {{id: c{i:03d}, messages: [{{role: user, content: 'Say something about {i}.'}}], "
                     f"samples: 1, schedule: {{every: {spec['every']}s}}, params: {{max_tokens: 40}}}}\n")
    (folder / "probes").mkdir()
    (folder / "probes" / "p.yaml").write_text("".join(lines))
    cfg = folder / "monitor.yaml"
    cfg.write_text(f"""\
targets:
  - {{id: sim, provider: openai, base_url: "{spec['sim']}/v1", model: sim-gpt, stream: true, max_concurrency: 64}}
probes: [./probes]
storage: {{url: "{url}"}}
http: {{listen: "127.0.0.1:0"}}
daemon: {{max_start_delay: {spec['every']}}}
alerts:
  sinks: [{{name: hook, type: webhook, url: "{spec['hook']}", secret_env: HOOK_SECRET, timeout: 5s}}]
""")
    return cfg


def _diff(a: dict[str, dict[str, int]], b: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {k: {s: n - a[k].get(s, 0) for s, n in b[k].items() if n - a[k].get(s, 0)} for k in b}


async def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one daemon (code, store) and return its counts per phase."""
    from tests.support.wire import RoundTrips  # this checkout's (standard library only), before `monitor` is

    counts = Counts(_use_code(spec["code"]))
    import logging

    import psycopg
    from sqlalchemy.engine import make_url

    from monitor.app import App
    from monitor.config import load_config

    logging.disable(logging.WARNING)
    listen(counts)
    folder = Path(tempfile.mkdtemp(prefix="roundtrips-", dir="/tmp/roundtrips" if os.path.isdir("/tmp/roundtrips")
                                   else None))
    database = None
    if spec["store"] == "postgresql":
        admin = make_url(spec["pg"])
        database = f"roundtrips_{spec['label']}_{os.getpid()}"
        dsn = admin.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{database}"')
        proxy = RoundTrips(admin.host or "127.0.0.1", admin.port or 5432, listen=spec["proxy_port"],
                           turn=counts.turn)
        url = admin.set(host="127.0.0.1", port=proxy.port, database=database).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{folder / 'm.db'}"
    # the sink signs its webhooks as a real one does; a key made for this run (the receiver checks nothing)
    environ = {"HOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()}
    config = load_config(_config(folder, spec, url), environ=environ)
    stored = [0]
    app = App(config, environ=environ, serve_http=False)
    app.runner.listeners.append(lambda obs: stored.__setitem__(0, stored[0] + 1))
    try:
        # in this process: the daemon's migration child would import `monitor` from the editable install (this
        # checkout), which builds its own newest schema, not the measured checkout's
        await asyncio.to_thread(app.store.migrate)
        await app.start()
        await asyncio.sleep(spec["warmup"])
        a, n0, t0 = counts.snapshot(), stored[0], time.monotonic()
        await asyncio.sleep(spec["minutes"] * 60)
        b, n1, t1 = counts.snapshot(), stored[0], time.monotonic()
        app.scheduler.pause()
        while app.runner.in_flight:
            await asyncio.sleep(0.1)
        if app.analysis is not None:
            await app.analysis.drain()
        await asyncio.sleep(5)
        c, t2 = counts.snapshot(), time.monotonic()
        await asyncio.sleep(spec["idle"])
        d, t3 = counts.snapshot(), time.monotonic()
    finally:
        await app.stop()
        if database is not None:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return {"label": spec["label"], "store": spec["store"], "observations": n1 - n0, "busy_s": t1 - t0,
            "idle_s": t3 - t2, "busy": _diff(a, b), "idle": _diff(c, d)}


def print_tables(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    for store in ("postgresql", "sqlite"):
        runs = {r["label"]: r for r in results if r["store"] == store}
        if not runs:
            continue
        labels = [x for x in ("before", "after") if x in runs]
        kinds = ("wire",) if store == "postgresql" else ("statements", "commits")
        for kind in kinds:
            what = {"wire": "round trips", "statements": "SQL statements", "commits": "commits"}[kind]
            title = (f"{store}: {what} per observation (busy) and per second (idle); {args.pairs} pairs every "
                     f"{args.every} s; " + ", ".join(f"{x}: {runs[x]['observations'] / runs[x]['busy_s'] * 60:.0f} "
                                                     f"obs/min" for x in labels))
            t = Table(title=title)
            t.add_column("source")
            for x in labels:
                t.add_column(f"{x} /obs", justify="right")
            for x in labels:
                t.add_column(f"{x} /idle s", justify="right")
            sources = sorted({s for x in labels for p in ("busy", "idle") for s in runs[x][p][kind]},
                             key=lambda s: -max(runs[x]["busy"][kind].get(s, 0) / max(runs[x]["observations"], 1)
                                                for x in labels))
            for s in [*sources, "total"]:
                row = [LABELS.get(s, s)]
                for x in labels:
                    r = runs[x]
                    n = sum(r["busy"][kind].values()) if s == "total" else r["busy"][kind].get(s, 0)
                    row.append(f"{n / max(r['observations'], 1):.2f}")
                for x in labels:
                    r = runs[x]
                    n = sum(r["idle"][kind].values()) if s == "total" else r["idle"][kind].get(s, 0)
                    row.append(f"{n / r['idle_s']:.2f}")
                t.add_row(*row)
            console.print(t)
            for x in labels:
                r = runs[x]
                console.print(f"  {x}: {sum(r['busy'][kind].values()) / r['busy_s']:.1f} {what}/s busy "
                              f"({r['observations']} observations in {r['busy_s']:.0f} s)")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    os.environ.setdefault("TMPDIR", tempfile.gettempdir())
    main()
