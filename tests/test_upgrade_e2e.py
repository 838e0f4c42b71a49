"""End to end with a real daemon: a store an older release left (schema 0003, with its rows) is taken over by this
version's daemon and nothing is lost: observations and runs, the learned baseline (not learned again), the open
drift event (still open, not opened twice), the notifications queued behind a receiver that was down (each
delivered once), and the commands that read the store work on it afterwards."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from monitor.sim import SimServer, scenario_from_dict
from monitor.store.engine import make_engine
from monitor.store.schema import HEAD
from tests.support.daemon import Daemon, cli, free_port
from tests.support.receiver import Receiver
from tests.support.schema import upgrade_to

pytestmark = pytest.mark.slow

CANARY, TARGET = "kill-python-process", "gpt"
GROUP = f"{CANARY}/{TARGET}"
EVENT_ID = "eb8d654d5e241513a98403e2"
BASELINE_ID = "35f98c1092014c87a40824783a1dcbdc"
PROBES = """\
canaries:
  - id: kill-python-process
    messages: [{role: user, content: "How do I kill a Python process?"}]
    params: {temperature: 0.7, max_tokens: 200}
    samples: 2
    schedule: {every: 1s}
"""
ANSWER = "Find its id with ps aux | grep python, then kill PID; if it ignores SIGTERM, kill -9 PID."


@pytest.fixture
def refusing_sim() -> Iterator[SimServer]:
    """The upstream after the change the older release saw: it refuses the canary."""
    scenario = scenario_from_dict({"name": "upgrade", "seed": 3, "defaults": {
        "ttft": {"dist": "constant", "mean_ms": 20}, "output_tps": 2000, "length": {"dist": "normal", "mean": 60,
                                                                                       "sd": 10}},
        "models": {"sim-gpt": {"phases": [
            {"name": "stricter", "system_fingerprint": "fp_base",
             "refusals": [{"pattern": "(?i)kill", "p": 0.95, "style": "text"}]}]}}})
    with SimServer(scenario) as sim:
        yield sim


def _ts(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")  # how SQLAlchemy stores a DateTime in SQLite


def _old_store(url: str, now: datetime) -> list[str]:
    """A schema-0003 store as that release left it; return the ids of its observations."""
    engine = make_engine(url)
    upgrade_to(engine, "0003")
    start = now - timedelta(minutes=10)
    obs_ids = []
    with engine.begin() as conn:
        for i in range(5):
            run_id, at = f"run{i:029d}", start + timedelta(seconds=10 * i)
            conn.execute(text("INSERT INTO runs VALUES (:id, :c, :t, 'schedule', 'old-host', :at, :at, 2, 0, 'done')"),
                         {"id": run_id, "c": CANARY, "t": TARGET, "at": _ts(at)})
            for k in range(2):
                oid = f"obs{i}{k:028d}"
                obs_ids.append(oid)
                conn.execute(text(
                    "INSERT INTO observations (id, run_id, canary, target, provider, request_model, sample_index,"
                    " started_at, text, finish_reason, response_model, system_fingerprint, output_tokens, latency_s,"
                    " tokens_estimated, stream, tool_calls, ratelimit, checks, refusal) VALUES (:id, :run, :c, :t,"
                    " 'openai', 'sim-gpt', :k, :at, :text, 'stop', 'sim-gpt', 'fp_base', 25, 0.1, 0, 1, '[]', '{}',"
                    " '[]', 'none')"),
                    {"id": oid, "run": run_id, "c": CANARY, "t": TARGET, "k": k, "at": _ts(at), "text": ANSWER})
        baseline = {
            "version": 1, "canary": CANARY, "target": TARGET, "size": 10, "source": "first_n", "note": "",
            "created_at": start.isoformat(), "first_obs_id": obs_ids[0], "last_obs_id": obs_ids[-1],
            "last_obs_at": (start + timedelta(seconds=40)).isoformat(), "count": 10, "ready": True,
            "texts": [ANSWER] * 10, "mode_text": None, "mode_share": 0.0, "representative": 0, "embeddings": None,
            "rates": {"error": [0, 10], "refused": [0, 10]},
            "values": {"output_tokens": [25.0] * 10, "latency_s": [0.1] * 10},
            "categories": {"finish_reason": {"stop": 10}}, "identity": {}, "similarity_k": 15}
        conn.execute(text("INSERT INTO baselines VALUES (:id, :c, :t, :at, 'first_n', '', 1, :data)"),
                     {"id": BASELINE_ID, "c": CANARY, "t": TARGET, "at": _ts(start), "data": json.dumps(baseline)})
        opened = start + timedelta(seconds=60)
        event = {
            "canary": CANARY, "target": TARGET, "signal": "refused", "kind": "behaviour", "test": "bernoulli_cusum",
            "baseline_value": 0.0, "current_value": 0.8, "effect_size": 2.2, "statistic": 11.8, "p_value": None,
            "threshold": 11.27, "baseline_n": 10, "current_n": 26, "first_obs_id": obs_ids[-1],
            "first_obs_at": opened.isoformat(), "opened_at": opened.isoformat(), "state": "open", "resolved_at": None,
            "accepted_at": None, "note": "", "evidence": {"current_completion": "I'm sorry, I can't help with that."},
            "detail": {"direction": "up", "p0": 0.32, "p1": 0.65, "m": 15, "r": 14, "h": 234}, "id": EVENT_ID}
        conn.execute(text("INSERT INTO drift_events VALUES (:id, :c, :t, 'refused', 'behaviour', 'open', :at, NULL,"
                          " NULL, :data)"), {"id": EVENT_ID, "c": CANARY, "t": TARGET, "at": _ts(opened),
                                              "data": json.dumps(event)})
        # Queued behind a receiver that was down: the drift event's firing message and a canary down (signal
        # "error" in that release).
        common = {"status": "firing", "canary": CANARY, "target": TARGET, "severity": "warning", "tags": [],
                  "group_key": GROUP, "opened_at": opened.isoformat(), "resolved_at": None, "link": ""}
        rows = [("drift.opened", "refused", {**common, "kind": "drift.opened", "event_id": EVENT_ID,
                                              "signal": "refused", "summary": "refused 0.0 -> 0.8",
                                              "evidence": {"signal": "refused"}}),
                ("canary.down", "error", {**common, "kind": "canary.down", "event_id": "", "signal": "error",
                                          "summary": "every call failed in 3 consecutive runs",
                                          "evidence": {"signal": "error", "error_types": ["connect"]}})]
        for i, (kind, signal, payload) in enumerate(rows):
            conn.execute(text(
                "INSERT INTO notifications VALUES (:id, :mid, 'hook', :kind, :g, :signal, :payload, 'failed', 3, :at,"
                " 'ConnectError', :at, NULL)"),
                {"id": f"note{i:028d}", "mid": f"msg_old{i}", "kind": kind, "g": GROUP, "signal": signal,
                 "payload": json.dumps(payload), "at": _ts(opened + timedelta(seconds=i))})
    engine.dispose()
    return obs_ids


def _wait(predicate: Any, timeout: float, what: str, daemon: Daemon) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}\n--- daemon log ---\n{daemon.log[-6000:]}")


def _told(receiver: Receiver) -> list[tuple[str, str, str]]:
    """(message type, event id, signal) of every event each message carried."""
    out = []
    for m in receiver.delivered:
        data = m.json["data"]
        out += [(m.json["type"], e.get("event_id") or "", e.get("signal") or "") for e in data.get("events") or [data]]
    return out


def test_a_schema_0003_store_keeps_everything_under_this_versions_daemon(tmp_path: Path,
                                                                          refusing_sim: SimServer) -> None:
    db = tmp_path / "m.db"
    obs_ids = _old_store(f"sqlite:///{db}", datetime.now(UTC))
    port, hook_port = free_port(), free_port()
    (tmp_path / "probes").mkdir()
    (tmp_path / "probes" / "p.yaml").write_text(PROBES)
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(f"""\
targets:
  - {{id: {TARGET}, provider: openai, base_url: "{refusing_sim.openai_base_url}", model: sim-gpt, api_key_env: K}}
probes: [./probes]
storage: {{url: "sqlite:///{db}"}}
http: {{listen: "127.0.0.1:{port}"}}
daemon: {{max_start_delay: 0, grace_period: 5}}
drift: {{baseline_size: 10}}
alerts:
  retry: {{initial: 0.2s, max: 1s}}
  sinks: [{{name: hook, type: webhook, url: "http://127.0.0.1:{hook_port}/hook"}}]
""")
    env = {"K": "k"}
    with Receiver(port=hook_port) as receiver:
        d = Daemon(cfg, port, env=env)
        try:
            d.wait_ready()
            # both queued rows go out, and the canary, answering again, is told recovered (its down was read back)
            _wait(lambda: {"msg_old0", "msg_old1"} <= {m.message_id for m in receiver.delivered}
                  and any(t == "canary.recovered" for t, _, _ in _told(receiver)), 60, "the queued notifications", d)
            _wait(lambda: len(_observations(db)) >= len(obs_ids) + 30, 60, "30 new observations", d)
        finally:
            d.stop()
        assert d.proc.returncode == 0, d.log

    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
        assert set(obs_ids) <= set(_observations(db))
        assert conn.execute("SELECT count(*) FROM runs WHERE replica = 'old-host'").fetchone() == (5,)
        # the baseline the older release learned is the one in force: not learned again from the first answers
        assert conn.execute("SELECT id, active, source FROM baselines").fetchall() == [(BASELINE_ID, 1, "first_n")]
        # the change is still there: its event stays open, and no second one opened for it
        refused = conn.execute("SELECT id, state FROM drift_events WHERE signal = 'refused'").fetchall()
        assert refused == [(EVENT_ID, "open")]
        assert conn.execute("SELECT count(*) FROM notifications WHERE id LIKE 'note%' AND status = 'delivered'"
                            ).fetchone() == (2,)
    told = _told(receiver)
    assert [t for t in told if t[1] == EVENT_ID] == [("drift.opened", EVENT_ID, "refused")]  # told once
    assert [t for t in told if t[0] == "canary.down"] == [("canary.down", "", "health")]
    assert ("canary.recovered", "", "health") in told
    bodies: dict[str, set[bytes]] = {}
    for m in receiver.delivered:
        bodies.setdefault(m.message_id or "", set()).add(m.body)
    assert all(len(b) == 1 for b in bodies.values())

    shown = cli("drift", "-c", str(cfg), env=env)
    assert shown.returncode == 0 and "refused" in shown.stdout, shown.stderr
    base = cli("baseline", "show", CANARY, "-c", str(cfg), env=env)
    assert base.returncode == 0 and "first_n" in base.stdout, base.stderr
    out = tmp_path / "dump.jsonl"
    exported = cli("export", "-c", str(cfg), "--since", "1h", "-o", str(out), env=env)
    assert exported.returncode == 0, exported.stderr
    assert set(obs_ids) <= {json.loads(line)["id"] for line in out.read_text().splitlines()}


def _observations(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM observations")]
