"""How drift events end when an operator acts (`baseline accept`, `pin`), as receivers and the events table see it:
the messages say how the event ended and carry the operator's note (a pin's judging of the open events:
test_drift_pin.py)."""

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
          "drift: {{baseline_size: 10{drift}}}\n")


async def drifted(tmp_path: Path, sim: SimServer, url: str = "http://127.0.0.1:9/h",
                  before: int = 3, drift: str = "") -> tuple[Path, datetime]:
    """Run c1 `before` times, then through the simulator's change, with a webhook sink to `url` (and `drift`, more
    drift settings: ", key: value"); return the config and when the change came (just before phase b)."""
    cfg_path = write_config(tmp_path, f"  - {{id: t, provider: openai, base_url: '{sim.openai_base_url}', "
                                      "model: m}", PROBES_C1, extra=ALERTS.format(url=url, drift=drift))
    config = load_config(cfg_path, environ={})
    app = App(config, registry=CollectorRegistry(), environ={}, serve_http=False)
    await app.start(schedule=False)
    canary, target = config.pairs()[0]
    try:
        for _ in range(before):
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
