"""JSON-lines input files (replay dumps, `refusal --jsonl`): one object a line, errors naming file and line; and
the lines the commands write (`line`).

Lines are read as RFC 8259 JSON, not as Python's `json` reads it: the literals `NaN`, `Infinity` and `-Infinity`
(which Python writes and reads, but no JSON parser elsewhere does: jq, JavaScript's JSON.parse, Go, serde) and
numbers past a double's range (`1e400`, which Python reads as infinity and would write back as `Infinity`) are
refused naming the line and the field, so whatever llm-monitor writes from a line is JSON too.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from monitor.errors import shown
from monitor.escapes import json_text


def line(value: Any, *, allow_nan: bool = True) -> str:
    """`value` as one JSON line (without its newline), non-ASCII as written but the characters of monitor.escapes'
    rule escaped (`\\u009b`), which json.dumps leaves raw: a terminal showing the line reads U+009B as CSI."""
    return json_text(json.dumps(value, ensure_ascii=False, allow_nan=allow_nan))


_SHOWN = 60  # characters of a field's name an error shows: a key may be a megabyte long


class _NotJSON:
    """Stands in the decoded line for a literal RFC 8259 does not allow, so the error can name its field."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def _decoder() -> tuple[json.JSONDecoder, list[_NotJSON]]:
    found: list[_NotJSON] = []

    def constant(text: str) -> _NotJSON:  # NaN, Infinity, -Infinity
        found.append(_NotJSON(text))
        return found[-1]

    def number(text: str) -> float | _NotJSON:
        value = float(text)
        return value if math.isfinite(value) else constant(text)

    return json.JSONDecoder(parse_constant=constant, parse_float=number), found


def _not_json(value: Any) -> tuple[str, _NotJSON] | None:
    """The first (path, literal) in `value`, in the line's order, that stands for a literal JSON does not allow."""
    todo: list[tuple[str, Any]] = [("", value)]
    while todo:  # not recursive: a line may nest as deep as the decoder goes, near the recursion limit
        path, v = todo.pop()
        if isinstance(v, _NotJSON):
            return path, v
        if isinstance(v, dict):
            todo += reversed([(f"{path}.{k}" if path else str(k), x) for k, x in v.items()])
        elif isinstance(v, list):
            todo += reversed([(f"{path}[{i}]", x) for i, x in enumerate(v)])
    return None


def _why(literal: str) -> str:
    if literal.lstrip("-") in ("NaN", "Infinity"):
        return f"{literal} is not JSON (RFC 8259 has no NaN or Infinity; write null or a string)"
    number = literal if len(literal) <= _SHOWN else f"{literal[:_SHOWN]}… ({len(literal):,} characters)"
    return f"the number {number} is past a double's range (about 1.8e308)"


def objects(path: str | Path, error: type[ValueError], name: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for every non-blank line of `path`, read one line at a time.

    A byte-order mark on the first line is tolerated. A line that is not UTF-8 text, not JSON (NaN and Infinity
    included) or not a JSON object raises `error` naming the file (`name` if given, e.g. ``<stdin>``), the line,
    the field where one is to blame, and what is wrong.
    """
    where = name or str(path)
    decoder, found = _decoder()
    try:
        f = Path(path).open("rb")  # noqa: SIM115 -- closed by the with below; an error of its own first
    except OSError as e:
        raise error(f"{where}: cannot read: {e.strerror or e}") from None
    with f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise error(f"{where}:{lineno}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1})") \
                    from None
            if not line.strip():
                continue
            found.clear()
            try:
                row = decoder.decode(line)
            except json.JSONDecodeError as e:
                raise error(f"{where}:{lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
            except ValueError as e:  # Python's own limit on the digits of an integer (4,300): a number, no key
                raise error(f"{where}:{lineno}: invalid JSON: a number too long to read ({str(e).split(':')[0]})") \
                    from None
            except RecursionError:  # the decoder recurses once per level of nesting
                raise error(f"{where}:{lineno}: invalid JSON: nested too deeply (arrays or objects more than "
                            f"about {sys.getrecursionlimit()} levels deep)") from None
            if found:
                at = _not_json(row)
                literal = at[1].text if at else found[0].text  # a duplicate key may have replaced the value
                field = f"field {shown(at[0], _SHOWN)}: " if at and at[0] else ""
                raise error(f"{where}:{lineno}: {field}invalid JSON: {_why(literal)}")
            if not isinstance(row, dict):
                raise error(f"{where}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row
