"""Text that must stay on one line: no control character (a line break, NUL, DEL, or C1: U+0080 to U+009F, which a
${VAR} read from a Latin-1 file may hold). One check for the config's model names, listen address and label values."""

from __future__ import annotations


def control_character(v: str) -> int | None:
    """The position (from 1) of the first control character in `v`: C0 (a line break, NUL, ...), DEL or C1
    (U+0080 to U+009F, which a ${VAR} read from a Latin-1 file may hold); None when it holds none."""
    return next((n for n, ch in enumerate(v, 1) if ch < " " or "\x7f" <= ch <= "\x9f"), None)


def one_line(v: str, said: str = "must be on one line", after: str = "") -> str:
    """Return `v`, or raise ValueError `said`, where its control character is, then `after`."""
    bad = control_character(v)
    if bad is not None:
        raise ValueError(f"{said}: it holds a control character (character {bad} of {len(v)}){after}")
    return v
