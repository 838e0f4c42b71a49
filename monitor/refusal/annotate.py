"""Label a JSONL file of completions: each line gains ``refusal`` and ``refusal_score``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from monitor.refusal.detector import RefusalDetector


class AnnotateError(ValueError):
    """A line of the input file cannot be annotated; the message names file, line and field."""


def annotate_jsonl(in_path: str | Path, out_stream: TextIO, detector: RefusalDetector | None = None,
                   name: str | None = None) -> int:
    """Copy each JSON line of ``in_path`` to ``out_stream`` with ``refusal`` and ``refusal_score``; return the count.

    Lines need a string ``completion``; ``prompt`` (string or null) is optional but sharpens the verdict.
    Blank lines are skipped. The first bad line raises ``AnnotateError`` naming file (``name`` if given, e.g.
    ``<stdin>``), line and field.
    """
    det = detector or RefusalDetector()
    n = 0
    with Path(in_path).open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{name or in_path}:{lineno}"
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # a byte-order mark is tolerated
            except UnicodeDecodeError as e:
                raise AnnotateError(f"{where}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1})") \
                    from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise AnnotateError(f"{where}: invalid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise AnnotateError(f"{where}: expected a JSON object")
            completion = row.get("completion")
            if not isinstance(completion, str):
                what = "missing" if "completion" not in row else f"not a string ({type(completion).__name__})"
                raise AnnotateError(f"{where}: field 'completion' {what}")
            prompt = row.get("prompt")
            if prompt is not None and not isinstance(prompt, str):
                raise AnnotateError(f"{where}: field 'prompt' not a string ({type(prompt).__name__})")
            v = det.detect(completion, prompt=prompt)
            row["refusal"], row["refusal_score"] = v.label, v.score
            out_stream.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n
