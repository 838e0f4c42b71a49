"""The daemon stops, within a bound, on a PostgreSQL store that stopped answering mid-run.

The `llm-monitor run` command on a real server behind a relay that freezes (tests/support/frozen.py): its runs'
writes wait on connections the server will never answer, which no timeout of the server's ends. A SIGTERM then
never ended the process (Python waits for worker threads as it exits), nor did a second one.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from monitor.sim import SimServer
from tests.support.daemon import Daemon, free_port
from tests.support.frozen import FrozenRelay

PROBES = """\
canaries:
  - id: c1
    messages: [{role: user, content: "How do I kill a Python process?"}]
    samples: 1
    schedule: {every: 1s}
"""
# `llm-monitor` with the shutdown's slack (STOP_SLACK_S, 30 s past the held writes' last try) cut to 5 s: the
# shutdown here waits on the frozen store for good, so the exit watch ends it however long its bound, and waiting
# out the 30 s checked nothing more (test_shutdown_bound checks the bound's terms).
SLACK_S = 5.0
SHORT_SLACK = [sys.executable, "-c", "import sys; import monitor.commands.run as run; "
               f"run.STOP_SLACK_S = {SLACK_S}; from monitor.cli import entry; entry()"]


@pytest.mark.slow
def test_sigterm_ends_the_daemon_with_a_store_that_stopped_answering(tmp_path: Path, pg_url: str,
                                                                     steady_sim: SimServer) -> None:
    u = make_url(pg_url)
    (tmp_path / "probes").mkdir()
    (tmp_path / "probes" / "p.yaml").write_text(PROBES)
    port = free_port()
    with FrozenRelay((u.host or "127.0.0.1", u.port or 5432)) as relay:
        store = u.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
        cfg = tmp_path / "monitor.yaml"
        cfg.write_text(f"targets: [{{id: gpt, provider: openai, base_url: '{steady_sim.openai_base_url}', "
                       f"model: sim-gpt, api_key_env: K}}]\nprobes: [./probes]\nstorage: {{url: '{store}'}}\n"
                       f"http: {{listen: '127.0.0.1:{port}'}}\ndaemon: {{grace_period: 1, max_start_delay: 0}}\n")
        d = Daemon(cfg, port, env={"K": "k"}, exe=SHORT_SLACK)
        try:
            d.wait_ready()
            relay.freeze()
            time.sleep(3)  # a run's write, or several, now waits on the frozen server
            started = time.monotonic()
            d.signal(signal.SIGTERM)
            try:
                code = d.wait(timeout=150)  # bounded at 1 + 10 + SLACK_S s; it never ended
            except subprocess.TimeoutExpired:
                pytest.fail(f"the daemon did not exit within 150 s of SIGTERM:\n{d.log[-3000:]}")
            assert code == 1
            assert time.monotonic() - started < 150
        finally:
            d.stop()
            if d.proc.poll() is None:
                d.proc.kill()
    assert f'"exits_within_s": {1 + 10 + SLACK_S}' in d.log  # the shortened bound is the one in force
    assert "exiting anyway, abandoning" in d.log
    assert "monitor/store/" in d.log  # where the abandoned threads wait: the store's code
