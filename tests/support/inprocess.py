"""Run `llm-monitor ARGS` in the test's own process, as the console script does (a subprocess costs about two
seconds of imports), leaving the process's logging as it found it."""

from __future__ import annotations

import logging

import pytest

from monitor.cli import main


class Cli:
    """Calls `llm-monitor ARGS` and returns (exit code, standard output, standard error)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]):
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            code = main(list(args))
        except SystemExit as e:
            code = int(e.code or 0)
        finally:  # main() points logging at this test's captured stderr: later tests' logs must not go there
            root.handlers[:], root.level = handlers, level
        out, err = self.capsys.readouterr()
        return code, out, err
