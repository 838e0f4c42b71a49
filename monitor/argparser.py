"""The command line's argument parser: argparse's, but a help or version text that cannot be written is said.

argparse writes `--help` and `--version` and ignores a failed write (it catches OSError): unbuffered (with
PYTHONUNBUFFERED=1, as container images set it) `llm-monitor --version > /dev/full` wrote nothing and exited 0.
Here a failed write to standard output raises the console's OutputFailed (one line, exit 1) and a closed pipe
BrokenPipeError (exit 0), as every command's output does; a failed write to standard error is still ignored:
there is nowhere left to say it. A usage error echoing an argument (`unrecognized arguments: ...`) writes its control
and invisible characters escaped, as every output does (`monitor.escapes`)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO, cast

if TYPE_CHECKING:
    from _typeshed import SupportsWrite


class ArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser whose help and version texts' failed writes end the command as output's do, and whose
    usage errors are escaped."""

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        if file is None or file is sys.stderr:  # a usage error: it may echo what was typed, escaped
            from monitor.escapes import printable

            super()._print_message(printable(message), file)
            return
        from monitor.console import write_line

        if message:
            write_line(message.removesuffix("\n"), cast(TextIO, file))  # help and version end with one
