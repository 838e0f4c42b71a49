"""The characters llm-monitor never writes raw where a person may read them, and how each output escapes them: one
rule for the terminal (`printable`), the commands' JSON lines and the HTTP JSON API (`json_text`).

Completions, upstream and receivers' error messages and notes are text others wrote: an ESC or a C1 CSI (U+009B) in
one recolours, clears or retitles the terminal that shows it. The rule: every control character but newline and tab
(C0, DEL, C1). json.dumps escapes C0 itself but, writing non-ASCII as it is, leaves DEL and C1 raw."""

from __future__ import annotations

import json
import re

# C0 but newline and tab, DEL, C1
_HIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with every character of the rule escaped as a Python repr writes it (`\\x1b`, `\\x9b`)."""
    return _HIDDEN.sub(lambda m: repr(m.group())[1:-1], text)


def json_text(dumped: str) -> str:
    """JSON text (json.dumps' output) with every character of the rule escaped as JSON writes it (`\\u009b`); the
    value it reads back as is unchanged."""
    return _HIDDEN.sub(lambda m: json.dumps(m.group())[1:-1], dumped)
