"""A replica that lost the leader lock sends no more notifications: the next leader sends what waits."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from monitor.alerts import AlertsConfig, build_alerting
from monitor.alerts.outbox import Outbox
from monitor.domain import utcnow
from monitor.sim import SimServer
from monitor.store import Store
from tests.support.receiver import Receiver
from tests.test_alerts_inhibit import down, write
from tests.test_alerts_outage import config_path, sim, started  # noqa: F401 (fixture)


async def test_a_leader_that_lost_the_lock_claims_and_sends_no_more_notifications(
        sim: SimServer, tmp_path: Path) -> None:  # noqa: F811
    """Found by review: a leader that lost the lock went on claiming and sending the outbox through its shutdown (its
    calls' grace, up to 60 s for its held writes) beside the new leader. Claims are leases counted on each host's
    clock (~35 s), so with the two clocks a lease apart, each sent rows the other had claimed: twice to the
    receiver. It now claims nothing once the lock is lost; the row waits, due, for the next leader."""
    with Receiver() as rx:
        app = await started(config_path(tmp_path, sim, f"sqlite:///{tmp_path / 'm.db'}", rx))
        assert app.alerting is not None
        try:
            app.succession._lost_leadership()  # the watch's check failed: the lock's session is gone
            write(app.alerting, down())  # a canary.down the analysis wrote just before
            assert (await app.alerting.sender.flush()).delivered == 0
        finally:
            await app.stop()
        assert rx.delivered == []
        # not leased by the old leader: the next one's first claim takes it
        claimed, _ = Outbox(app.store.engine).claim(utcnow() + timedelta(seconds=1), lease=35.0)
        assert [n.kind for n in claimed] == ["canary.down"]


async def test_a_sender_fenced_while_the_alerting_starts_is_not_started_again(sqlite_store: Store) -> None:
    """Found by review: the lock lost during a take-over's `Alerting.start` (its outbox reads, a retire) fenced the
    sender, and the start's last step, `Sender.start`, undid the fence: the replica claimed and sent the outbox
    through its shutdown beside the new leader, as before the fence."""
    with Receiver() as rx:
        cfg = AlertsConfig.model_validate({"sinks": [{"name": "hook", "type": "webhook", "url": rx.url}]})
        al = build_alerting(cfg, sqlite_store, environ={})
        al.sender.fence()  # `Succession._lost_leadership`, while `start` awaited its reads
        await al.start([])
        write(al, down())
        try:
            assert (await al.sender.flush()).delivered == 0
            await asyncio.sleep(0.2)  # the background loops, had they started
        finally:
            await al.stop()
        assert rx.delivered == []
