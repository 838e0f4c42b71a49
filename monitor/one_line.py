"""Text that must stay on one line, as it reads: no control character (a line break, NUL, DEL, or C1: U+0080 to
U+009F, which a ${VAR} read from a Latin-1 file may hold), nor an unseen one (a bidi override, a zero-width space, a
BOM: what is seen is then not what is used). One check for the config's model names, listen address, label values
and URLs; the classes are monitor.chars'."""

from __future__ import annotations

from monitor.chars import CONTROL, UNSEEN, first


def one_line_problem(v: str, said: str) -> str | None:
    """Why `v` is not text on one line as it reads, led by `said` ("must be on one line"), where its control or
    unseen character is; None when it is such text."""
    bad = first(CONTROL, v)
    if bad is not None:
        return f"{said}: it holds a control character (character {bad} of {len(v)})"
    bad = first(UNSEEN, v)
    if bad is not None:
        return f"{said}, every character visible: it holds an invisible or text-direction character (character {bad} " \
               f"of {len(v)})"
    return None


def one_line(v: str, said: str = "must be on one line", after: str = "") -> str:
    """Return `v`, or raise ValueError `said`, where its control or unseen character is, then `after`."""
    problem = one_line_problem(v, said)
    if problem is not None:
        raise ValueError(problem + after)
    return v
