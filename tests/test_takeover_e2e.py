"""End to end with real processes: two daemons on one PostgreSQL database, the leader killed with `kill -9`.

The in-process tests (test_leadership*.py, test_interrupted_runs.py) check each part of a take-over; this one runs
the shipped commands as an operator does (`llm-monitor sim`, two `llm-monitor run`) and checks what the README says
of a `kill -9` of the leader ("Measured with two daemons on one PostgreSQL"): the standby takes over and every
pair's runs go on, no run is doubled, the runs the killed leader had in flight end `interrupted`, and the
notifications pending at the kill are delivered, with the `webhook-id` they were first tried with.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest

from tests.support.daemon import EXE, Daemon, free_port
from tests.support.receiver import Receiver

pytestmark = pytest.mark.slow

T = TypeVar("T")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ENV = {"K": "k", "WHSEC": SECRET}
# Every call to sim-down fails (500): its canaries go down after three runs and page. sim-ok answers, or, in its
# phase `hanging` (forced by the test), holds every call: runs in flight at the kill.
SCENARIO = """\
name: takeover
seed: 7
defaults:
  ttft: {dist: constant, mean_ms: 50}
  output_tps: 2000
  length: {dist: constant, mean: 8}
models:
  sim-ok:
    phases:
      - {name: steady}
      - {name: hanging, after_requests: 1000000000, faults: {timeout: {p: 1, hold_s: 60s}}}
  sim-down:
    phases: [{name: failing, faults: {server_error: 1}}]
"""
PROBES = """\
canaries:
  - id: hello
    messages: [{role: user, content: "Say hello."}]
    samples: 1
    schedule: {every: 1s}
  - id: count
    messages: [{role: user, content: "Count to three."}]
    samples: 1
    schedule: {every: 1s}
"""
PAIRS = {(c, t) for c in ("hello", "count") for t in ("ok", "down")}
WAIT_S = 120.0  # a deadline for what takes a few seconds (about 20 s for a take-over), not a measurement
# Target ok's call timeout: a run that started before the test switched sim-ok to `hanging` but whose call arrived
# after it hangs too, and holds the pair (its next runs skipped as overruns) until it times out; at the default 60 s
# that was the whole wait for runs started after the switch. Far above a steady call's 50 ms.
OK_TIMEOUT = "20s"


def _config(folder: Path, sim_port: int, port: int, url: str, hook: str) -> Path:
    """One replica's config: the same but for the port it listens on."""
    folder.mkdir()
    (folder / "probes").mkdir()
    (folder / "probes" / "p.yaml").write_text(PROBES)
    cfg = folder / "monitor.yaml"
    base = f"http://127.0.0.1:{sim_port}/v1"
    cfg.write_text(f"""\
targets:
  - {{id: ok, provider: openai, base_url: "{base}", model: sim-ok, api_key_env: K, timeout: {OK_TIMEOUT}}}
  - {{id: down, provider: openai, base_url: "{base}", model: sim-down, api_key_env: K}}
probes: [./probes]
storage: {{url: "{url}"}}
http: {{listen: "127.0.0.1:{port}"}}
daemon: {{max_start_delay: 0, grace_period: 0}}
alerts:
  cooldown: 0s
  retry: {{initial: 0.2s, max: 1s}}
  sinks: [{{name: hook, type: webhook, url: "{hook}/hook", secret_env: WHSEC, timeout: 1s}}]
""")
    return cfg


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[int]:
    """`llm-monitor sim` with the scenario above; yield its port."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    port = free_port()
    with open(tmp_path / "sim.log", "w") as log:
        proc = subprocess.Popen([*EXE, "sim", "--port", str(port), "--scenario", str(scenario)],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            def up() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"sim exited with {proc.returncode}: {(tmp_path / 'sim.log').read_text()}")
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            _wait(up, "the simulator to listen")
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # never leave it behind, even if it hangs on a held call
                proc.kill()
                proc.wait(timeout=30)


def _wait(predicate: Callable[[], T | None], what: str, daemons: Sequence[Daemon] = ()) -> T:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    logs = "".join(f"\n--- {d.log_path.name} ---\n{d.log[-5000:]}" for d in daemons)
    raise AssertionError(f"timed out waiting for {what}{logs}")


def _query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def _runs(url: str) -> list[tuple[str, str, str, str, datetime, datetime | None, str]]:
    """Every run: id, canary, target, replica, started_at, finished_at, status (in start order)."""
    return _query(url, "SELECT id, canary, target, replica, started_at, finished_at, status FROM runs "
                       "ORDER BY started_at")  # type: ignore[return-value]


def _set_phase(sim_port: int, phase: str) -> None:
    httpx.post(f"http://127.0.0.1:{sim_port}/_sim/phase", json={"model": "sim-ok", "phase": phase},
               timeout=5).raise_for_status()


def _leading(d: Daemon) -> bool:
    try:
        return bool(d.get("/readyz").json().get("leader"))
    except (httpx.HTTPError, ValueError):
        return False


def test_a_standby_takes_over_from_a_leader_killed_with_sigkill(tmp_path: Path, pg_url: str, sim: int) -> None:
    daemons: list[Daemon] = []
    with Receiver(secret=SECRET) as receiver:
        receiver.fail(503)  # until the kill: the leader's notifications are tried and stay pending
        try:
            for name in ("a", "b"):
                port = free_port()
                daemons.append(Daemon(_config(tmp_path / name, sim, port, pg_url, receiver.url), port, env=ENV))
            for d in daemons:
                d.wait_ready(timeout=WAIT_S)
            leader = _wait(lambda: next((d for d in daemons if _leading(d)), None), "a leader", daemons)
            [standby] = [d for d in daemons if d is not leader]
            old = f":{leader.proc.pid}"  # a run's replica is HOST:PID

            # the leader has run every pair and paged the canaries of the failing target (refused by the receiver)
            _wait(lambda: {(c, t) for _, c, t, r, _, _, s in _runs(pg_url) if r.endswith(old) and s == "done"}
                  == PAIRS, "a run of every pair by the leader", daemons)
            _wait(lambda: _query(pg_url, "SELECT count(*) FROM notifications WHERE kind = 'canary.down' "
                                         "AND attempts > 0")[0][0] == 2, "both canary.down notifications tried",
                  daemons)
            # the answers of target ok now hang: the leader's next runs of its pairs are in flight at the kill
            _set_phase(sim, "hanging")
            [(hung_from,)] = _query(pg_url, "SELECT clock_timestamp()")
            _wait(lambda: {row[0] for row in _query(pg_url, "SELECT canary FROM runs WHERE status = 'running' "
                                                           "AND target = 'ok' AND started_at > %s", hung_from)}
                  == {"hello", "count"}, "runs in flight", daemons)
            leader.proc.kill()
            leader.wait(timeout=10)
            _set_phase(sim, "steady")
            [(killed_at,)] = _query(pg_url, "SELECT clock_timestamp()")
            at_kill = _runs(pg_url)
            left_running = {i for i, _, _, r, _, _, s in at_kill if r.endswith(old) and s == "running"}
            pending = dict(_query(pg_url, "SELECT message_id, kind FROM notifications WHERE status != 'delivered'"))
            tried = {m.message_id for m in receiver.requests}
            assert len(left_running) >= 2
            assert all(r.endswith(old) for _, _, _, r, *_ in at_kill), "the standby ran nothing while it stood by"
            assert sorted(pending.values()) == ["canary.down", "canary.down"] and set(pending) <= tried
            receiver.heal()

            _wait(lambda: _leading(standby), "the standby to lead", daemons)

            def taken_over() -> list[tuple[Any, ...]]:
                runs = _runs(pg_url)
                new = [(c, t) for _, c, t, r, _, _, s in runs if not r.endswith(old) and s == "done"]
                closed = {i for i, *_, s in runs if i in left_running and s != "running"}
                delivered = {m.message_id for m in receiver.delivered}
                ok = all(new.count(p) >= 2 for p in PAIRS) and closed == left_running and set(pending) <= delivered
                return runs if ok else []

            runs = _wait(taken_over, "the standby's runs, the killed leader's runs closed and the notifications "
                                     "delivered", daemons)
        finally:
            for d in daemons:
                d.stop()
    assert standby.proc.returncode == 0, standby.log

    statuses = {i: s for i, *_, s in runs}
    assert {statuses[i] for i in left_running} == {"interrupted"}
    assert not [i for i, *_, r, _, _, s in runs if s == "interrupted" and not r.endswith(old)]
    for pair in PAIRS:
        mine = [(r, start, end) for _, c, t, r, start, end, _ in runs if (c, t) == pair]
        # the standby's runs all started after the kill; no two runs of the pair at once (the killed leader's runs
        # left in flight ended with it): none doubled
        assert all(start > killed_at for r, start, _ in mine if not r.endswith(old)), pair
        for (r, _, end), (_, start, _) in zip(mine, mine[1:], strict=False):
            if end is None:  # the killed leader's ended with it; the standby's, still running, must be the last
                end = killed_at if r.endswith(old) else datetime.max.replace(tzinfo=UTC)
            assert end <= start, (pair, mine)

    # every notification pending at the kill went out, signed, with the id it was tried with before the kill
    assert all(m.verify_error == "" for m in receiver.delivered)
    bodies: dict[str, set[bytes]] = {}
    for m in receiver.delivered:
        bodies.setdefault(m.message_id or "", set()).add(m.body)
    assert set(pending) <= set(bodies) and all(len(b) == 1 for b in bodies.values())
    down = {(m.json["data"]["canary"], m.json["data"]["target"], m.message_id) for m in receiver.delivered
            if m.json["type"] == "canary.down"}
    assert {(c, t) for c, t, _ in down} == {("hello", "down"), ("count", "down")} and len(down) == 2  # paged once
    assert _query(pg_url, "SELECT count(*) FROM notifications WHERE message_id = ANY(%s) AND status = 'delivered'",
                  list(pending)) == [(2,)]
