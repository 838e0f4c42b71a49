"""How drift events end when an operator acts (`baseline accept`, `pin`), as receivers and the events table see it:
the messages say how the event ended and carry the operator's note, and a pinned baseline closes the events judged
against the one it replaced."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from monitor.alerts.outbox import Outbox
from monitor.alerts.sinks.slack import slack_message
from monitor.app import App
from monitor.config import load_config
from monitor.sim import SimServer
from monitor.store import Store
from tests.conftest import write_config
from tests.support.daemon import cli
from tests.support.receiver import Receiver
from tests.test_drift_cli import PROBES_C1, through_change, two_phases

ALERTS = ("alerts: {{group_wait: 0s, sinks: [{{name: hook, type: webhook, url: '{url}'}}]}}\n"
          "drift: {{baseline_size: 10}}\n")


async def drifted(tmp_path: Path, sim: SimServer, url: str = "http://127.0.0.1:9/h") -> tuple[Path, datetime]:
    """Run c1 through the simulator's change with a webhook sink to `url`; return the config and when the change
    came (just before phase b)."""
    cfg_path = write_config(tmp_path, f"  - {{id: t, provider: openai, base_url: '{sim.openai_base_url}', "
                                      "model: m}", PROBES_C1, extra=ALERTS.format(url=url))
    config = load_config(cfg_path, environ={})
    app = App(config, registry=CollectorRegistry(), environ={}, serve_http=False)
    await app.start(schedule=False)
    canary, target = config.pairs()[0]
    try:
        for _ in range(3):
            await app.runner.run(canary, target)
        changed = datetime.now(UTC)
        await through_change(app, sim, canary, target, before=0)
    finally:
        await app.stop()
    return cfg_path, changed


async def delivered(cfg_path: Path) -> None:
    """Start the daemon on the config (no schedule), deliver what the outbox holds, stop."""
    app = App(load_config(cfg_path, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False)
    await app.start(schedule=False)
    try:
        assert app.alerting is not None
        outbox = app.alerting.outbox
        for _ in range(600):  # the sink's own delivery loop sends them (a flush beside it would race it)
            if await asyncio.to_thread(outbox.pending_count) == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        await app.stop()


def messages(cfg_path: Path, kind: str) -> list[dict[str, Any]]:
    store = Store(load_config(cfg_path, environ={}).storage.url)
    try:
        return [n.payload for n in Outbox(store.engine).query(limit=1000) if n.kind == kind]
    finally:
        store.close()


def open_events(cfg_path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in cli("drift", "-c", str(cfg_path), "--open", "--json").stdout.splitlines()]


async def test_an_accepted_event_tells_receivers_it_was_accepted_with_the_note(tmp_path: Path) -> None:
    # The accepted message said what the opening one said ("c1 @ t: output_chars 220 -> 880"), under a check mark,
    # and dropped the --note: a receiver could not tell an operator's accept from the provider going back. And one
    # accept sent a message per signal (7 in Slack for a new refusal), where the opening was one message.
    with SimServer(two_phases("acc", 2, verbosity=4.0)) as sim, Receiver() as rx:
        cfg_path, _ = await drifted(tmp_path, sim, rx.url)
        await delivered(cfg_path)
        opened = open_events(cfg_path)
        accept = cli("baseline", "accept", "c1", "-c", str(cfg_path), "--note", "provider upgrade, intended")
        assert accept.returncode == 0, accept.stderr
        sent = len(rx.requests)
        await delivered(cfg_path)  # the daemon's next start sends what the CLI queued
        got = [r.json["data"] for r in rx.requests[sent:]]
        assert [m["kind"] for m in got] == ["drift.accepted"], [(m["kind"], m["summary"], [e["event_id"] for e in m.get("events", [])]) for m in got]
        [msg] = got
    behaviour = [e for e in opened if e["kind"] == "behaviour"]
    assert len(behaviour) > 1 and msg["kind"] == "drift.accepted"
    assert {e["event_id"] for e in msg["events"]} == {e["id"] for e in behaviour}
    assert msg["summary"] == f"c1 @ t: {len(behaviour)} signals accepted as the new baseline: provider upgrade, " \
                             f"intended ({', '.join(msg['signals'])})"
    accepted = messages(cfg_path, "drift.accepted")
    assert {p["event_id"] for p in accepted} == {e["id"] for e in opened if e["kind"] == "behaviour"}
    for p in accepted:
        assert p["summary"].startswith(f"c1 @ t: {p['signal']} ")
        assert p["summary"].endswith(" accepted as the new baseline: provider upgrade, intended"), p["summary"]
        assert p["note"] == "provider upgrade, intended"
    [opening] = messages(cfg_path, "drift.opened")[:1]
    chat = slack_message(opening)["blocks"][2]["text"]["text"]
    assert "since: " in chat and " UTC" in chat  # since when, as the webhook's evidence.first_obs_at says
    assert all(len(line) < 60 for line in chat.splitlines()), chat  # values to 3 digits, not 17


async def test_pin_resolves_the_open_events_it_replaces_the_baseline_of(tmp_path: Path) -> None:
    # Pinning the range after the change as the baseline left the events opened against the old one open, with the
    # old baseline's values: one resolves when its signal moves back from the behaviour it opened on, which the
    # pinned range holds, so they stayed open (llm_monitor_drift_active 1, the alert firing) until chance moved it.
    with SimServer(two_phases("pin", 3, verbosity=4.0)) as sim:
        cfg_path, changed = await drifted(tmp_path, sim)
    opened = {e["id"] for e in open_events(cfg_path)}
    assert opened
    pin = cli("baseline", "pin", "c1", "-c", str(cfg_path), "--since", changed.isoformat(), "--note", "wordier")
    assert pin.returncode == 0, pin.stderr
    assert f"{len(opened)} open event(s) resolved" in pin.stdout, pin.stdout
    assert open_events(cfg_path) == []
    events = {e["id"]: e for e in map(json.loads, cli("drift", "-c", str(cfg_path), "--json").stdout.splitlines())}
    assert {events[i]["state"] for i in opened} == {"resolved"}
    assert {events[i]["note"] for i in opened} == {"baseline pinned: wordier"}
    resolved = messages(cfg_path, "drift.resolved")
    assert resolved and all("resolved, closed by an operator: baseline pinned: wordier" in p["summary"]
                            for p in resolved), [p["summary"] for p in resolved]
