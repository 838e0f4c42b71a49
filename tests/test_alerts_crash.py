"""Notifications pending when the process is SIGKILLed are delivered after a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.alerts import AlertsConfig, build_alerting
from monitor.domain import utcnow
from monitor.store import Store
from tests.support.prom import free_port
from tests.support.receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import asyncio, sys
from monitor.alerts import AlertEvent, AlertsConfig, build_alerting
from monitor.store import Store

db, url, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = Store(f"sqlite:///{db}")
store.migrate()
# group_wait 0: drift.opened rows are due at once (not after the default 30 s), so the first attempts come soon
cfg = AlertsConfig.model_validate({"group_wait": 0, "retry": {"initial": "1s", "max": "2s"}, "sinks": [
    {"name": "hook", "type": "webhook", "url": url, "secret_env": "HOOK_SECRET"}]})

async def main():
    al = build_alerting(cfg, store, environ={"HOOK_SECRET": sys.argv[4]}, poll_interval=0.05)
    await al.publish([AlertEvent(kind="drift.opened", canary=f"c{i}", target="t", signal="s", event_id=f"e{i}")
                      for i in range(count)])
    await al.start()
    while not all(n.attempts > 0 for n in al.outbox.list_pending()):
        await asyncio.sleep(0.05)
    print("attempted", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def config(url: str) -> AlertsConfig:
    return AlertsConfig.model_validate({"sinks": [
        {"name": "hook", "type": "webhook", "url": url, "secret_env": "HOOK_SECRET"}]})


@pytest.mark.slow
async def test_pending_notifications_survive_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    port = free_port()  # nothing listens there yet: the receiver is down
    script = tmp_path / "sender.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(db), f"http://127.0.0.1:{port}/hook", "5", SECRET],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = proc.stdout.readline() if proc.stdout else b""
        assert line.strip() == b"attempted", proc.stderr.read().decode() if proc.stderr else ""
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    store = Store(f"sqlite:///{db}")
    store.migrate()
    later = utcnow() + timedelta(minutes=10)  # past every backoff and lease the killed process left behind
    with Receiver(secret=SECRET, port=port, now=later.timestamp) as rx:  # its clock moved on too
        al = build_alerting(config(rx.url + "/hook"), store, environ={"HOOK_SECRET": SECRET},
                            now=lambda: later)
        assert al.outbox.pending_count() == 5
        res = await al.sender.flush()
        await al.stop()
    store.close()
    assert res.delivered == 5
    assert sorted(r.json["data"]["canary"] for r in rx.delivered) == [f"c{i}" for i in range(5)]
    assert all(r.verify_error == "" for r in rx.delivered)
