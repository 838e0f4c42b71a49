"""One fuzz case (`Case`): the files a command reads, its arguments, and what the mutations promise of it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

COMMANDS = ("replay", "refusal")
OK, ERROR = "ok", "error"


@dataclass
class Mark:
    """One mutation: what was done, to which file's line (1-based, as the commands count; 0: the whole file;
    file "": the arguments), which field, and whether the command must accept the result (`OK`) or refuse it
    naming the line and field (`ERROR`)."""

    what: str
    file: str
    line: int
    expect: str
    field: str | None = None


@dataclass
class Case:
    """One command run: `files` (name -> bytes), written to a folder; `args` name them as ``{name}``."""

    id: str
    command: str
    args: list[str]
    files: dict[str, bytes]
    marks: list[Mark] = field(default_factory=list)

    def first_error(self) -> Mark | None:
        """The error the command must report: the first bad line of the first file it reads."""
        order = [a.strip("{}") for a in self.args if a.startswith("{")]
        bad = [m for m in self.marks if m.expect == ERROR]
        return min(bad, key=lambda m: (order.index(m.file) if m.file in order else len(order), m.line), default=None)

    def summary(self) -> str:
        return f"{self.id} {self.command} {' '.join(self.args)} " + \
            "; ".join(f"{m.file}:{m.line} {m.what}" for m in self.marks)


def encode(row: Any, ascii_only: bool = True) -> bytes:
    """One JSON line as a tool would write it; lone surrogates stay escaped unless `ascii_only` is off."""
    return json.dumps(row, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
