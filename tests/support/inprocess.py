"""Run `llm-monitor ARGS` in the test's own process, as the console script does (a subprocess costs about two
seconds of imports), leaving the process's logging as it found it."""

from __future__ import annotations

import logging
import os
import subprocess
from unittest import mock

import pytest

from monitor.cli import _store_failed, main
from monitor.logs import NOISY_LOGGERS


class Cli:
    """Calls `llm-monitor ARGS` and returns (exit code, standard output, standard error)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]):
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        quieted = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
        try:
            code = main(list(args))
        except SystemExit as e:
            code = int(e.code or 0)
        finally:  # main() points logging at this test's captured stderr: later tests' logs must not go there
            root.handlers[:], root.level = handlers, level
            for name, was in quieted.items():
                logging.getLogger(name).setLevel(was)
        out, err = self.capsys.readouterr()
        return code, out, err


class CliRun:
    """In place of `tests.support.daemon.cli`: the same call and result (returncode, stdout, stderr), in process.

    As the console script's `entry()`, a store failing mid-command is exit 1 with one line on stderr; any other
    exception is raised (a subprocess would have printed its traceback). `env` is set for the call only; a
    variable read when `monitor.cli` is imported (LLM_MONITOR_CONFIG) needs the subprocess."""

    def __init__(self, capsys: pytest.CaptureFixture[str]):
        self.cli = Cli(capsys)

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        with mock.patch.dict(os.environ, env or {}):
            try:
                code, out, err = self.cli(*args)
            except Exception as e:
                code = _store_failed(e)
                out, err = self.cli.capsys.readouterr()
        return subprocess.CompletedProcess(["llm-monitor", *args], code, out, err)
