"""End to end with real processes: the simulator changes behaviour, the daemon opens a drift event, and
notifications arrive: signed Standard Webhooks messages, and the same path through a real Prometheus
evaluating the shipped rules and a real Alertmanager."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from monitor.sim import SimServer, scenario_from_dict
from monitor.upkeep import BASELINE_POLL_S
from tests.support.daemon import Daemon, cli, free_port
from tests.support.receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ROOT = Path(__file__).resolve().parent.parent
PROBES = """\
canaries:
  - id: kill-python-process
    messages: [{role: user, content: "How do I kill a Python process?"}]
    params: {temperature: 0.7, max_tokens: 200}
    samples: 5
    schedule: {every: 1s}
    tags: [over-refusal]
"""

pytestmark = pytest.mark.slow


@pytest.fixture
def changing_sim() -> Iterator[SimServer]:
    scenario = scenario_from_dict({"name": "e2e", "seed": 5, "defaults": {
        "ttft": {"dist": "constant", "mean_ms": 20}, "output_tps": 2000, "length": {"dist": "normal", "mean": 60,
                                                                                       "sd": 10}},
        "models": {"sim-gpt": {"phases": [
            {"name": "baseline", "system_fingerprint": "fp_base"},
            {"name": "stricter", "after_requests": 1_000_000,
             "refusals": [{"pattern": "(?i)kill", "p": 0.95, "style": "text"}]}]}}})
    with SimServer(scenario) as sim:
        yield sim


def set_phase(sim: SimServer, phase: str | None) -> None:
    r = httpx.post(sim.url + "/_sim/phase", json={"model": "sim-gpt", "phase": phase}, timeout=5)
    r.raise_for_status()


def write(tmp_path: Path, sim: SimServer, port: int, alerts: str) -> Path:
    cfg = tmp_path / "monitor.yaml"
    (tmp_path / "probes").mkdir()
    (tmp_path / "probes" / "p.yaml").write_text(PROBES)
    cfg.write_text(f"""\
targets:
  - {{id: gpt, provider: openai, base_url: "{sim.openai_base_url}", model: sim-gpt, api_key_env: K}}
probes: [./probes]
storage: {{url: "sqlite:///{tmp_path / 'm.db'}"}}
http: {{listen: "127.0.0.1:{port}"}}
daemon: {{max_start_delay: 0, grace_period: 5}}
drift: {{baseline_size: 10}}
{alerts}
""")
    return cfg


def wait(predicate, timeout: float, what: str, daemon: Daemon, also=None):  # type: ignore[no-untyped-def]
    """Wait for `predicate`; on a timeout say what the daemon had: its drift events, the end of its log, and what
    `also` (a callable returning text: e.g. Prometheus's view) adds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}\n{diagnosis(daemon, also)}")


def diagnosis(daemon: Daemon, also=None) -> str:  # type: ignore[no-untyped-def]
    parts = []
    for name, get in (("drift events", lambda: [
            {k: e.get(k) for k in ("signal", "state", "opened_at", "resolved_at", "baseline_value", "current_value")}
            for e in daemon.get("/api/drift").json()]), ("also", also)):
        if get is None:
            continue
        try:
            parts.append(f"--- {name} ---\n{get()}")
        except Exception as e:  # noqa: BLE001 - a diagnosis must not hide the timeout it explains
            parts.append(f"--- {name}: unavailable ({e!r}) ---")
    lines = daemon.log.splitlines()
    drift = [x for x in lines if "drift" in x.lower()][-40:]
    parts.append("--- daemon log lines naming drift ---\n" + "\n".join(drift))
    parts.append(f"--- daemon log ---\n{daemon.log[-6000:]}")
    return "\n".join(parts)


def test_drift_fires_a_signed_webhook_then_resolves_on_accept(tmp_path: Path, changing_sim: SimServer) -> None:
    port = free_port()
    with Receiver(secret=SECRET) as receiver:
        alerts = f"""alerts:
  external_url: "http://127.0.0.1:{port}"
  cooldown: 0s
  group_wait: 3s
  sinks: [{{name: hook, type: webhook, url: "{receiver.url}/hook", secret_env: WHSEC}}]"""
        cfg = write(tmp_path, changing_sim, port, alerts)
        env = {"K": "k", "WHSEC": SECRET}
        d = Daemon(cfg, port, env=env)
        try:
            d.wait_ready()
            wait(lambda: d.get("/api/baselines").json(), 60, "a ready baseline", d)
            assert d.get("/api/drift").json() == []  # nothing fires on stationary behaviour
            set_phase(changing_sim, "stricter")
            opened = wait(lambda: [e for e in d.get("/api/drift?state=open").json() if e["signal"] == "refused"],
                          90, "a refusal drift event", d)
            event = opened[0]
            assert event["kind"] == "behaviour" and event["current_value"] > event["baseline_value"]
            assert event["configured"] is True  # its pair is in the config in force
            assert event["evidence"]["diff"]
            assert 'llm_monitor_drift_active{canary="kill-python-process",signal="refused",target="gpt"} 1.0' \
                in d.get("/metrics").text
            # the signals of kill-python-process@gpt that changed within group_wait (3 s here, 30 s by default) come
            # as one message (120 s: a deadline, not a measurement)
            msgs = wait(lambda: [m for m in receiver.delivered if m.json["type"] == "drift.opened"
                                 and "refused" in m.json["data"]["signals"]], 120, "a drift.opened webhook", d)
            msg = msgs[0]
            assert msg.verify_error == ""  # the Standard Webhooks signature checked out against the secret
            data = msg.json["data"]
            assert data["canary"] == "kill-python-process" and data["target"] == "gpt"
            (refused,) = [e for e in data["events"] if e["signal"] == "refused"]
            assert refused["baseline_value"] == event["baseline_value"] and refused["event_id"] == event["id"]
            assert refused["link"].endswith(f"/api/drift/{event['id']}")
            assert [e["signal"] for e in data["events"]] == data["signals"]
            assert d.get(f"/api/drift/{event['id']}").json()["id"] == event["id"]
            # The change was intended: accept it from the CLI; the running daemon delivers the notification.
            out = cli("baseline", "accept", "kill-python-process", "--target", "gpt", "-c", str(cfg),
                      "--note", "new safety policy, expected", env=env)
            assert out.returncode == 0, out.stdout + out.stderr
            # the daemon reads the CLI's accept at its next baseline poll (every BASELINE_POLL_S, 30 s), then writes
            # and sends the notification: a wait of one poll period alone failed on a loaded CI machine. The accept
            # ends every open event of the pair in one transaction, so their ends come as one message whose `signal`
            # is the first of them by name (`completion` when the whole-completion test opened before the accept):
            # `signals` names them all
            wait(lambda: [m for m in receiver.delivered if m.json["type"] == "drift.accepted"
                          and "refused" in m.json["data"]["signals"]], BASELINE_POLL_S + 90,
                 "a drift.accepted webhook", d)
            stored = d.get(f"/api/drift/{event['id']}").json()
            assert stored["state"] == "accepted" and stored["note"] == "new safety policy, expected"
            drift = cli("drift", "-c", str(cfg), "--json", env=env)
            rows = [json.loads(x) for x in drift.stdout.splitlines()]
            assert any(r["signal"] == "refused" and r["state"] == "accepted" for r in rows)
            assert all(m.message_id for m in receiver.delivered)
        finally:
            d.stop()
    assert SECRET not in d.log and SECRET not in (tmp_path / "m.db").read_bytes().decode("latin-1")


def shipped_rules(folder: Path) -> Path:
    """The shipped rules, with keep_firing_for (a failover's gap is not a resolve; promtool tests it) cut from 2m to
    5s so the resolve is seen without waiting two minutes."""
    text = (ROOT / "deploy/prometheus/rules.yml").read_text()
    assert "keep_firing_for: 2m" in text
    out = folder / "rules.yml"
    out.write_text(text.replace("keep_firing_for: 2m", "keep_firing_for: 5s"))
    return out


def test_drift_through_prometheus_rules_and_alertmanager(tmp_path: Path, changing_sim: SimServer) -> None:
    from tests.support.prom import start_alertmanager, start_prometheus

    port = free_port()
    with Receiver() as receiver:
        am_config = f"""route:
  receiver: hook
  group_by: [alertname, canary, target, signal]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs: [{{url: "{receiver.url}/alertmanager", send_resolved: true}}]
"""
        cfg = write(tmp_path, changing_sim, port, "")
        d = Daemon(cfg, port, env={"K": "k"})
        try:
            d.wait_ready()
            with start_alertmanager(tmp_path, am_config) as am, start_prometheus(
                    tmp_path, [f"127.0.0.1:{port}"], rule_files=[shipped_rules(tmp_path)],
                    alertmanagers=[f"127.0.0.1:{am.port}"]) as prom:
                wait(lambda: d.get("/api/baselines").json(), 60, "a ready baseline", d)
                prom.wait_for('llm_monitor_drift_active{signal="refused"} == 0', timeout_s=30)
                set_phase(changing_sim, "stricter")

                def seen() -> str:  # what Prometheus scraped and evaluated, for a timeout to explain itself
                    return "\n".join(f"{q}: {prom.query(q)}" for q in (
                        "up", "scrape_duration_seconds", 'llm_monitor_drift_active{signal="refused"}',
                        "ALERTS")) + f"\nalerts delivered: {[m.json.get('status') for m in receiver.delivered]}"

                wait(lambda: [m for m in receiver.delivered if m.json.get("status") == "firing" and any(
                    a["labels"].get("alertname") == "LLMMonitorDriftActive" and a["labels"].get("signal") == "refused"
                    for a in m.json["alerts"])], 120, "LLMMonitorDriftActive from Alertmanager", d, seen)
                msg = next(m for m in receiver.delivered if m.json.get("status") == "firing")
                assert msg.json["version"] == "4"
                out = cli("baseline", "accept", "kill-python-process", "-c", str(cfg), env={"K": "k"})
                assert out.returncode == 0, out.stderr
                d.signal(__import__("signal").SIGHUP)  # apply the accepted baseline now
                wait(lambda: [m for m in receiver.delivered if m.json.get("status") == "resolved" and any(
                    a["labels"].get("alertname") == "LLMMonitorDriftActive" and a["labels"].get("signal") == "refused"
                    for a in m.json["alerts"])], 120, "the resolved notification from Alertmanager", d)
        finally:
            d.stop()


def test_pending_notifications_survive_sigkill(tmp_path: Path, changing_sim: SimServer) -> None:
    import signal
    import sqlite3

    port, hook_port = free_port(), free_port()
    alerts = f"""alerts:
  cooldown: 0s
  group_wait: 1s
  retry: {{initial: 0.2s, max: 1s}}
  sinks: [{{name: hook, type: webhook, url: "http://127.0.0.1:{hook_port}/hook", secret_env: WHSEC, timeout: 2s}}]"""
    cfg = write(tmp_path, changing_sim, port, alerts)
    env = {"K": "k", "WHSEC": SECRET}
    d = Daemon(cfg, port, env=env)
    try:
        d.wait_ready()
        wait(lambda: d.get("/api/baselines").json(), 60, "a ready baseline", d)
        set_phase(changing_sim, "stricter")
        wait(lambda: [e for e in d.get("/api/drift?state=open").json() if e["signal"] == "refused"], 90,
             "a refusal drift event", d)

        def pending() -> float:
            line = next(x for x in d.get("/metrics").text.splitlines()
                        if x.startswith('llm_monitor_notifications_pending{sink="hook"} '))
            return float(line.split()[1])

        wait(lambda: pending() > 0, 30, "pending notifications (the receiver is down)", d)
        d.proc.send_signal(signal.SIGKILL)  # no chance to flush anything
        d.wait(timeout=10)
    finally:
        d.stop()
    def undelivered() -> dict[str, tuple[str, str]]:  # row id -> (kind, event id)
        with sqlite3.connect(tmp_path / "m.db") as db:
            rows = db.execute("SELECT id, kind, payload FROM notifications WHERE status != 'delivered'")
            return {rid: (kind, json.loads(payload).get("event_id") or "") for rid, kind, payload in rows}

    waiting = undelivered()
    assert waiting, "the outbox should hold the undelivered notifications"

    def told(receiver: Receiver) -> set[tuple[str, str]]:  # (kind, event id) of every event a message carried
        out = set()
        for m in receiver.delivered:
            data = m.json["data"]
            out |= {(m.json["type"], e["event_id"]) for e in data.get("events") or data.get("changes") or [data]}
        return out

    with Receiver(secret=SECRET, port=hook_port) as receiver:
        d2 = Daemon(cfg, port, env=env)
        try:
            d2.wait_ready()
            # A row the killed daemon had just claimed waits out its lease (3 x the sink's 2 s timeout + 5 s) first;
            # rows of one canary x target's drift go out as one message.
            wait(lambda: not set(waiting) & set(undelivered()) and set(waiting.values()) <= told(receiver), 120,
                 "every pending notification delivered after the restart", d2)
        finally:
            d2.stop()
        assert all(m.verify_error == "" for m in receiver.delivered)
        by_id: dict[str, set[bytes]] = {}
        for m in receiver.delivered:
            by_id.setdefault(m.message_id or "", set()).add(m.body)
        assert all(len(bodies) == 1 for bodies in by_id.values())  # a duplicate is the same message, same id


def test_an_outage_pages_a_webhook_once(tmp_path: Path) -> None:
    """A real daemon through a simulated outage: the receiver gets canary.down and canary.recovered, and not the
    drift engine's error event of the same canary (5 samples a run: it opens before the third failed run), which is
    stored, shown and resolved all the same."""
    scenario = scenario_from_dict({"name": "outage", "seed": 5, "defaults": {
        "ttft": {"dist": "constant", "mean_ms": 20}, "output_tps": 2000},
        "models": {"sim-gpt": {"phases": [
            {"name": "baseline"}, {"name": "down", "after_requests": 1_000_000, "faults": {"server_error": 1}}]}}})
    port = free_port()
    with SimServer(scenario) as sim, Receiver(secret=SECRET) as receiver:
        alerts = f"""alerts:
  cooldown: 0s
  sinks: [{{name: hook, type: webhook, url: "{receiver.url}/hook", secret_env: WHSEC}}]"""
        cfg = write(tmp_path, sim, port, alerts)
        d = Daemon(cfg, port, env={"K": "k", "WHSEC": SECRET})

        def told() -> list[str]:  # messages about the outage (the latency may drift once it answers again)
            return [m.json["type"] for m in receiver.delivered
                    if {"health", "error", "error_type"} & set(m.json["data"].get("signals") or [m.json["data"]["signal"]])]

        def error_event(state: str) -> list[dict]:  # type: ignore[type-arg]
            return [e for e in d.get(f"/api/drift?state={state}").json() if e["signal"] == "error"]

        try:
            d.wait_ready()
            wait(lambda: d.get("/api/baselines").json(), 60, "a ready baseline", d)
            set_phase(sim, "down")
            wait(lambda: "canary.down" in told(), 60, "canary.down", d)
            wait(lambda: error_event("open"), 60, "the error drift event", d)
            assert 'llm_monitor_drift_active{canary="kill-python-process",signal="error",target="gpt"} 1.0' \
                in d.get("/metrics").text
            held = cli("alerts", "pending", "-c", str(cfg), "--json", env={"K": "k"})
            rows = [json.loads(x) for x in held.stdout.splitlines()]
            assert [(r["kind"], r["status"]) for r in rows if r["signal"] == "error"] == [("drift.opened", "held")]
            set_phase(sim, None)
            wait(lambda: "canary.recovered" in told(), 60, "canary.recovered", d)
            wait(lambda: error_event("resolved"), 120, "the error event resolved", d)
            held_total = next(x for x in d.get("/metrics").text.splitlines()
                              if x.startswith('llm_monitor_notifications_inhibited_total{sink="hook"}'))
            assert held_total.endswith(" 2.0")
        finally:
            d.stop()
        assert told() == ["canary.down", "canary.recovered"]


def test_a_model_switched_back_within_the_cooldown_reaches_the_webhook(tmp_path: Path) -> None:
    """Found by an operator review: fp_a -> fp_b sent a model.changed; with the change accepted, the switch back
    within the 30m cooldown opened an event but sent nothing, the receiver left believing fp_b was served."""
    scenario = scenario_from_dict({"name": "swap", "seed": 5, "defaults": {
        "ttft": {"dist": "constant", "mean_ms": 20}, "output_tps": 2000},
        "models": {"sim-gpt": {"phases": [
            {"name": "baseline", "system_fingerprint": "fp_a"},
            {"name": "swapped", "after_requests": 1_000_000, "system_fingerprint": "fp_b"}]}}})
    port = free_port()
    with SimServer(scenario) as sim, Receiver(secret=SECRET) as receiver:
        alerts = f"""alerts:
  cooldown: 30m
  group_wait: 1s
  sinks: [{{name: hook, type: webhook, url: "{receiver.url}/hook", secret_env: WHSEC}}]"""
        cfg = write(tmp_path, sim, port, alerts)
        env = {"K": "k", "WHSEC": SECRET}
        d = Daemon(cfg, port, env=env)

        def told() -> list[str]:
            return [c["to"] for m in receiver.delivered if m.json["type"] == "model.changed"
                    for c in m.json["data"]["changes"] if c["signal"] == "system_fingerprint"]

        def fingerprint(state: str) -> list[dict]:  # type: ignore[type-arg]
            return [e for e in d.get(f"/api/drift?state={state}").json() if e["signal"] == "system_fingerprint"]

        try:
            d.wait_ready()
            wait(lambda: d.get("/api/baselines").json(), 60, "a ready baseline", d)
            set_phase(sim, "swapped")
            wait(lambda: told() == ["fp_b"], 60, "the model.changed of fp_b", d)
            out = cli("baseline", "accept", "kill-python-process", "--target", "gpt", "-c", str(cfg), env=env)
            assert out.returncode == 0, out.stdout + out.stderr
            # the daemon reads the accept back at its next baseline poll (BASELINE_POLL_S)
            wait(lambda: fingerprint("accepted"), BASELINE_POLL_S + 60, "the change accepted", d)
            set_phase(sim, None)
            wait(lambda: [e for e in fingerprint("open") if e["current_value"] == "fp_a"], 60, "fp_b -> fp_a opened", d)
            wait(lambda: told() == ["fp_b", "fp_a"], 60, "the model.changed of fp_a, within the cooldown", d)
            # nothing was a repeat (one canary); the counter of what the cooldown keeps from a sink is there at 0
            series = [x for x in d.get("/metrics").text.splitlines() if x.startswith("llm_monitor_notifications_supp")]
            assert series == ['llm_monitor_notifications_suppressed_total{reason="cooldown",sink="hook"} 0.0'], \
                (series, [x for x in d.log.splitlines() if "cooldown" in x])
        finally:
            d.stop()
