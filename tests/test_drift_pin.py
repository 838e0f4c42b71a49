"""`baseline pin` judges the pair's open events against the pinned range, through the app and the CLI: the range
holds an event's change (it is accepted) or not (it stays open against the range, with no resolve told and no
second event, and resolves once behaviour is back at the range). Resolving them all told receivers all was well
while the change went on, and the new baseline opened them again hours later."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from monitor.sim import SimServer
from tests.support.daemon import cli
from tests.support.receiver import Receiver
from tests.test_drift_cli import two_phases
from tests.test_drift_operator_endings import delivered, drifted, messages, open_events


def all_events(cfg_path: Path) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in map(json.loads, cli("drift", "-c", str(cfg_path), "--json").stdout.splitlines())}


async def test_pin_of_a_range_showing_the_change_accepts_its_events_in_one_message(tmp_path: Path) -> None:
    with SimServer(two_phases("pin", 3, verbosity=4.0)) as sim, Receiver() as rx:
        cfg_path, changed = await drifted(tmp_path, sim, rx.url)
        await delivered(cfg_path)
        opened = {e["id"] for e in open_events(cfg_path)}
        assert opened
        pin = cli("baseline", "pin", "c1", "-c", str(cfg_path), "--since", changed.isoformat(), "--note", "wordier")
        assert pin.returncode == 0, pin.stderr
        assert f"{len(opened)} open event(s) accepted (the pinned range shows their change), 0 kept" in pin.stdout, \
            pin.stdout
        sent = len(rx.requests)
        await delivered(cfg_path)
        got = [r.json["data"] for r in rx.requests[sent:]]
    assert open_events(cfg_path) == []
    events = all_events(cfg_path)
    assert {events[i]["state"] for i in opened} == {"accepted"}
    assert {events[i]["note"] for i in opened} == {"baseline pinned: wordier"}
    assert messages(cfg_path, "drift.resolved") == []
    assert [m["kind"] for m in got] == ["drift.accepted"], [(m["kind"], m["summary"]) for m in got]
    assert got[0]["summary"].endswith(f"accepted as the new baseline: baseline pinned: wordier "
                                      f"({', '.join(got[0]['signals'])})"), got[0]["summary"]


async def test_pin_of_an_old_range_while_the_change_goes_on_keeps_its_events_open_until_it_ends(tmp_path: Path) -> None:
    # Pinning last week's good range while the regression went on resolved every event ("closed by an operator:
    # baseline pinned"), an all-clear; the new baseline's charts, starting empty, opened them again later: a page.
    start = datetime.now(UTC)
    with SimServer(two_phases("old", 3, verbosity=4.0)) as sim, Receiver() as rx:
        cfg_path, changed = await drifted(tmp_path, sim, rx.url, before=8,  # a range of 40 calls to pin
                                         drift=", disabled_signals: [latency_s, ttft_s]")  # the machine's load
        await delivered(cfg_path)
        before = {e["id"]: e for e in open_events(cfg_path)}
        assert before
        config = load_config(cfg_path, environ={})
        app = App(config, registry=CollectorRegistry(), environ={}, serve_http=False)
        await app.start(schedule=False)
        canary, target = config.pairs()[0]
        try:
            pin = cli("baseline", "pin", "c1", "-c", str(cfg_path), "--since", start.isoformat(), "--until",
                      changed.isoformat(), "--note", "last week")
            assert pin.returncode == 0, pin.stderr
            assert f"0 open event(s) accepted (the pinned range shows their change), {len(before)} kept open" \
                in pin.stdout, pin.stdout
            kept = {e["id"]: e for e in open_events(cfg_path)}
            assert set(kept) == set(before)
            valued = [e for e in kept.values() if isinstance(e["baseline_value"], float)]
            assert any(e["baseline_value"] != before[e["id"]]["baseline_value"] for e in valued)  # the pinned range's
            assert await app.analysis.in_worker(app.analysis.refresh_baselines) == 1  # as the 30 s poll does
            for _ in range(8):  # the change goes on: still open, nothing told, no second event
                await app.runner.run(canary, target)
            await app.analysis.in_worker(lambda: None)  # the analyses queued before it are done
            engine = app.analysis.engine
            assert {e.id for e in engine.events(state="open") if e.signal in {b["signal"] for b in before.values()}} \
                == set(before)
            assert messages(cfg_path, "drift.resolved") == [] and messages(cfg_path, "drift.accepted") == []
            now = {e["id"]: e for e in open_events(cfg_path)}  # the daemon's updates keep the pinned range's values
            assert {i: (now[i]["baseline_value"], now[i]["baseline_n"]) for i in kept} == \
                {i: (e["baseline_value"], e["baseline_n"]) for i, e in kept.items()}
            opened = [p["signal"] for p in messages(cfg_path, "drift.opened")]
            assert len(opened) == len(set(opened)), opened

            sent = len(rx.requests)
            httpx.post(sim.url + "/_sim/phase", json={"model": "m", "phase": "a"}).raise_for_status()
            for _ in range(40):  # back at the pinned range: they resolve
                await app.runner.run(canary, target)
                await app.analysis.in_worker(lambda: None)
                if not set(before) & {e.id for e in engine.events(state="open")}:
                    break
            assert not set(before) & {e.id for e in engine.events(state="open")}, \
                [(e.signal, e.baseline_value, e.current_value, e.p_value) for e in engine.events(state="open")]
        finally:
            await app.stop()
        await delivered(cfg_path)
        got = [r.json["data"] for r in rx.requests[sent:]]
    events = all_events(cfg_path)
    assert {events[i]["state"] for i in before} == {"resolved"}
    assert {events[i]["note"] for i in before} == {""}  # back at baseline by itself
    assert {p["event_id"] for p in messages(cfg_path, "drift.resolved")} == set(before)
    assert "drift.resolved" in {m["kind"] for m in got}, [(m["kind"], m["summary"]) for m in got]
