"""The rich Console every command prints with: a reader that stops early (`| head -1`) ends the command quietly.

rich's own Console answers a broken pipe by pointing stdout at /dev/null and raising SystemExit(1): `diff | head -1`
exited 1, where `drift --json` (plain writes) and Unix tools end with 0. This one raises BrokenPipeError instead, for
the console-script entry (monitor.cli.entry) to end the command as it ends every other closed pipe."""

from __future__ import annotations

from rich.console import Console as RichConsole


class Console(RichConsole):
    """rich.console.Console, a closed output pipe raised as BrokenPipeError (the command's end, exit 0)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True  # nothing more to write: later prints are dropped rather than raised again
        raise BrokenPipeError
