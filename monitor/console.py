"""The rich Console every command prints with: stored text's control characters are shown escaped, and a reader
that stops early (`| head -1`) ends the command quietly.

Completions, receivers' error messages and notes are text others wrote: an ESC or a C1 CSI (U+009B) in one
recoloured, cleared or retitled the terminal of whoever ran `diff` or `alerts pending`. rich drops CR, BEL and
backspace itself but passes ESC, DEL and C1 through; this console writes the characters of monitor.escapes' rule
(every control character but newline and tab) as Python writes them in a repr (`\\x1b`, `\\x9b`), its own styling
codes untouched.

rich's own Console answers a broken pipe by pointing stdout at /dev/null and raising SystemExit(1): `diff | head -1`
exited 1, where `drift --json` (plain writes) and Unix tools end with 0. This one raises BrokenPipeError instead, for
the console-script entry (monitor.cli.entry) to end the command as it ends every other closed pipe; and an output
that cannot be written (a full disk) raises OutputFailed, which the entry tells in one line with exit 1, where a
traceback ended `diff > file` on a full disk."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from rich.console import Console as RichConsole
from rich.segment import Segment

from monitor.escapes import printable


class OutputFailed(Exception):
    """Standard output or error could not be written (a full disk, an I/O error): the command's end, exit 1."""


def write_line(line: str, out: TextIO | None = None, *, flush: bool = False) -> None:
    """Write `line` and a newline to `out` (standard output), a failed write (a full disk; not a closed pipe: that
    ends the command quietly) raised as OutputFailed."""
    try:
        (out or sys.stdout).write(line + "\n")
        if flush:
            (out or sys.stdout).flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        raise OutputFailed(f"standard output: cannot write: {e.strerror or e}") from e


class Console(RichConsole):
    """rich.console.Console writing control characters escaped, text's emoji codes as written (rich's default
    turned `:fire:` in a printed string, a value an error names or a receiver's error, into 🔥), and a closed
    output pipe raised as BrokenPipeError (the command's end, exit 0)."""

    def __init__(self, *args: Any, emoji: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, emoji=emoji, **kwargs)

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        # a segment's text is what was printed; a control segment is rich's own (cursor moves), kept as it is
        return super()._render_buffer(
            segment if segment.control else Segment(printable(segment.text), segment.style) for segment in buffer)

    def _check_buffer(self) -> None:
        try:
            super()._check_buffer()
        except BrokenPipeError:
            raise
        except OSError as e:
            self.quiet = True  # as on a broken pipe: nothing more is written
            stream = "standard error" if self.stderr else "standard output"
            raise OutputFailed(f"{stream}: cannot write: {e.strerror or e}") from e

    def on_broken_pipe(self) -> None:
        self.quiet = True  # nothing more to write: later prints are dropped rather than raised again
        raise BrokenPipeError
