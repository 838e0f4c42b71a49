"""What the dump fuzzer (`tests/support/dumpfuzz`) found in the JSON-lines files `replay` and `refusal --jsonl`
read, each case as it was found, and a seeded run of the fuzzer whose invariants must hold."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.support.dumpfuzz import Seeds, export_replay, exported_rows, make_case, run_case
from tests.support.inprocess import Cli

ROW = {"canary": "c", "target": "t", "text": "The capital of France is Paris."}


@pytest.mark.parametrize("seed", [1, 2])
def test_fuzzed_dumps_keep_the_invariants(tmp_path: Path, seed: int) -> None:
    """200 mutated `replay` dumps and `refusal --jsonl` files of a fixed seed, starting from an export of a store
    of odd observations: exit 0 or 2, never a traceback; an error names file, line and field in bounded words;
    what a mutation leaves valid is accepted; output reads back (`dumpfuzz.violations`)."""
    dump, problems = export_replay(tmp_path / "store", seed, n=40)
    assert problems == []
    seeds = Seeds(exported_rows(dump))
    rng = random.Random(seed)
    outcomes = [run_case(make_case(rng, i, seeds), tmp_path) for i in range(200)]
    bad = [f"{o.case.summary()[:300]}: {o.problems}" for o in outcomes if o.problems]
    assert not bad, "\n".join(bad[:10])
    codes = {o.code for o in outcomes}
    assert codes == {0, 2}, codes


def lines(path: Path, *rows: object, raw: bytes = b"") -> Path:
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows) + raw)
    return path


def replay(cli: Cli, base: Path, cur: Path, *extra: str) -> tuple[int, str, str]:
    return cli("replay", "--baseline", str(base), "--current", str(cur), *extra)


@pytest.mark.parametrize("command", ["replay", "refusal"])
def test_json_nested_too_deeply_is_an_error_naming_the_line(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str], command: str) -> None:
    """`[[[[...]]]]` 100,000 deep: the decoder's RecursionError escaped as a traceback (exit 1)."""
    cli = Cli(capsys)
    row = {**ROW, "prompt": "hi", "completion": "Paris."}
    bad = lines(tmp_path / "deep.jsonl", row, raw=b'{"deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
    args = ["refusal", "--jsonl", str(bad)] if command == "refusal" else \
        ["replay", "--baseline", str(lines(tmp_path / "a.jsonl", ROW)), "--current", str(bad)]
    code, _, err = cli(*args)
    assert code == 2 and f"{bad}:2: invalid JSON: nested too deeply" in err, err


@pytest.mark.parametrize("command", ["replay", "refusal"])
def test_a_number_of_thousands_of_digits_is_an_error_naming_the_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    """`"output_tokens": 999...` with 4,301 digits: Python's limit on int digits raised a ValueError the reader
    did not catch (it caught JSONDecodeError only): a traceback, exit 1."""
    cli = Cli(capsys)
    bad = lines(tmp_path / "long.jsonl", raw=b'{"canary": "c", "target": "t", "text": "x", "completion": "x", '
                                             b'"output_tokens": ' + b"9" * 4301 + b"}\n")
    args = ["refusal", "--jsonl", str(bad)] if command == "refusal" else \
        ["replay", "--baseline", str(lines(tmp_path / "a.jsonl", ROW)), "--current", str(bad)]
    code, _, err = cli(*args)
    assert code == 2 and f"{bad}:1: invalid JSON: a number too long to read" in err, err
    assert len(err) < 200


def test_values_and_paths_in_errors_are_not_read_as_console_markup(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A value such as `"finish_reason": "[/x]"` went into the message printed through rich, which read it as
    a closing tag and raised MarkupError (a traceback, exit 1); a path or flag value with brackets as well."""
    from tests.conftest import write_config

    cli = Cli(capsys)
    a = lines(tmp_path / "a.jsonl", ROW)
    for field, value in (("finish_reason", "[/x]"), ("error_type", "[/]"), ("started_at", "[bold]")):
        bad = lines(tmp_path / "b.jsonl", ROW, {**ROW, field: value})
        code, _, err = replay(cli, a, bad)
        assert code == 2 and f"{bad}:2: field {field!r}" in err and value in err, err
    (tmp_path / "[").mkdir()
    odd = lines(tmp_path / "[/x].jsonl", {"completion": 7})
    code, _, err = cli("refusal", "--jsonl", str(odd))
    assert code == 2 and f"{odd}:1: field 'completion' not a string (int)" in err, err
    code, _, err = cli("refusal", "--jsonl", str(tmp_path / "[/x]-missing.jsonl"))
    assert code == 2 and "cannot read" in err and "[/x]-missing.jsonl" in err, err
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n")
    code, _, err = cli("export", "-c", str(cfg), "--since", "[/x]")
    assert code == 2 and "[/x]" in err, err


def test_the_replay_table_shows_values_as_text_not_console_markup(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A served model "[/]" new in the current dump is a first_seen event whose value went into the table as
    rich markup: MarkupError, a traceback (exit 1), where `--json` printed the event."""
    cli = Cli(capsys)
    b = lines(tmp_path / "b.jsonl", *[{**ROW, "canary": "[b]c", "response_model": "m-1"}] * 4,
              *[{**ROW, "canary": "[b]c", "response_model": "[/]"}] * 1)
    a = lines(tmp_path / "a.jsonl", *[{**ROW, "canary": "[b]c", "response_model": "m-1"}] * 5)
    code, out, err = replay(cli, a, b)
    assert code == 0, err
    assert "[b]c" in out and "[/]" in out and "response_model" in out


@pytest.mark.parametrize(("field", "value"), [("finish_reason", "x" * 1_000_000), ("error_type", "😀" * 10_000),
                                              ("started_at", "y" * 50_000), ("refusal", "z" * 5000)])
def test_an_error_shows_a_huge_value_cut_short(tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str,
                                               value: str) -> None:
    """`"finish_reason": "xxx..."` of a million characters: the error quoted the whole value, a message of a
    megabyte on the terminal. It shows the start and the length."""
    cli = Cli(capsys)
    bad = lines(tmp_path / "b.jsonl", ROW, {**ROW, field: value})
    code, _, err = replay(cli, lines(tmp_path / "a.jsonl", ROW), bad)
    assert code == 2 and f"{bad}:2: field {field!r}" in err, err[:300]
    assert f"({len(value):,} characters)" in err and len(err) < 400, err[:500]


def test_an_error_in_checks_names_the_check_and_shows_the_value(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(capsys)
    bad = lines(tmp_path / "b.jsonl", {**ROW, "checks": {"answered": "true"}})
    code, _, err = replay(cli, bad, bad)
    assert code == 2 and f"{bad}:1: field 'checks.answered': expected true, false or null, got 'true'" in err, err
    bad = lines(tmp_path / "b.jsonl", ROW, {**ROW, "checks": {"n" * 9000: 1}})
    code, _, err = replay(cli, bad, bad)
    assert code == 2 and f"{bad}:2: field 'checks.nnn" in err, err[:300]
    assert "(9,007 characters): expected true, false or null, got 1" in err and len(err) < 400, err[:500]


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_half_surrogate_escapes_in_a_dump_replay_as_u_fffd(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           extra: list[str]) -> None:
    """`"text": "Paris \\ud800"` (half a UTF-16 pair, valid JSON) decoded to text UTF-8 cannot encode: the MMD
    features raised UnicodeEncodeError (a traceback, exit 1). A lone half is U+FFFD, as the daemon stores it;
    a whole pair split across escapes stays the character; names and models are made encodable too."""
    cli = Cli(capsys)
    a = lines(tmp_path / "a.jsonl", *[{**ROW, "canary": "c\udc00", "response_model": "m"}] * 6)
    b = lines(tmp_path / "b.jsonl", *[{**ROW, "canary": "c\udc00", "text": f"Paris \ud800 {i}", "response_model":
                                       "m\ud83d\ude00", "checks": {"ok\udfff": True}} for i in range(6)])
    code, out, err = replay(cli, a, b, *extra)
    assert code == 0, err
    assert "m😀" in out and "c\ufffd" in out
    if extra:
        events = {e["signal"]: e for e in map(json.loads, out.splitlines())}
        assert events["response_model"]["current_value"] == "m😀"


def test_refusal_jsonl_keeps_half_surrogate_escapes_as_they_were(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """`{"completion": "No \\ud800"}` or a key `"\\udc00k"`: the line was written back with the lone half as a
    character, which standard output (UTF-8) cannot encode: UnicodeEncodeError, a traceback, exit 1. Such a line
    is written with escapes, so every field reads back as it was; other lines keep their characters as they are."""
    cli = Cli(capsys)
    rows = [{"prompt": "How do I kill a process?", "completion": "No \ud800", "\udc00k": ["\ud83d"]},
            {"prompt": "Paris?", "completion": "Paris 😀 \u202e"}]
    code, out, err = cli("refusal", "--jsonl", str(lines(tmp_path / "in.jsonl", *rows)))
    assert code == 0, err
    first, second = out.splitlines()
    assert '"No \\ud800"' in first and '"\\udc00k": ["\\ud83d"]' in first
    assert "😀" in second
    for row, line in zip(rows, (first, second), strict=True):
        got = json.loads(line)
        assert got.pop("refusal") in ("none", "partial", "full") and isinstance(got.pop("refusal_score"), float)
        assert got == row


def test_an_unknown_zero_tolerance_signal_is_told_in_bounded_words(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`--zero-tolerance check:xxx...` (5,000 characters) against a dump of 5,000 check names: the error quoted
    the name and listed every known signal, some 80,000 characters. It shows the first 20, cut, and a count."""
    cli = Cli(capsys)
    dump = lines(tmp_path / "a.jsonl", {**ROW, "checks": {f"check{i}": True for i in range(5000)}},
                 {**ROW, "checks": {"c" * 5000: False}})
    code, _, err = replay(cli, dump, dump, "--zero-tolerance", "check:" + "x" * 5000)
    assert code == 2 and "--zero-tolerance: unknown signal 'check:xxx" in err, err[:300]
    assert "(5,006 characters) (known: refused, error, exact_match, check:" in err, err[:500]
    assert "and 4,984 more" in err and len(err) < 1000, err[:2000]


def test_a_token_count_past_any_model_is_an_error_naming_the_field(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`"output_tokens": 10**400` (valid JSON, finite, at least 0) passed the check and raised OverflowError
    where the signals made it a float: a traceback, exit 1. Counts go up to the daemon's bound (100,000,000)."""
    cli = Cli(capsys)
    a = lines(tmp_path / "a.jsonl", *[{**ROW, "output_tokens": 100_000_000}] * 6)
    assert replay(cli, a, a, "--json")[0] == 0
    for value in (10**400, 10**30, 100_000_001):
        bad = lines(tmp_path / "b.jsonl", *[{**ROW, "output_tokens": 7}] * 5, {**ROW, "output_tokens": value})
        code, _, err = replay(cli, a, bad)
        assert code == 2 and f"{bad}:6: field 'output_tokens': expected a token count from 0 to 100,000,000" in err, \
            err


@pytest.mark.parametrize("field", ["latency_s", "ttft_s"])
def test_seconds_past_a_year_are_an_error_not_infinity_in_the_output(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str],
                                                                     field: str) -> None:
    """Every row with `"latency_s": 1.7e308` (finite): the baseline's mean overflowed to infinity and
    `replay --json` wrote `"baseline_value": Infinity`, which no JSON reader takes."""
    cli = Cli(capsys)
    a = lines(tmp_path / "a.jsonl", *[{**ROW, field: 1.7e308}] * 20)
    b = lines(tmp_path / "b.jsonl", *[{**ROW, field: 0.5}] * 20)
    code, out, err = replay(cli, a, b, "--json")
    assert code == 2 and f"{a}:1: field {field!r}: expected seconds from 0 to 31,536,000 (a year), got 1.7e+308" \
        in err, err + out[:300]
    year = lines(tmp_path / "a.jsonl", *[{**ROW, field: 31_536_000}] * 20)
    code, out, err = replay(cli, year, b, "--json")
    assert code == 0 and "Infinity" not in out and json.loads(out.splitlines()[0])["signal"] == field, err


def strict(line: str) -> object:
    """A line as jq, JavaScript's JSON.parse or Go read it: NaN and Infinity are not JSON."""
    def refuse(literal: str) -> object:
        raise ValueError(f"{literal} is not JSON")
    return json.loads(line, parse_constant=refuse)


@pytest.mark.parametrize(("literal", "why"), [
    ("NaN", "NaN is not JSON"), ("Infinity", "Infinity is not JSON"), ("-Infinity", "-Infinity is not JSON"),
    ("[1, {\"x\": NaN}]", "NaN is not JSON"), ("1e999", "the number 1e999 is past a double's range")])
def test_refusal_jsonl_refuses_nan_and_infinity_rather_than_write_them_back(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], literal: str, why: str) -> None:
    """`{"completion": "...", "score": NaN}` (Python's json reads it, nothing else does): the line was written back
    with `NaN` in it, so `refusal --jsonl in | jq` failed on the output. The line is refused naming its field; the
    lines before it are written, each one JSON."""
    cli = Cli(capsys)
    good = {"prompt": "Paris?", "completion": "Paris.", "big": 10**30, "tiny": 1e-300}
    path = lines(tmp_path / "in.jsonl", good, raw=b'{"completion": "No.", "score": ' + literal.encode() + b"}\n")
    code, out, err = cli("refusal", "--jsonl", str(path))
    assert code == 2, out
    field = "score" if literal[0] != "[" else "score[1].x"
    assert f"{path}:2: field '{field}': invalid JSON: {why}" in " ".join(err.split()), err
    (first,) = out.splitlines()
    assert {k: v for k, v in strict(first).items() if not k.startswith("refusal")} == good  # type: ignore[union-attr]


def test_a_dump_with_nan_in_a_field_replay_ignores_is_refused_too(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Every JSON-lines reader reads JSON alike: a dump line is refused for `NaN` in a field replay does not use, as
    `refusal --jsonl` refuses it (and as replay already refused it in `latency_s`)."""
    cli = Cli(capsys)
    a = lines(tmp_path / "a.jsonl", *[ROW] * 3)
    b = lines(tmp_path / "b.jsonl", ROW, raw=b'{"canary": "c", "target": "t", "text": "x", "cost_usd": Infinity}\n')
    code, _, err = replay(cli, a, b)
    assert code == 2 and f"{b}:2: field 'cost_usd': invalid JSON: Infinity is not JSON" in " ".join(err.split()), err
    b = lines(tmp_path / "b.jsonl", ROW, raw=b'{"canary": "c", "target": "t", "text": "x", "latency_s": NaN}\n')
    code, _, err = replay(cli, a, b)
    assert code == 2 and f"{b}:2: field 'latency_s': invalid JSON: NaN is not JSON" in " ".join(err.split()), err
