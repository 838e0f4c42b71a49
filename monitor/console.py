"""The rich Console every command prints with: stored text's control characters are shown escaped, and a reader
that stops early (`| head -1`) ends the command quietly.

Completions, receivers' error messages and notes are text others wrote: an ESC or a C1 CSI (U+009B) in one
recoloured, cleared or retitled the terminal of whoever ran `diff` or `alerts pending`. rich drops CR, BEL and
backspace itself but passes ESC, DEL and C1 through; this console writes the characters of monitor.escapes' rule
(every control character but newline and tab) as Python writes them in a repr (`\\x1b`, `\\x9b`), its own styling
codes untouched. A backslash is written as it is (a regex, a Windows path or code in a completion, or a `diff` of
two, reads as written, where doubling every one, as the text logs do, would turn `\\d+` into `\\\\d+`): on a terminal, the
escapes are in reverse video instead, told apart from the same characters written (`\\x1b` typed in a completion);
a pipe or file gets the escaped text without styles, as `--json` is there for what must be read back exactly.
A str printed or put in a table is escaped as rich renders it, and the commands' data cells are made escaped
(`cell`), so a table sizes its columns by what it shows (escaped as the table went out, an ESC, taking no cell,
overran its column by the escape's length). rich's Text drops CR, BEL, backspace, vertical tab and form feed as it is
made: a str keeps them through rich's rendering (markup and all) and data made a Text goes through `cell`, so they are
shown escaped as the others are (a completion's `b\\rc` read `bc`).

rich's own Console answers a broken pipe by pointing stdout at /dev/null and raising SystemExit(1): `diff | head -1`
exited 1, where `drift --json` (plain writes) and Unix tools end with 0. This one raises BrokenPipeError instead, for
the console-script entry (monitor.cli.entry) to end the command as it ends every other closed pipe; and an output
that cannot be written (a full disk) raises OutputFailed, which the entry tells in one line with exit 1, where a
traceback ended `diff > file` on a full disk."""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO

from rich.console import Console as RichConsole
from rich.control import STRIP_CONTROL_CODES
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from monitor.chars import HIDDEN
from monitor.escapes import printable, printable_parts

_ESCAPE = Style(reverse=True)  # an escape the console wrote, on a terminal
_DROPPED = re.compile(f"[{re.escape(''.join(map(chr, STRIP_CONTROL_CODES)))}]")  # what rich's Text drops: CR, BEL, ...


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


def _escaped(buffer: Iterable[Segment]) -> Iterator[Segment]:
    """`buffer` with printable's escapes, each in reverse video (rich drops the style where it writes none: a pipe, a
    file); a control segment is rich's own (cursor moves), kept as it is."""
    for segment in buffer:
        if segment.control:
            yield segment
            continue
        for part, escape in printable_parts(segment.text):
            yield Segment(part, (segment.style or Style.null()) + _ESCAPE if escape else segment.style)


def escaped_text(text: Text, mark: str = "", dropped: Sequence[str] = ()) -> Text:
    """`text` with printable's escapes written in, each in reverse video, its styles kept: what a table measures is
    what it shows (escaped as it went out, a cell holding an ESC, which takes no cell, overran its column by the
    escape's length). Each `mark` in it stands for the next of `dropped`, a character rich's Text would drop."""
    found = list((re.compile(f"{HIDDEN.pattern}|{re.escape(mark)}") if mark else HIDDEN).finditer(text.plain))
    if not found:
        return text
    out, at, marked = text.blank_copy(), 0, iter(dropped)
    for match in found:
        if match.start() > at:
            out.append_text(text[at:match.start()])
        out.append(printable(next(marked) if match.group() == mark else match.group()), _ESCAPE)
        at = match.end()
    if at < len(text.plain):
        out.append_text(text[at:])
    return out


def _free_mark(text: str) -> str:
    """A private-use character `text` does not hold."""
    return next(c for c in map(chr, itertools.chain(range(0xE000, 0xF900), range(0xF0000, 0x10FFFE))) if c not in text)


def cell(text: str, style: str | Style = "") -> Text:
    """Data made a Text (a completion, a note, a receiver's error: never console markup; a table cell), in `style`,
    escaped as shown: the CR, BEL, backspace, vertical tab and form feed that rich's Text drops written as escapes
    too."""
    out = Text(style=style)
    for part, escape in printable_parts(text):
        out.append(part, _ESCAPE if escape else None)
    return out


class Console(RichConsole):
    """rich.console.Console writing control characters escaped, text's emoji codes as written (rich's default
    turned `:fire:` in a printed string, a value an error names or a receiver's error, into 🔥), and a closed
    output pipe raised as BrokenPipeError (the command's end, exit 0)."""

    def __init__(self, *args: Any, emoji: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, emoji=emoji, **kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:  # a str printed or in a table, its markup read
        dropped = _DROPPED.findall(text)
        if dropped:  # each through rich's markup as a character it keeps, then escaped
            mark = _free_mark(text)
            rendered = super().render_str(_DROPPED.sub(mark, text), **kwargs)
            if rendered.plain.count(mark) == len(dropped):  # else one was in a markup tag, which rich read
                return escaped_text(rendered, mark, dropped)
        return escaped_text(super().render_str(text, **kwargs))

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(_escaped(buffer))

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
