"""`baseline accept` from the CLI writes two transactions: the open events' end (with their notifications), then
the new baseline. The daemon's 30 s upkeep may look between them: an event it holds open that the store has ended
must not be let go before the baseline that ended it is installed, else the daemon's next call, judged against the
old baseline, opens the change the operator just accepted again (a new page after "accepted")."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from monitor.analysis import Analysis
from monitor.commands.drift import open_analysis
from monitor.operator_baselines import accept_observations
from monitor.sim import SimServer
from tests.support.drift_app import PROBES_C1, started_app, through_change, two_phases


async def test_an_event_accepted_from_the_cli_is_not_let_go_before_its_baseline_is_installed(
        tmp_path: Path) -> None:
    with SimServer(two_phases("accept-race", 7, verbosity=4.0)) as sim:
        app, cfg_path, canary, target = await started_app(tmp_path, sim, PROBES_C1, "{baseline_size: 10, disabled_signals: [latency_s, ttft_s]}")
        try:
            await through_change(app, sim, canary, target, before=12, after=8)
            daemon: Analysis = app.analysis  # type: ignore[assignment]
            await daemon.drain()
            accepted = {e.id for e in daemon.engine.events(state="open")}
            assert accepted
            _, cli = open_analysis(str(cfg_path))
            rows = list(reversed(cli.store.observations(canary="c1", target="t", limit=10)))
            cli.restore([("c1", "t")])
            deferred: list[Any] = []
            save = cli.repo.save_baseline
            cli.repo.save_baseline = lambda *a, **k: deferred.append((a, k))  # type: ignore[method-assign]
            try:
                accept_observations(cli, "c1", "t", rows, "intended")  # its first transaction: the events' end
            finally:
                cli.close()
            # the daemon's upkeep looks between the two transactions
            await daemon.in_worker(daemon.refresh_baselines)
            await daemon.in_worker(daemon.close_ended)
            for _ in range(3):
                await app.runner.run(canary, target)
            (args, kwargs), = deferred
            save(*args, **kwargs)  # its second: the new baseline
            cli.store.close()
            await daemon.in_worker(daemon.refresh_baselines)  # the next upkeep round
            await daemon.in_worker(daemon.close_ended)
            for _ in range(3):
                await app.runner.run(canary, target)
            await daemon.drain()
        finally:
            await app.stop()
    with sqlite3.connect(tmp_path / "m.db") as db:
        states = db.execute("SELECT id, state FROM drift_events").fetchall()
    assert {i for i, s in states if s == "accepted"} == accepted
    assert [i for i, s in states if s == "open"] == [], states
