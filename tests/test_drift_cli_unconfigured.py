"""Ending the open drift events of a pair the configuration no longer has (`drift`: `open (not configured)`) with
`baseline reset` and `accept`, on both stores, and what a running daemon then makes of them."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlmodel import Session

from monitor.alerts.outbox import Outbox, enqueue
from monitor.alerts.policy import plan
from monitor.app import App
from monitor.config import load_config
from monitor.drift import EventUpdate
from monitor.drift.events import DriftEvent
from monitor.drift_alerts import alert_event
from monitor.store import Store
from monitor.store.drift_repo import DriftRepository
from tests.conftest import write_config
from tests.support.inprocess import Cli
from tests.test_store_contract import T0, obs

TARGET = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}"
ALERTS = "alerts: {group_wait: 0s, sinks: [{name: hook, type: webhook, url: 'http://127.0.0.1:9/h'}]}\n"


def canaries(*ids: str) -> str:
    return "canaries:\n" + "".join(f"  - id: {c}\n    messages: [{{role: user, content: hi}}]\n" for c in ids)


def event(canary: str, target: str, signal: str) -> DriftEvent:
    return DriftEvent(canary=canary, target=target, signal=signal, kind="behaviour", test="mann_whitney",
                      baseline_value=100.0, current_value=150.0, effect_size=0.5, statistic=None, p_value=1e-6,
                      threshold=None, baseline_n=30, current_n=20, first_obs_id="o1", first_obs_at=T0.isoformat(),
                      opened_at=(T0 + timedelta(minutes=3)).isoformat())


def stored(store: Store, config: Any) -> dict[tuple[str, str, str], str]:
    """Open events of `gone` (a canary since removed) and of `c1` against `u` (a target since removed), each
    pair's answers since the change, and one firing alert still open at the sink (the daemon has not reloaded
    since `gone`'s signal output_chars fired: its other alerts were resolved by the removal); return the ids."""
    events = [event("gone", "t", "output_chars"), event("gone", "t", "latency_s"), event("c1", "u", "output_chars")]
    DriftRepository(store.engine).save_events([e.to_json() for e in events])
    for i in range(8):
        store.save_observation(obs(i, canary="gone", target="t"))
        store.save_observation(obs(i, canary="c1", target="u"))
    firing = plan(alert_event(EventUpdate("opened", events[0]), ()), config.alerts, T0, {}).notifications
    with Session(store.engine) as s:
        enqueue(s, firing)
        s.commit()
    return {(e.canary, e.target, e.signal): e.id for e in events}


def states(store: Store) -> dict[tuple[str, str, str], str]:
    return {(e["canary"], e["target"], e["signal"]): e["state"] for e in DriftRepository(store.engine).events()}


def test_baseline_reset_and_accept_end_the_open_events_of_a_pair_no_longer_configured(
        tmp_path: Path, store: Store, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """An operator removed a canary (and a target) with events open: `drift` showed them `open (not configured)`,
    and `baseline` refused the pair ("no canary 'gone' in the configuration"): only adding it back ended them."""
    cfg = write_config(tmp_path, TARGET, canaries("c1"), extra=ALERTS)
    cfg.write_text(cfg.read_text().replace(f"sqlite:///{tmp_path / 'm.db'}", store_url))
    ids = stored(store, load_config(cfg, environ={}))
    cli = Cli(capsys)

    code, out, err = cli("baseline", "reset", "gone", "-c", str(cfg), "--note", "canary retired")
    assert code == 0, err
    assert "gone @ t is not in the configuration" in out and "2 open event(s) resolved" in out, out
    assert states(store) == {("gone", "t", "output_chars"): "resolved", ("gone", "t", "latency_s"): "resolved",
                             ("c1", "u", "output_chars"): "open"}
    [reset] = DriftRepository(store.engine).baselines(canary="gone", target="t")
    assert (reset["source"], reset["note"]) == ("reset", "canary retired")
    # the end goes where the alert still fires, and nowhere else (latency_s fires nowhere: as once the removal's
    # reload resolved it)
    ends = [(n.sink, n.kind, n.signal) for n in Outbox(store.engine).newest_states() if n.kind != "drift.opened"]
    assert ends == [("hook", "drift.resolved", "output_chars")]
    [end] = [n for n in Outbox(store.engine).newest_states() if n.kind == "drift.resolved"]
    assert end.payload["event_id"] == ids[("gone", "t", "output_chars")]

    code, out, err = cli("baseline", "accept", "c1", "--target", "u", "-c", str(cfg), "--note", "moved off u")
    assert code == 0, err
    assert "c1 @ u: current behaviour accepted as the baseline (8 observations); 1 open event(s)" in out, out
    assert states(store)[("c1", "u", "output_chars")] == "accepted"
    [accepted] = DriftRepository(store.engine).baselines(canary="c1", target="u")
    assert accepted["source"] == "accepted" and accepted["data"]["count"] == 8

    # a name neither configured nor stored is still an error naming it and the known ones
    code, _, err = cli("baseline", "reset", "gonne", "-c", str(cfg))
    assert code == 2 and err.strip() == ("error: no canary 'gonne' in the configuration or in any stored drift "
                                         "event or baseline (known: gone, c1)"), err
    code, _, err = cli("baseline", "accept", "gone", "--target", "v", "-c", str(cfg))
    assert code == 2 and ("no target 'v' for canary 'gone' in the configuration or in its stored drift events and "
                          "baselines (known: t)") in err, err
    # a configured canary without --target reaches its configured targets only, as before
    code, out, err = cli("baseline", "reset", "c1", "-c", str(cfg))
    assert code == 0 and "c1 @ t:" in out and "c1 @ u" not in out, out + err


async def test_a_running_daemon_lets_go_of_the_events_ended_and_does_not_page_them_when_the_pair_is_back(
        tmp_path: Path, store: Store, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The daemon holds the open events of a pair it does not watch: once `baseline` ended them it must let go, or
    adding the pair back would show them open again (the gauge at 1) and page them."""
    cfg = write_config(tmp_path, TARGET, canaries("c1"), extra=ALERTS)
    cfg.write_text(cfg.read_text().replace(f"sqlite:///{tmp_path / 'm.db'}", store_url))
    stored(store, load_config(cfg, environ={}))
    registry = CollectorRegistry()
    app = App(load_config(cfg, environ={}), registry=registry, environ={}, serve_http=False)
    await app.start(schedule=False)
    try:
        analysis = app.analysis
        assert analysis is not None and app.alerting is not None
        assert len(analysis.engine.events(canary="gone", state="open")) == 2  # held open, nothing watching it
        assert registry.get_sample_value("llm_monitor_drift_active", {"canary": "gone", "target": "t",
                                                                      "signal": "output_chars"}) is None
        code, _, err = Cli(capsys)("baseline", "reset", "gone", "-c", str(cfg))
        assert code == 0, err
        for _ in range(2):  # the daemon's 30-second look, twice (`watch_baselines`)
            await analysis.in_worker(analysis.refresh_baselines)
            await analysis.in_worker(analysis.close_ended)
        assert analysis.engine.events(canary="gone", state="open") == []
        opened = len([n for n in app.alerting.outbox.newest_states() if n.kind == "drift.opened"])
        (tmp_path / "probes" / "p.yaml").write_text(canaries("c1", "gone"))
        ok, message = await app.reload()  # the pair is back: its ended events neither show nor page
        assert ok, message
        await analysis.drain()
        assert registry.get_sample_value("llm_monitor_drift_active", {"canary": "gone", "target": "t",
                                                                      "signal": "output_chars"}) == 0
        assert len([n for n in app.alerting.outbox.newest_states() if n.kind == "drift.opened"]) == opened
        assert DriftRepository(store.engine).events(canary="gone", state="open", limit=None) == []
    finally:
        await app.stop()


def test_reset_and_accept_of_a_configured_canary_name_the_targets_no_longer_configured_its_open_events_are_on(
        tmp_path: Path, store: Store, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`baseline reset c1` reaches c1's configured targets only: its events still open on a target since removed
    stayed open, with nothing said; a hint now names those targets and --target (and changes nothing)."""
    cfg = write_config(tmp_path, TARGET, canaries("c1"), extra=ALERTS)
    cfg.write_text(cfg.read_text().replace(f"sqlite:///{tmp_path / 'm.db'}", store_url))
    stored(store, load_config(cfg, environ={}))
    DriftRepository(store.engine).save_events([event("c1", "v", "latency_s").to_json()])
    for i in range(8):
        store.save_observation(obs(i, canary="c1", target="t"))
    cli = Cli(capsys)
    hint = ("hint: c1 also has open drift events on u, v (no longer configured; left open): `baseline reset c1 "
            "--target u` ends them (a target a run)")
    code, out, err = cli("baseline", "reset", "c1", "-c", str(cfg))
    assert code == 0, err
    assert hint in " ".join(out.split()), out
    assert "c1 @ u" not in out and states(store)[("c1", "u", "output_chars")] == "open"  # what it does: unchanged
    for args in (["--target", "t"], ["--target", "u"]):  # a target named: no hint
        code, out, err = cli("baseline", "reset", "c1", *args, "-c", str(cfg))
        assert code == 0 and "hint:" not in out, out + err
    code, out, err = cli("baseline", "accept", "c1", "-c", str(cfg))
    assert code == 0, err
    assert ("hint: c1 also has open drift events on v (no longer configured; left open): `baseline accept c1 "
            "--target v` ends them A running daemon") in " ".join(out.split()), out


def test_a_configured_canary_left_without_a_configured_target_reaches_a_stored_one_only_when_named(
        tmp_path: Path, store: Store, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A canary still configured but whose targets all left the file: `baseline reset c1` reset every target of
    its stored events and baselines, though a configured canary's run reaches its configured targets only (a removed
    canary's, every stored one); it now refuses, naming them and --target, and changes nothing."""
    listed = TARGET.replace("model: m}", "model: m, canaries: listed}")
    cfg = write_config(tmp_path, listed, canaries("c1"), extra=ALERTS)
    cfg.write_text(cfg.read_text().replace(f"sqlite:///{tmp_path / 'm.db'}", store_url))
    assert load_config(cfg, environ={}).pairs() == []
    DriftRepository(store.engine).save_events([event("c1", "t", "output_chars").to_json()])
    cli = Cli(capsys)
    code, out, err = cli("baseline", "reset", "c1", "-c", str(cfg))
    assert code == 2, out + err
    assert " ".join(err.split()) == ("error: canary 'c1' runs against no configured target; its stored drift events "
                                     "and baselines are of t (no longer configured): name one with --target"), err
    assert states(store) == {("c1", "t", "output_chars"): "open"}
    code, out, err = cli("baseline", "reset", "c1", "--target", "t", "-c", str(cfg))
    assert code == 0 and "c1 @ t is not in the configuration" in out, out + err
    assert states(store) == {("c1", "t", "output_chars"): "resolved"}


def test_drift_shows_an_open_event_of_a_check_its_canary_no_longer_has_as_not_configured(
        tmp_path: Path, store: Store, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A check removed from a canary still configured leaves its drift event open (as a removed pair does): `drift`
    showed it `open` and `--json` `configured: true`, as if something still watched it."""
    probes = canaries("c1") + "    checks: [{type: contains, value: hi, name: kept}]\n"
    cfg = write_config(tmp_path, TARGET, probes)
    cfg.write_text(cfg.read_text().replace(f"sqlite:///{tmp_path / 'm.db'}", store_url))
    events = [event("c1", "t", "check:kept"), event("c1", "t", "check:gone"), event("c1", "t", "output_chars")]
    DriftRepository(store.engine).save_events([e.to_json() for e in events])
    cli = Cli(capsys)
    code, out, err = cli("drift", "--json", "-c", str(cfg))
    assert code == 0, err
    assert {json.loads(line)["signal"]: json.loads(line)["configured"] for line in out.splitlines()} == \
        {"check:kept": True, "check:gone": False, "output_chars": True}
    code, out, err = cli("drift", "-c", str(cfg))
    assert code == 0, err
    [row] = [line for line in out.splitlines() if "check:gone" in line]
    assert "open (not configured)" in row
    assert all("not configured" not in line for line in out.splitlines() if "check:kept" in line)


def test_baseline_reset_ends_a_removed_checks_event_only_where_its_alert_still_fires(
        tmp_path: Path, store: Store, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The reload that removed a check ended its drift alert at the sinks ("no longer monitored"); `baseline reset`
    of its canary then sent that end again, routed as any event of a configured pair, where a removed pair's end goes
    only to the sinks still told its alert fires (a daemon not reloaded since the check left the file)."""
    cfg = write_config(tmp_path, TARGET, canaries("c1"), extra=ALERTS)
    cfg.write_text(cfg.read_text().replace(f"sqlite:///{tmp_path / 'm.db'}", store_url))
    config = load_config(cfg, environ={})
    retired, firing = event("c1", "t", "check:retired"), event("c1", "t", "check:firing")
    DriftRepository(store.engine).save_events([retired.to_json(), firing.to_json()])
    rows = [n for e in (retired, firing) for n in plan(alert_event(EventUpdate("opened", e), ()), config.alerts, T0,
                                                       {}).notifications]
    ended = alert_event(EventUpdate("resolved", retired), ())  # as the reload's retire ended it
    rows += plan(ended, config.alerts, T0 + timedelta(minutes=1), {}).notifications
    with Session(store.engine) as s:
        enqueue(s, rows)
        s.commit()
    code, out, err = Cli(capsys)("baseline", "reset", "c1", "-c", str(cfg))
    assert code == 0, err
    assert states(store) == {("c1", "t", "check:retired"): "resolved", ("c1", "t", "check:firing"): "resolved"}
    ends = sorted(n.signal for n in Outbox(store.engine).query() if n.kind == "drift.resolved")
    assert ends == ["check:firing", "check:retired"]  # one end each: the retired one's was there already
