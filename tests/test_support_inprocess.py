"""The in-process CLI leaves the process's logging as it found it: later tests see the levels they would see."""

from __future__ import annotations

import logging

import pytest

from monitor.logs import NOISY_LOGGERS
from tests.support.inprocess import Cli


def test_an_in_process_cli_call_leaves_the_library_loggers_at_their_levels(capsys: pytest.CaptureFixture[str]) -> None:
    before = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    code, _, _ = Cli(capsys)("check-config", "-c", "/nonexistent/monitor.yaml")
    assert code != 0
    assert {name: logging.getLogger(name).level for name in NOISY_LOGGERS} == before
    assert (root.handlers, root.level) == (handlers, level)
