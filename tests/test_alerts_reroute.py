"""Routes changed by a reload while an alert fires: a sink that was paged is told its end too, though its routes no
longer name it (else its page never resolves: a webhook receiver's incident stays open, Alertmanager gets it re-sent
for ever). The daemon in-process on the simulator with real local receivers, and the alerting layer alone, over
SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.alerts import AlertsConfig
from monitor.sim import SimServer
from monitor.store import Store
from tests.support.receiver import Receiver
from tests.test_alerts_inhibit import alerting, drift, write
from tests.test_alerts_outage import config_path, phase, runs, sim, started, told  # noqa: F401 (fixture)


async def test_a_sink_paged_before_a_route_change_gets_the_recovery(
        sim: SimServer, store_url: str, tmp_path: Path) -> None:  # noqa: F811
    """canary.down went to `pager`; a reload sends the canary's alerts to `hook` from then on. The recovery went to
    `hook` alone, and `pager` was left with a canary down for good."""
    with Receiver() as rx, Receiver() as pager:
        cfg = config_path(tmp_path, sim, store_url, rx)
        sinks = f'  sinks: [{{name: hook, type: webhook, url: "{rx.url}/hook"}}]\n'
        before = cfg.read_text().replace(sinks, f"""\
  sinks:
    - {{name: hook, type: webhook, url: "{rx.url}/hook"}}
    - {{name: pager, type: webhook, url: "{pager.url}/hook"}}
  routes: [{{match: {{kind: ["canary.*"]}}, sinks: [pager]}}]
""")
        assert before != cfg.read_text()
        cfg.write_text(before)
        app = await started(cfg)
        try:
            await runs(app, 4)
            phase(sim, "down")
            await runs(app, 3)
            assert told(pager) == [("canary.down", "health")] and told(rx) == []
            cfg.write_text(before.replace("sinks: [pager]", "sinks: [hook]"))
            assert (await app.reload())[0]
            phase(sim, "up")
            await runs(app, 3)
        finally:
            await app.stop()
        assert told(pager) == [("canary.down", "health"), ("canary.recovered", "health")]


async def test_a_drift_end_goes_where_its_opening_went(store: Store) -> None:
    al = alerting(store, routes=[{"match": {"kind": ["drift.*"]}, "sinks": ["hook"]}])
    write(al, drift(signal="refused"))
    cfg = al.cfg.model_dump()
    cfg["routes"] = [{"match": {"kind": ["drift.*"]}, "sinks": ["am"]}]
    al.reload(AlertsConfig.model_validate(cfg), environ={})
    write(al, drift("drift.resolved", signal="refused"))
    assert sorted((n.sink, n.kind) for n in al.outbox.query(limit=100)) == [
        ("am", "drift.resolved"), ("hook", "drift.opened"), ("hook", "drift.resolved")]


@pytest.mark.parametrize("how", ["reload", "restart"])
async def test_a_sink_routed_to_a_canary_while_it_is_down_is_told_it_is_down_before_its_recovery(
        sim: SimServer, store_url: str, tmp_path: Path, how: str) -> None:  # noqa: F811
    """A reload (or a restart) routes the canary's alerts to `pager` too while it is down: `pager` got
    canary.recovered of an outage it never heard of. Told it is down as it is routed (as Alertmanager tells a
    receiver added while an alert fires), its recovery ends a page it has."""
    with Receiver() as rx, Receiver() as pager:
        cfg = config_path(tmp_path, sim, store_url, rx)
        sinks = f'  sinks: [{{name: hook, type: webhook, url: "{rx.url}/hook"}}]\n'
        before = cfg.read_text().replace(sinks, f"""\
  sinks:
    - {{name: hook, type: webhook, url: "{rx.url}/hook"}}
    - {{name: pager, type: webhook, url: "{pager.url}/hook"}}
  routes: [{{match: {{kind: ["canary.*"]}}, sinks: [hook]}}]
""")
        cfg.write_text(before)
        app = await started(cfg)
        try:
            await runs(app, 4)
            phase(sim, "down")
            await runs(app, 3)
            assert told(rx) == [("canary.down", "health")] and told(pager) == []
            cfg.write_text(before.replace("sinks: [hook]", "sinks: [hook, pager]"))
            if how == "reload":
                assert (await app.reload())[0]
            else:
                await app.stop()
                app = await started(cfg)
            await runs(app, 1)  # still down: no second canary.down anywhere
            assert told(pager) == [("canary.down", "health")] and told(rx) == [("canary.down", "health")]
            phase(sim, "up")
            await runs(app, 3)
        finally:
            await app.stop()
        assert told(pager) == [("canary.down", "health"), ("canary.recovered", "health")]
        assert told(rx) == [("canary.down", "health"), ("canary.recovered", "health")]
        first, again = (next(m.json["data"] for m in r.delivered if m.json["type"] == "canary.down") for r in (rx, pager))
        assert again["opened_at"] == first["opened_at"] and again["summary"] == first["summary"]


async def test_a_sink_removed_while_its_canary_was_down_does_not_page_its_successor_after_the_recovery(
        sim: SimServer, store_url: str, tmp_path: Path) -> None:  # noqa: F811
    """`hook` was told canary.down and removed across a restart; `pager`, which replaced it, was told the canary is
    down, then that it recovered. `hook`'s canary.down stays its last word in the outbox (nothing is sent to a sink
    no longer configured): read as "still down" at the next restart, it paged `pager` for an outage long over."""
    with Receiver() as rx, Receiver() as pager:
        cfg = config_path(tmp_path, sim, store_url, rx)
        sinks = f'  sinks: [{{name: hook, type: webhook, url: "{rx.url}/hook"}}]\n'
        replaced = cfg.read_text().replace(sinks, f'  sinks: [{{name: pager, type: webhook, url: "{pager.url}/hook"}}]\n')
        app = await started(cfg)
        try:
            await runs(app, 4)
            phase(sim, "down")
            await runs(app, 3)
            assert told(rx) == [("canary.down", "health")]
            await app.stop()
            cfg.write_text(replaced)
            app = await started(cfg)
            phase(sim, "up")
            await runs(app, 3)
            assert told(pager) == [("canary.down", "health"), ("canary.recovered", "health")]
            await app.stop()
            app = await started(cfg)
            await runs(app, 1)
        finally:
            await app.stop()
        assert told(pager) == [("canary.down", "health"), ("canary.recovered", "health")]
        assert told(rx) == [("canary.down", "health")]
