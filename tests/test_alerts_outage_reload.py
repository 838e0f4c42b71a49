"""One page per outage across reloads: a pair a reload removes while it is down, and a later reload (or a restart)
adds back while it still fails; and a canary.down written as the reload removes its pair (the daemon in-process on
the simulator, a real local receiver, SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from monitor.alerts import AlertEvent
from monitor.alerts.events import DEAD, HELD, Notification
from monitor.sim import SimServer, scenario_from_dict
from monitor.store import Store
from tests.support.receiver import Receiver
from tests.test_alerts_inhibit import _Contended, alerting, down
from tests.test_alerts_outage import (
    config_path,
    error_rows,
    phase,
    runs,
    started,
    through_outage,
    told,
)


@pytest.fixture
def sim() -> Iterator[SimServer]:
    scenario = scenario_from_dict({"name": "outage", "seed": 7, "defaults": {
        "ttft": {"dist": "constant", "mean_ms": 5}, "output_tps": 5000,
        "length": {"dist": "normal", "mean": 30, "sd": 5}},
        "models": {"m": {"phases": [{"name": "up"},
                                    {"name": "down", "after_requests": 10**9, "faults": {"server_error": 1}}]},
                   "*": {"phases": [{"name": "up"}]}}})
    with SimServer(scenario) as s:
        yield s


def two_targets(cfg: Path, sim: SimServer) -> str:
    """Add target `u` (answering) after `t`; return the config with `u` only (`t` removed)."""
    text = cfg.read_text()
    t = next(line for line in text.splitlines() if line.startswith("  - {id: t,"))
    u = t.replace("{id: t,", "{id: u,").replace("model: m,", "model: other,")
    cfg.write_text(text.replace(t, t + "\n" + u))
    return text.replace(t, u)


def summaries(rx: Receiver) -> list[tuple[str, str]]:
    return [(m.json["type"], m.json["data"].get("summary") or "") for m in rx.delivered
            if m.json["type"].startswith("canary.")]


@pytest.mark.parametrize("back", ["reload", "restart"])
async def test_a_pair_removed_while_down_and_added_back_still_failing_pages_once_more(
        sim: SimServer, store_url: str, tmp_path: Path, back: str) -> None:
    """A reload that removes a down pair ends its page ("no longer monitored": nothing else would); added back
    still failing after a restart (at the restart, or by a reload after it), it is paged once more, as
    canary.down alone: its error event, still open, fires again but is held under it (the daemon did not know the
    pair's latest calls failed, and paged the error drift with it)."""
    with Receiver() as rx:
        cfg = config_path(tmp_path, sim, store_url, rx)
        without = two_targets(cfg, sim)
        full = cfg.read_text()
        app = await started(cfg)
        try:
            await through_outage(app, sim, rx)
            cfg.write_text(without)
            assert (await app.reload())[0]
            await app.stop()  # the daemon's memory of the pair's failed calls goes
            if back == "restart":
                cfg.write_text(full)
                app = await started(cfg)
            else:
                app = await started(cfg)
                cfg.write_text(full)
                assert (await app.reload())[0]
            await runs(app, 3)  # still failing
            assert told(rx) == [("canary.down", "health"), ("canary.recovered", "health"), ("canary.down", "health")]
            assert summaries(rx)[1] == ("canary.recovered", "c1@t: no longer monitored (removed from the configuration)")
            assert [(k, s) for k, s, _ in error_rows(app)] == [("drift.opened", DEAD), ("drift.opened", HELD)]
            phase(sim, "up")
            await runs(app, 6)
        finally:
            await app.stop()
        assert told(rx) == [("canary.down", "health"), ("canary.recovered", "health"),
                            ("canary.down", "health"), ("canary.recovered", "health")]


async def test_a_canary_down_written_as_a_reload_removes_its_pair_is_not_left_firing(
        sim: SimServer, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The third failed run ends as a reload removes its pair: its canary.down, written after the reload looked
    for the pair's alerts to resolve, was left firing (for a pair no longer monitored), and with the pair added
    back still failing a second canary.down followed it. Now written in turn with that look: resolved by it, or
    not sent at all (the pair is no longer monitored)."""
    with Receiver() as rx:
        cfg = config_path(tmp_path, sim, store_url, rx)
        without = two_targets(cfg, sim)
        full = cfg.read_text()
        app = await started(cfg)
        try:
            await runs(app, 4)
            phase(sim, "down")
            await runs(app, 2)
            assert app.alerting is not None
            publish = app.alerting.publish

            async def removed_meanwhile(events: list[AlertEvent]) -> list[Notification]:
                if any(e.kind == "canary.down" for e in events):  # the reload runs while this run's job writes
                    cfg.write_text(without)
                    assert (await app.reload())[0]
                return await publish(events)

            monkeypatch.setattr(app.alerting, "publish", removed_meanwhile)
            await runs(app, 1)
            monkeypatch.undo()
            assert told(rx) in ([], [("canary.down", "health"), ("canary.recovered", "health")])
            assert app.alerting.open_pairs("canary.down") == set()
            cfg.write_text(full)
            assert (await app.reload())[0]
            await runs(app, 3)  # back, still failing
        finally:
            await app.stop()
        downs = [kind for kind, _ in told(rx) if kind.startswith("canary.")]
        assert downs[-1] == "canary.down"
        assert all(a != b for a, b in zip(downs, downs[1:], strict=False)), downs  # down and recovered take turns


async def test_a_canary_down_written_while_its_pair_is_retired_is_resolved(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reload removes a pair while its run's job writes canary.down on another thread: the reload's look for the
    alerts to resolve and that write take turns (a look made while the write was under way missed it, and the
    pair no longer monitored was left down: added back still failing, it was paged down twice in a row)."""
    al = alerting(store)
    holding, proceed = threading.Event(), threading.Event()
    al.inhibitor.lock = _Contended(proceed)  # type: ignore[assignment]
    apply, looked = al.inhibitor.apply, al.outbox.open_alerts

    def writing(session: object, out: list, now: datetime) -> None:  # type: ignore[type-arg]
        apply(session, out, now)
        holding.set()
        proceed.wait()  # until the retire waits for the lock, or looks without it

    def look() -> list:  # type: ignore[type-arg]
        alerts = looked()
        proceed.set()  # looked: the write may end now
        return alerts

    monkeypatch.setattr(al.inhibitor, "apply", writing)
    monkeypatch.setattr(al.outbox, "open_alerts", look)
    writer = threading.Thread(target=al._write, args=(al.notifications(down()),))
    writer.start()
    holding.wait()
    await al.retire([])
    writer.join()
    monkeypatch.undo()
    assert al.open_pairs("canary.down") == set()
    assert [n.kind for n in al.outbox.query(limit=100) if n.sink == "hook"] == ["canary.down", "canary.recovered"]
