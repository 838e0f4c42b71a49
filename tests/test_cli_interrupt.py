"""Ctrl-C or SIGTERM during a CLI command ends it with one line and exit 130 or 143, not a traceback, and `probe`
stores its calls in flight as cancelled.

Found by walkthrough: Ctrl-C while `probe` waited for an answer printed KeyboardInterrupt's traceback through
asyncio's runner; SIGTERM (`timeout 60 llm-monitor probe`, a CI job cancelled) killed it outright, its runs left
`running` in the store and the calls in flight not stored at all. Started in the background by a script (SIGINT
ignored), a SIGTERM was raised wherever the program was, inside asyncio or not: the call in flight was not stored.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.support.daemon import EXE

PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n"


@pytest.mark.parametrize(("sig", "code", "said", "sigint"), [
    (signal.SIGINT, 130, "interrupted", signal.SIG_DFL),
    (signal.SIGTERM, 143, "terminated", signal.SIG_DFL),
    (signal.SIGTERM, 143, "terminated", signal.SIG_IGN),  # started in the background by a shell: Ctrl-C ignored
])
def test_a_signal_while_probe_waits_for_an_answer(tmp_path: Path, sig: int, code: int, said: str,
                                                  sigint: signal.Handlers) -> None:
    with socket.socket() as server:  # takes the call and never answers it
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(120)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/v1"
        cfg = write_config(tmp_path, f"  - {{id: t, provider: openai, base_url: '{url}', model: m}}", PROBES)
        proc = subprocess.Popen([*EXE, "probe", "-c", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=os.environ.copy(),
                                preexec_fn=lambda: signal.signal(signal.SIGINT, sigint))
        try:
            conn, _ = server.accept()  # the call is in flight
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=120)
            conn.close()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == code, (out, err)
    assert err.strip() == said and "Traceback" not in err, err
    with sqlite3.connect(tmp_path / "m.db") as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [("cancelled",)]  # not left `running`
        # the command's task is cancelled, as asyncio's runner cancels it on Ctrl-C: the call is stored as cancelled
        assert db.execute("SELECT error_type FROM observations").fetchall() == [("cancelled",)]


# Ctrl-C pressed while the CLI loads: raised as the Nth module imported after monitor.cli begins starts to load,
# the CLI started as the console script (`llm-monitor`) or as `python -m monitor.cli` starts it
CTRL_C_WHILE_LOADING = """
import runpy, sys

class CtrlC:
    def __init__(self, n):
        self.left, self.armed = n, False

    def find_spec(self, name, path=None, target=None):
        if name == "monitor.cli":
            self.armed = True
        elif self.armed:
            self.left -= 1
            if self.left == 0:
                raise KeyboardInterrupt
        return None

n, how = int(sys.argv.pop(1)), sys.argv.pop(1)
sys.meta_path.insert(0, CtrlC(n))
sys.argv[0] = "llm-monitor"
if how == "script":
    from monitor.cli import entry
    entry()
else:
    runpy.run_module("monitor.cli", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("how", ["script", "-m"])
@pytest.mark.parametrize("n", [1, 2, 10, 100])
def test_ctrl_c_while_the_cli_loads_its_modules(tmp_path: Path, how: str, n: int) -> None:
    """Found by walkthrough: Ctrl-C in the first tenth of a second of a command (monitor.cli importing argparse, its
    logging and errors modules, before its handler was in place) printed KeyboardInterrupt's traceback. Only what
    the interpreter loads before monitor.cli (its start-up, runpy) is left outside the handler."""
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}", PROBES)
    done = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_LOADING, str(n), how, "check-config", "-c", str(cfg)],
                          capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert (done.returncode, done.stderr.strip()) == (130, "interrupted"), done.stdout + done.stderr


SIGTERM_BEFORE_THE_COMMAND_STARTS = """
import asyncio, signal, sys
from monitor.commands.common import run_terminable

def as_the_cli(signum, frame):
    raise KeyboardInterrupt
signal.signal(signal.SIGTERM, as_the_cli)
run = asyncio.Runner.run
def landing_first(self, coro, **kw):  # the SIGTERM lands in the runner, before the command's task has begun
    signal.raise_signal(signal.SIGTERM)
    return run(self, coro, **kw)
asyncio.Runner.run = landing_first

async def command():
    print("ran")
try:
    run_terminable(command())
except KeyboardInterrupt:
    print("terminated")
"""


def test_sigterm_before_the_probe_command_begins() -> None:
    """Found by walkthrough: a SIGTERM in the instant between `probe` setting up its loop and its task taking its first
    step ended it as it should (exit 143), but Python then printed two "coroutine ... was never awaited"
    RuntimeWarnings: the command's coroutine, made and never run, was left to the collector."""
    done = subprocess.run([sys.executable, "-W", "default", "-c", SIGTERM_BEFORE_THE_COMMAND_STARTS],
                          capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert (done.returncode, done.stdout.strip(), done.stderr.strip()) == (0, "terminated", ""), done.stderr
