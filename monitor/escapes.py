"""The characters llm-monitor never writes raw where a person may read them, and how each output escapes them: one
rule for the terminal (`printable`), the commands' JSON lines and the HTTP JSON API (`json_text`).

Completions, upstream and receivers' error messages and notes are text others wrote: an ESC or a C1 CSI (U+009B) in
one recolours, clears or retitles the terminal that shows it, a right-to-left override (U+202E) reorders what follows
it on the line ("Trojan Source"), and zero-width, invisible and tag characters (U+E0041, "ASCII smuggling") hide
text from whoever reads it. The rule (monitor.chars' `HIDDEN`): every control character but newline and tab
(C0, DEL, C1) and every unseen one (bidi overrides, isolates and marks, zero-width and other invisible format
characters). json.dumps escapes C0 itself but, writing non-ASCII as it is, leaves the rest raw."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from monitor.chars import HIDDEN as _HIDDEN


def _escape(found: re.Match[str]) -> str:
    return repr(found.group())[1:-1]


def printable(text: str) -> str:
    """`text` with every character of the rule escaped as a Python repr writes it (`\\x1b`, `\\x9b`, `\\u202e`)."""
    return _HIDDEN.sub(_escape, text)


def printable_parts(text: str) -> Iterator[tuple[str, bool]]:
    """`printable(text)` in parts, each with whether it is an escape: for a terminal to show the escapes apart from
    the same characters written (a backslash is written as it is: a regex or a path reads as written)."""
    at = 0
    for found in _HIDDEN.finditer(text):
        if found.start() > at:
            yield text[at:found.start()], False
        yield _escape(found), True
        at = found.end()
    if at < len(text):
        yield text[at:], False


_BREAKS = str.maketrans({"\n": "\\n", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def single_line(text: str) -> str:
    """`text` as `printable` writes it, its newlines and Unicode line and paragraph separators escaped too (`\\n`,
    `\\u2028`): on one line whichever characters a reader breaks lines at (the rest of `str.splitlines`' are
    control characters, which `printable` escapes already)."""
    return printable(text).translate(_BREAKS)


def logged(text: str) -> str:
    """`text` as `single_line` writes it, each backslash first written `\\\\`: a text log's record, whose escapes a
    reader must tell from what was logged (a Windows path, a regex, an upstream's JSON error: the two characters
    `\\n` are not a line break)."""
    return single_line(text.replace("\\", "\\\\"))


def json_text(dumped: str) -> str:
    """JSON text (json.dumps' output) with every character of the rule escaped as JSON writes it (`\\u009b`, a tag
    as its UTF-16 pair `\\udb40\\udc41`); the value it reads back as is unchanged."""
    return _HIDDEN.sub(lambda m: json.dumps(m.group())[1:-1], dumped)
