"""Label a JSONL file of completions: each line gains ``refusal`` and ``refusal_score``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Protocol

from monitor import jsonl
from monitor.domain import ErrorType
from monitor.jsonl import objects
from monitor.refusal.detector import RefusalDetector

_SURROGATE = re.compile("[\ud800-\udfff]")
# the daemon's own error types of a call that answered nothing to label (an outage); any other `error_type` a line
# holds (another tool's, a typo) says nothing the daemon knows of, and its text is judged
_NOT_ANSWERED = frozenset(e.value for e in ErrorType) - {ErrorType.CONTENT_FILTER.value}


class Writer(Protocol):
    def write(self, text: str, /) -> object: ...


class AnnotateError(ValueError):
    """A line of the input file cannot be annotated; the message names file, line and field."""


def annotate_jsonl(in_path: str | Path, out_stream: Writer, detector: RefusalDetector | None = None,
                   name: str | None = None) -> int:
    """Copy each JSON line of ``in_path`` to ``out_stream`` with ``refusal`` and ``refusal_score``; return the count.

    Lines need a string ``completion``, or ``text`` when ``completion`` is absent (the field `export` writes, so
    `export | refusal --jsonl -` composes); ``prompt`` (string or null) is optional but sharpens the verdict, and
    ``refusal_text`` (string or null: the provider's refusal, OpenAI's ``refusal`` field, which `export` writes) is a
    refusal when not blank.
    Blank lines are skipped; other fields are copied as they are (a line with NaN or Infinity, which is not JSON,
    is refused: `jsonl.objects`). The first bad line raises ``AnnotateError`` naming file (``name`` if given, e.g.
    ``<stdin>``), line and field.
    """
    det = detector or RefusalDetector()
    n = 0
    for lineno, row in objects(in_path, AnnotateError, name):
        where = f"{name or in_path}:{lineno}"
        field = "text" if "completion" not in row and "text" in row else "completion"
        completion = row.get(field)
        if not isinstance(completion, str):
            what = "missing (nor 'text')" if field not in row else f"not a string ({type(completion).__name__})"
            raise AnnotateError(f"{where}: field '{field}' {what}")
        prompt, refusal_text = row.get("prompt"), row.get("refusal_text")
        for key, value in (("prompt", prompt), ("refusal_text", refusal_text)):
            if value is not None and not isinstance(value, str):
                raise AnnotateError(f"{where}: field '{key}' not a string ({type(value).__name__})")
        # what the provider said, where the line has it (`export` writes both): a content filter is a refusal, and a
        # call that failed otherwise (an outage) answered nothing to label, as the daemon has it
        error, finish = (row[k] if isinstance(row.get(k), str) else None for k in ("error_type", "finish_reason"))
        if error in _NOT_ANSWERED:
            row["refusal"], row["refusal_score"] = None, None
        else:
            v = det.detect(completion, prompt=prompt, finish_reason=finish, refusal_text=refusal_text, error_type=error)
            row["refusal"], row["refusal_score"] = v.label, v.score
        # allow_nan=False: the reader refuses NaN and Infinity, so one here would be a bug, not a line to write
        line = jsonl.line(row, allow_nan=False)
        if _SURROGATE.search(line):  # half a UTF-16 pair ("\ud800" in the input) only an escape can write as it was
            line = json.dumps(row, allow_nan=False)
        out_stream.write(line + "\n")
        n += 1
    return n
