"""Mutations of valid JSON-lines files, each marked with what the command must make of it (`make_case`)."""

from __future__ import annotations

import json
import random
from typing import Any

from tests.support.dumpfuzz.case import ERROR, OK, Case, Mark, encode
from tests.support.dumpfuzz.seeds import CHECKS, Seeds

REQUIRED = ("canary", "target", "text")
STRINGS = ("id", "started_at", "finish_reason", "response_model", "system_fingerprint", "refusal", "error_type")
NUMBERS = ("output_tokens", "latency_s", "ttft_s")
WRONG = [7, -1, 1.5, [], ["a"], {}, {"a": 1}, True, False]
ODD_TEXT = ["\ud800", "a\udc00b", "\ud83d", "nul\x00byte", "\u202eRTL override\u202c", "\u05e9\u05dc\u05d5\u05dd",
            "😀" * 50, "\ufeff", "[/]", "[bold]x[/bold", "\\", "\r\n\t", "\u2028\u2029", "", " "]
# RFC 3339 and what people write beside it (`monitor.timeinput`); the rest of what Python's fromisoformat takes
# is refused (week dates, basic format, an hour alone, "1" * 50,000), as is a time with no UTC equivalent
TIMES_OK = ["2026-11-01T10:00:00", "2026-11-01", "2026-11-01T10:00:00Z", "9999-12-31T23:59:59+00:00",
            "9999-12-31T11:59:59-12:00", "0001-01-01T14:00:00+14:00", "0001-01-01T00:00:00", "2026-11-01T10:00:00.123456",
            "2026-11-01 10:00:00", "2026-11-01t10:00z", "2026-11-01T10:00:00.123456789+05:30", "2026-11-01T10:00:00+0530"]
TIMES_BAD = ["yesterday", "2026-13-01", "", "2026-11-01T25:00:00", "10/11/2026", "2026-11-01T10:00:00+25:00",
             "x" * 50_000, "[/x]", "1" * 50_000, "20261101", "2026-W44-7", "2026-11-01T10", "2026-11-01T10:00:00,5",
             "2026-11-01T10:00:00+05", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "2016-12-31T23:59:60Z"]


_INNER_BOM = "byte-order mark inside the file"
# Literals Python's json reads but RFC 8259 has not (1e999 reads as infinity): refused naming line and field
NOT_JSON = ("NaN", "Infinity", "-Infinity", "[1, NaN]", "1e999")


def _huge(rng: random.Random) -> str:
    return rng.choice(["x", "word ", "é", "😀", "\x00"]) * rng.choice([10_000, 200_000, 1_000_000])


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def mutate_dump_row(rng: random.Random, row: dict[str, Any], file: str) -> tuple[bytes, Mark]:
    """Mutate one dump row; return its line (no newline) and the mark saying what the command must do."""
    r = dict(row)
    op = rng.randrange(18)
    present_optional = [k for k in (*STRINGS, *NUMBERS, "checks") if k in r]
    if op == 0:
        k = rng.choice(REQUIRED)
        del r[k]
        return encode(r), Mark(f"drop {k}", file, 0, ERROR, k)
    if op == 1 and present_optional:
        k = rng.choice(present_optional)
        del r[k]
        return encode(r), Mark(f"drop {k}", file, 0, OK)
    if op == 2:
        k = rng.choice((*REQUIRED, *STRINGS, *NUMBERS, "checks"))
        r[k] = None
        return encode(r), Mark(f"{k}=null", file, 0, ERROR if k in REQUIRED else OK, k)
    if op == 3:
        k = rng.choice((*REQUIRED, *STRINGS, *NUMBERS, "checks"))
        v = rng.choice([w for w in [*WRONG, "7"] if not _fits(k, w)])
        r[k] = v
        return encode(r), Mark(f"{k}={json.dumps(v)}", file, 0, ERROR, k)
    if op == 4:
        name = rng.choice([*CHECKS, "answered"])
        v = rng.choice(["true", "false", 1, 0, [], {}, "null"])
        r["checks"] = {**(r.get("checks") if isinstance(r.get("checks"), dict) else {}), name: v}
        return encode(r), Mark(f"checks.{name}={json.dumps(v)}", file, 0, ERROR, "checks")
    if op == 5:
        k, v = rng.choice([("finish_reason", "stopped"), ("error_type", "oops"), ("refusal", "maybe"),
                           ("finish_reason", _huge(rng)), ("error_type", "[/]"), ("refusal", "x" * 5000)])
        r[k] = v
        return encode(r), Mark(f"{k}=unknown value ({len(v)} chars)", file, 0, ERROR, k)
    if op == 6:
        k = rng.choice(REQUIRED)
        r[k] = _huge(rng)
        return encode(r), Mark(f"{k}=huge ({len(r[k])} chars)", file, 0, OK)
    if op == 7:
        k = rng.choice([*REQUIRED, "response_model", "system_fingerprint", "id"])
        v = rng.choice(ODD_TEXT)
        r[k] = (str(r.get(k) or "") + v) if rng.random() < 0.5 else v
        if k in ("canary", "target") and not r[k]:
            r[k] = v + "c"
        return encode(r, ascii_only=rng.random() < 0.5 or _surrogate(v)), \
            Mark(f"{k}+={v[:12]!r}", file, 0, OK)
    if op == 8:
        name = rng.choice(ODD_TEXT) or "empty"
        r["checks"] = {**(r.get("checks") if isinstance(r.get("checks"), dict) else {}), name: rng.choice([True, False])}
        return encode(r), Mark(f"check named {name!r}", file, 0, OK)
    if op == 9:
        t = rng.choice(TIMES_OK + TIMES_BAD)
        r["started_at"] = t
        return encode(r), Mark(f"started_at={t[:30]!r}", file, 0, OK if t in TIMES_OK else ERROR, "started_at")
    if op == 10:
        k = rng.choice(NUMBERS)
        lit = rng.choice(["NaN", "Infinity", "-Infinity", "-1", "1e400", "-0.0"])
        good = lit == "-0.0" and k != "output_tokens"
        line = encode(r)[:-1] + f', "{k}": {lit}}}'.encode()
        return line, Mark(f"{k}={lit}", file, 0, OK if good else ERROR, k)
    if op == 11:  # an ignored field, but a line with NaN or Infinity (or 1e999, a float's infinity) is not JSON
        lit = rng.choice(["NaN", "Infinity", "[1, NaN]", "1e999", "12345678901234567890123", json.dumps(WRONG),
                          _nested(rng.choice([10, 200]))])
        key = f"extra_{rng.randrange(99)}"
        line = encode(r)[:-1] + f', "{key}": {lit}}}'.encode()
        return line, Mark(f"unknown field = {lit[:20]}", file, 0, ERROR if lit in NOT_JSON else OK, key)
    if op == 12:
        depth = rng.choice([1_000, 5_000, 100_000])
        line = encode(r)[:-1] + f', "deep": {_nested(depth)}}}'.encode()
        return line, Mark(f"nested {depth} deep", file, 0, ERROR)
    if op == 13:
        line = encode(r)[:-1] + f', "output_tokens": {"9" * rng.choice([4301, 10_000])}}}'.encode()
        return line, Mark("output_tokens with 4301+ digits", file, 0, ERROR)
    if op == 14:  # duplicate keys: the last one counts, as in every JSON reader in Python and JavaScript
        k = rng.choice(REQUIRED)
        if rng.random() < 0.5:
            return b'{"%s": 5, ' % k.encode() + encode(r)[1:], Mark(f"duplicate {k}, bad first", file, 0, OK)
        return encode(r)[:-1] + b', "%s": 5}' % k.encode(), Mark(f"duplicate {k}, bad last", file, 0, ERROR, k)
    if op == 16 and rng.random() < 0.3:
        r["checks"] = {f"check{j}": rng.choice([True, False]) for j in range(rng.choice([300, 5000]))}
        return encode(r), Mark(f"{len(r['checks'])} checks", file, 0, OK)
    if op == 15:  # numbers beyond any call: more tokens than a model writes, seconds past a year
        k = rng.choice(NUMBERS)
        v = rng.choice([10**30, 0, 1e300, 5e-324, 31_536_000, 31_536_001]) if k != "output_tokens" else \
            rng.choice([10**30, 0, 2**63, 100_000_000, 100_000_001])
        r[k] = v
        return encode(r), Mark(f"{k}={v}", file, 0, OK if v <= (100_000_000 if k == "output_tokens" else 31_536_000)
                               else ERROR, k)
    return line_mutation(rng, encode(r), file)


def _surrogate(s: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in s)


def _fits(key: str, v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if key == "checks":
        return isinstance(v, dict)
    if key == "output_tokens":
        return isinstance(v, int) and v >= 0
    if key in NUMBERS:
        return isinstance(v, int | float) and v >= 0
    return isinstance(v, str) and (key not in ("finish_reason", "error_type", "refusal", "started_at"))


def line_mutation(rng: random.Random, line: bytes, file: str) -> tuple[bytes, Mark]:
    """Break a whole line: not JSON, not an object, not UTF-8, cut short, raw control bytes."""
    op = rng.randrange(6)
    if op == 0:
        v = rng.choice([b"hello", b"{", b"}", b"{'a': 1}", b"{\"canary\": }", b"\x00", b"nul\x00l", b"[/]"])
        return v, Mark(f"not JSON {v[:10]!r}", file, 0, ERROR)
    if op == 1:
        v = rng.choice([b"[]", b"[1, 2]", b"7", b"-1.5", b'"text"', b"null", b"true", b"false", b"NaN",
                        b"[" + line + b"]"])
        return v, Mark(f"JSON {v[:10]!r}", file, 0, ERROR)
    if op == 2:
        i = line.find(b'"', line.find(b":") + 1) + 1
        bad = rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80"])
        return line[:i] + bad + line[i:], Mark(f"invalid UTF-8 {bad!r}", file, 0, ERROR)
    if op == 3:
        return line[: rng.randrange(1, max(2, len(line) - 1))], Mark("cut short", file, 0, ERROR)
    if op == 4:
        i = line.find(b'"', line.find(b":") + 1) + 1
        c = rng.choice([b"\x00", b"\x1b", b"\x07", b"\t"])
        return line[:i] + c + line[i:], Mark(f"raw control byte {c!r} in a string", file, 0, ERROR)
    return b"\xef\xbb\xbf" + line, Mark(_INNER_BOM, file, 0, ERROR)


def mutate_refusal_row(rng: random.Random, row: dict[str, Any], file: str) -> tuple[bytes, Mark]:
    r = dict(row)
    op = rng.randrange(9)
    if op == 0:
        k = rng.choice(["prompt", "completion"])
        r.pop(k, None)
        return encode(r), Mark(f"drop {k}", file, 0, ERROR if k == "completion" else OK, k)
    if op == 1:
        k = rng.choice(["prompt", "completion"])
        r[k] = rng.choice([None, *WRONG])
        ok = k == "prompt" and r[k] is None
        return encode(r), Mark(f"{k}={json.dumps(r[k])}", file, 0, OK if ok else ERROR, k)
    if op == 2:
        k = rng.choice(["prompt", "completion", "model"])
        v = rng.choice(ODD_TEXT)
        r[k] = str(r.get(k) or "") + v
        return encode(r, ascii_only=rng.random() < 0.5 or _surrogate(v)), \
            Mark(f"{k}+={v[:12]!r}", file, 0, OK)
    if op == 3:
        k = rng.choice(["prompt", "completion"])
        r[k] = _huge(rng)
        return encode(r), Mark(f"{k}=huge ({len(r[k])} chars)", file, 0, OK)
    if op == 4:
        k = rng.choice(["refusal", "refusal_score", "extra", "nested", "\ud800key", ""])
        r[k] = rng.choice([*WRONG, None, "x", {"a": [1, {"b": None}]}])
        return encode(r), Mark(f"field {k!r}", file, 0, OK)
    if op == 5:  # copied to the output as it was: NaN or Infinity there would not be JSON, so refused here
        lit = rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "12345678901234567890123", _nested(50)])
        return encode(r)[:-1] + f', "extra": {lit}}}'.encode(), \
            Mark(f"extra = {lit[:20]}", file, 0, ERROR if lit in NOT_JSON else OK, "extra")
    if op == 6:
        depth = rng.choice([1_000, 100_000])
        return encode(r)[:-1] + f', "deep": {_nested(depth)}}}'.encode(), Mark(f"nested {depth} deep", file, 0, ERROR)
    if op == 7:
        return b'{"completion": 5, ' + encode(r)[1:], Mark("duplicate completion, bad first", file, 0, OK)
    return line_mutation(rng, encode(r), file)


def _assemble(rng: random.Random, lines: list[tuple[bytes, Mark | None]], file: str,
              marks: list[Mark]) -> bytes:
    """Join lines after file-level mutations (blank lines, CRLF, a BOM, no final newline); number the marks."""
    items: list[tuple[bytes, Mark | None]] = list(lines)
    if rng.random() < 0.15:
        for _ in range(rng.randint(1, 3)):
            items.insert(rng.randrange(len(items) + 1), (rng.choice([b"", b"   ", b"\t", b"\r"]), None))
        marks.append(Mark("blank lines", file, 0, OK))
    valid = [x for x, m in items if m is None and x.strip()]
    if valid and rng.random() < 0.04:
        items += [(valid[0], None)] * rng.choice([300, 2000])
        marks.append(Mark("many lines", file, 0, OK))
    nl = b"\r\n" if rng.random() < 0.15 else b"\n"
    if nl == b"\r\n":
        marks.append(Mark("CRLF", file, 0, OK))
    for n, (_, mark) in enumerate(items, 1):
        if mark is not None:
            mark.line = n
            if n == 1 and mark.what == _INNER_BOM:  # a byte-order mark opening the file is tolerated
                mark.expect = OK
    data = nl.join(x for x, _ in items) + nl
    if rng.random() < 0.15:
        data = data.rstrip(b"\r\n")
        marks.append(Mark("no final newline", file, 0, OK))
    if rng.random() < 0.1 and not (items[0][1] and items[0][1].what == _INNER_BOM):
        data = b"\xef\xbb\xbf" + data
        marks.append(Mark("byte-order mark", file, 0, OK))
    if rng.random() < 0.02:  # nothing to read: refused naming the file
        data = rng.choice([b"", b"\n\n", b"\xef\xbb\xbf", b"  \r\n\t\n"])
        # replay needs rows to compare; refusal --jsonl of nothing writes nothing, as a filter does
        marks[:] = [m for m in marks if m.file != file] + [Mark(f"no rows: {data!r}", file, 0,
                                                                OK if file == "in" else ERROR)]
    return data


def _extremes(rng: random.Random, rows: list[dict[str, Any]], file: str) -> Mark:
    """Give every row of a dump the same number beyond any call (a day's worth of seconds many times over, more
    tokens than any model writes), which one row alone would not show (sums and means overflow)."""
    k = rng.choice(NUMBERS)
    v: Any = rng.choice([10**30, 10**400, 2**63]) if k == "output_tokens" else rng.choice([1.7e308, 1e300, 1e200])
    for r in rows:
        r[k] = v
    return Mark(f"every {k}={v if len(str(v)) < 25 else f'10**{len(str(v)) - 1}'}", file, 0, ERROR, k)


def _file(rng: random.Random, rows: list[dict[str, Any]], file: str, mutate: Any, marks: list[Mark]) -> bytes:
    extreme = _extremes(rng, rows, file) if mutate is mutate_dump_row and rng.random() < 0.03 else None
    lines: list[tuple[bytes, Mark | None]] = [(encode(r, rng.random() < 0.5), None) for r in rows]
    for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
        i = rng.randrange(len(lines))
        lines[i] = mutate(rng, rows[i], file)
    if extreme is not None:
        lines[0] = (encode(rows[0]), extreme)
    marks += [m for _, m in lines if m is not None]
    return _assemble(rng, lines, file, marks)


def make_case(rng: random.Random, i: int, seeds: Seeds) -> Case:
    """Case `i`: a `replay` of two dumps (one or both mutated) or a `refusal --jsonl` of one file."""
    marks: list[Mark] = []
    if rng.random() < 0.3:
        rows = seeds.refusal_lines(rng, rng.randint(1, 8))
        data = _file(rng, rows, "in", mutate_refusal_row, marks)
        return _missing(rng, Case(f"case{i}", "refusal", ["refusal", "--jsonl", "{in}"], {"in": data}, marks))
    n = rng.randint(5, 14)
    base = _file(rng, seeds.dump(rng, n), "a", mutate_dump_row, marks) if rng.random() < 0.4 else \
        _assemble(rng, [(encode(r), None) for r in seeds.dump(rng, n)], "a", marks)
    cur = _file(rng, seeds.dump(rng, rng.randint(5, 14)), "b", mutate_dump_row, marks)
    args = ["replay", "--baseline", "{a}", "--current", "{b}"]
    if rng.random() < 0.5:
        args.append("--json")
    if rng.random() < 0.3:
        args += ["--zero-tolerance", rng.choice(["refused", "error", "exact_match"])]
    if rng.random() < 0.05:
        name = rng.choice(["check:nope", "refusd", "check:" + "x" * 5000, "[/]"])
        args += ["--zero-tolerance", name]
        marks.append(Mark(f"--zero-tolerance {name[:20]}", "", 0, ERROR, "--zero-tolerance"))
    return _missing(rng, Case(f"case{i}", "replay", args, {"a": base, "b": cur}, marks))


def _missing(rng: random.Random, case: Case) -> Case:
    """Now and then a file that is not there: refused naming it."""
    if rng.random() < 0.01:
        name = rng.choice(list(case.files))
        del case.files[name]
        case.marks[:] = [m for m in case.marks if m.file != name] + [Mark("missing file", name, 0, ERROR)]
    return case
