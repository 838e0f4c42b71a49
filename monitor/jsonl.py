"""JSON-lines input files (replay dumps, `refusal --jsonl`): one object a line, errors naming file and line."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def objects(path: str | Path, error: type[ValueError], name: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for every non-blank line of `path`, read one line at a time.

    A byte-order mark on the first line is tolerated. A line that is not UTF-8 text, not JSON or not a JSON
    object raises `error` naming the file (`name` if given, e.g. ``<stdin>``), the line and what is wrong.
    """
    where = name or str(path)
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
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f"{where}:{lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
            except ValueError as e:  # Python's own limit on the digits of an integer (4,300): a number, no key
                raise error(f"{where}:{lineno}: invalid JSON: a number too long to read ({str(e).split(':')[0]})") \
                    from None
            except RecursionError:  # the decoder recurses once per level of nesting
                raise error(f"{where}:{lineno}: invalid JSON: nested too deeply (arrays or objects more than "
                            f"about {sys.getrecursionlimit()} levels deep)") from None
            if not isinstance(row, dict):
                raise error(f"{where}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row
