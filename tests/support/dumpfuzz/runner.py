"""Run cases through `monitor.cli.main` in this process, as the console script would, and check what came out."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.cli import main
from tests.support.dumpfuzz.case import ERROR, OK, Case

MAX_MESSAGE = 1000  # characters of standard error an error may take, whatever the line held
_LABELS = ("none", "partial", "full")


@dataclass
class Outcome:
    case: Case
    code: int | None
    out: str
    err: str
    problems: list[str] = field(default_factory=list)


def run_cli(args: list[str]) -> tuple[int | None, str, str]:
    """`llm-monitor ARGS` with standard output and error as UTF-8 pipes; an exception is code None and its
    traceback on standard error."""
    # as Python sets them up: standard output strict, standard error with backslash escapes
    streams = [io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors=errors, newline="")
               for errors in ("strict", "backslashreplace")]
    old, root = (sys.stdout, sys.stderr), logging.getLogger()
    handlers, level = root.handlers[:], root.level
    sys.stdout, sys.stderr = streams
    code: int | None
    try:
        try:
            code = main(args)
        except SystemExit as e:
            code = int(e.code or 0)
    except Exception:  # a bug: reported as the invariant broken, with where
        sys.stdout, sys.stderr = old
        code = None
        streams[1] = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")
        streams[1].write(traceback.format_exc(limit=-4))
    finally:
        sys.stdout, sys.stderr = old
        root.handlers[:], root.level = handlers, level
    texts = []
    for s in streams:
        s.flush()
        texts.append(s.buffer.getvalue().decode("utf-8", "replace"))  # type: ignore[attr-defined]
    return code, texts[0], texts[1]


def run_case(case: Case, folder: Path) -> Outcome:
    paths = {a[1:-1]: folder / f"{case.id}-{a[1:-1]}.jsonl" for a in case.args if a.startswith("{")}
    for name, data in case.files.items():
        paths[name].write_bytes(data)
    args = [str(paths[a[1:-1]]) if a.startswith("{") else a for a in case.args]
    code, out, err = run_cli(args)
    o = Outcome(case, code, out, err)
    o.problems = violations(case, code, out, err, paths)
    for p in paths.values():
        p.unlink(missing_ok=True)
    return o


def _strict(text: str) -> Any:
    def bad(c: str) -> Any:
        raise ValueError(f"{c} is not JSON")
    return json.loads(text, parse_constant=bad)


def violations(case: Case, code: int | None, out: str, err: str, paths: dict[str, Path]) -> list[str]:
    """What broke the promises: exit 0 or 2 only, errors naming file, line and field in bounded words, output
    that reads back (`refusal --jsonl`: every input field kept, `refusal` and `refusal_score` added)."""
    if code is None:
        return ["raised: " + err.strip().splitlines()[-1][:200] + " at " + _where(err)]
    problems = []
    if code not in (0, 2):
        problems.append(f"exit {code}: {err[:200]}")
    if len(err) > MAX_MESSAGE:
        problems.append(f"message of {len(err)} characters: {err[:120]!r}...")
    want = case.first_error()
    disjoint = want is None and case.command == "replay" and _share_no_stream(paths)
    if disjoint:  # dumps that share no canary x target: an error naming both files, never an empty result
        if code != 2 or "share no canary x target" not in err or not all(str(p) in err for p in paths.values()):
            problems.append(f"dumps sharing no canary x target not refused naming both: exit {code}: {err[:300]}")
    elif want is None and code != 0:
        problems.append(f"valid input refused: {err[:300]}")
    if want is not None:
        if code == 0:
            problems.append(f"accepted {want.file}:{want.line} {want.what}")
        elif code == 2:
            flat = re.sub(r"\s+", "", err)
            at = want.field or "" if not want.file else f"{paths[want.file]}:{want.line}" if want.line else \
                str(paths[want.file])
            if re.sub(r"\s+", "", at) not in flat:
                problems.append(f"error does not name {want.file}:{want.line} ({want.what}): {err[:300]!r}")
            elif want.field and want.field not in err:
                problems.append(f"error does not name field {want.field!r} ({want.what}): {err[:300]!r}")
    if code == 0:
        if "--json" in case.args:
            for n, line in enumerate(out.split("\n")[:-1], 1):
                try:
                    _strict(line)
                except ValueError as e:
                    problems.append(f"--json output line {n} does not read back: {e}")
        if case.command == "refusal":
            problems += _annotated(paths["in"], out)
    return problems


def _share_no_stream(paths: dict[str, Path]) -> bool:
    """Whether the two dumps of a valid replay case hold no canary x target in common (read here with `json`, as
    any reader would, not with the loader under test)."""
    pairs = []
    for name in ("a", "b"):
        rows = [json.loads(line) for line in paths[name].read_bytes().decode("utf-8-sig", "replace").split("\n")
                if line.strip()]
        pairs.append({(str(r.get("canary")), str(r.get("target"))) for r in rows if isinstance(r, dict)})
    return not pairs[0] & pairs[1]


def _annotated(path: Path, out: str) -> list[str]:
    src = [(n, line) for n, line in enumerate(path.read_bytes().decode("utf-8-sig").split("\n"), 1)
           if line.strip()]
    got = out.split("\n")[:-1]
    if len(got) != len(src):
        return [f"{len(src)} input lines, {len(got)} output lines"]
    problems = []
    for (n, line), written in zip(src, got, strict=True):
        keep = json.loads(line)
        try:
            row = _strict(written)  # as jq or JSON.parse would read it: no NaN, no Infinity
        except ValueError as e:
            problems.append(f"output for line {n} does not read back: {e}")
            continue
        label, score = row.pop("refusal", None), row.pop("refusal_score", None)
        keep.pop("refusal", None), keep.pop("refusal_score", None)
        if json.dumps(row, sort_keys=True) != json.dumps(keep, sort_keys=True):
            diff = sorted(k for k in {*row, *keep} if row.get(k, "<missing>") != keep.get(k, "<missing>"))
            problems.append(f"line {n}: fields changed: {diff[:5]}")
        if label not in _LABELS or not isinstance(score, float) or not 0 <= score <= 1:
            problems.append(f"line {n}: refusal {label!r} score {score!r}")
    return problems


def _where(tb: str) -> str:
    frames = re.findall(r'File "([^"]+)", line (\d+)', tb)
    mine = [f"{Path(f).name}:{n}" for f, n in frames if "/monitor/" in f]
    return mine[-1] if mine else (f"{Path(frames[-1][0]).name}:{frames[-1][1]}" if frames else "?")


def run_cases(cases: list[Case], folder: Path) -> list[Outcome]:
    return [run_case(c, folder) for c in cases]


__all__ = ["ERROR", "OK", "Outcome", "run_case", "run_cases", "run_cli", "violations"]
