"""Find fenced code blocks (```lang ... ```) in a completion."""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", re.M | re.S)
_OPEN_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*\n(.*)\Z", re.M | re.S)


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block: its info-string language (lower-case, may be empty) and body."""

    lang: str
    body: str


def blocks(text: str) -> list[Block]:
    """Return the fenced blocks in order; an unterminated last fence (truncated output) counts as a block."""
    found = [Block(m.group(2).lower(), m.group(3)) for m in _FENCE.finditer(text)]
    if not found:
        m = _OPEN_FENCE.search(text)
        if m:
            found.append(Block(m.group(2).lower(), m.group(3)))
    return found


def without_blocks(text: str) -> str:
    """Return the text with fenced blocks removed (for prose-only checks)."""
    return _FENCE.sub(" ", text)
