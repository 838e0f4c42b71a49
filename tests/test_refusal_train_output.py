"""What the training script prints: a path is text the user's shell handed over, and shown escaped."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.refusal import train


def test_the_written_path_is_printed_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    """An --out path holding an ESC sequence or a right-to-left override was printed raw (clearing or reordering
    the terminal)."""
    train.report_written(Path("/tmp/m\x1b[2J\u202eodel.json"), {"threshold": 0.5})
    out = capsys.readouterr().out
    assert out == "wrote /tmp/m\\x1b[2J\\u202eodel.json params={'threshold': 0.5}\n"
