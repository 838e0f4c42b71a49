"""Run the real `llm-monitor` command as a subprocess, as users do."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

EXE = [sys.executable, "-m", "monitor.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def clis(*commands: tuple[str, ...], env: dict[str, str] | None = None,
         timeout: float = 120) -> list[subprocess.CompletedProcess[str]]:
    """Run several `llm-monitor` commands at once (each as `cli` runs it); return them finished, in order. For
    commands that only read: each waits seconds on its imports, which the others can use."""
    procs = [subprocess.Popen([*EXE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **(env or {})}) for args in commands]
    done = []
    try:
        for args, proc in zip(commands, procs, strict=True):
            out, err = proc.communicate(timeout=timeout)
            done.append(subprocess.CompletedProcess([*EXE, *args], proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return done


class Daemon:
    """`llm-monitor run -c CONFIG` in the background, with its log captured to a file.

    `args` go after `run` (and before `-c`'s value: `--web.config.file`, `--log-level` is global); `scheme` and
    `client` (httpx arguments: verify, cert, auth) are how `wait_ready` and `get` reach a TLS or basic-auth
    listener; `exe` is the command that takes `run` (default: `python -m monitor.cli`)."""

    def __init__(self, config: Path, port: int, env: dict[str, str] | None = None, *, args: tuple[str, ...] = (),
                 scheme: str = "http", client: dict[str, Any] | None = None, log_level: str | None = None,
                 exe: list[str] = EXE):
        self.port = port
        self.log_path = config.parent / f"daemon-{port}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115
        level = ["--log-level", log_level] if log_level else []
        self.proc = subprocess.Popen([*exe, *level, "run", *args, "-c", str(config)], stdout=self._log,
                                     stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        self.url = f"{scheme}://127.0.0.1:{port}"
        self.client = client or {}

    def wait_ready(self, timeout: float = 120) -> None:
        # a deadline, not a measurement: a daemon on a loaded 2-core CI runner (pytest -n 2) took 16 s to get
        # ready where it takes a few on a quiet machine
        # one client for the polls, closed before the test's own requests: httpx.get builds a client and its TLS
        # context on every call (30 ms of CPU), taken from the daemon as it starts, 10 times a second
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1, **self.client) as polls:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log}")
                try:
                    if polls.get(self.url + "/readyz").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise AssertionError(f"daemon not ready after {timeout}s:\n{self.log}")

    def get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.get(self.url + path, params=params, timeout=5, **self.client)

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout=timeout)
        self._log.close()
        return code

    @property
    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if not self._log.closed:
            self._log.close()
