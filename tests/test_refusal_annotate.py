"""annotate_jsonl: a round trip that keeps every field, and errors that name file, line and field."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from monitor.refusal import AnnotateError, annotate_jsonl


def test_round_trip(tmp_path: Path) -> None:
    rows = [
        {
            "id": 1,
            "prompt": "How do I reset my router?",
            "completion": "I'm sorry, but I can't help with that.",
        },
        {
            "id": 2,
            "prompt": "Capital of France?",
            "completion": "Paris is the capital of France.",
            "extra": [1],
        },
        {"id": 3, "completion": "申し訳ありませんが、その質問にはお答えできません。"},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n", encoding="utf-8")
    out = io.StringIO()
    assert annotate_jsonl(src, out) == 3
    got = [json.loads(line) for line in out.getvalue().splitlines()]
    for before, after in zip(rows, got, strict=True):
        assert {k: after[k] for k in before} == before
        assert after["refusal"] in {"none", "partial", "full"}
        assert 0.0 <= after["refusal_score"] <= 1.0
    assert [g["refusal"] != "none" for g in got] == [True, False, True]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"prompt": "x"}', "in.jsonl:2: field 'completion' missing (nor 'text')"),
        ('{"text": 5}', "in.jsonl:2: field 'text' not a string (int)"),
        ('{"completion": 5}', "in.jsonl:2: field 'completion' not a string (int)"),
        ('{"completion": "ok", "prompt": 3}', "in.jsonl:2: field 'prompt' not a string (int)"),
        ("{not json", "in.jsonl:2: invalid JSON"),
        ("[1, 2]", "in.jsonl:2: expected a JSON object"),
    ],
)
def test_bad_line_names_file_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"completion": "Fine."}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(AnnotateError) as e:
        annotate_jsonl(src, io.StringIO())
    assert message in str(e.value)


def test_text_stands_in_for_a_missing_completion(tmp_path: Path) -> None:
    """`export` writes `text`: `export | refusal --jsonl -` labels its lines, keeping their fields."""
    rows = [
        {"canary": "c", "target": "t", "text": "I'm sorry, but I can't help with that.", "refusal": "none"},
        {"canary": "c", "target": "t", "text": "Paris is the capital of France.", "started_at": "2026-01-01T00:00:00Z"},
        {"completion": "Paris.", "text": "I'm sorry, but I can't help with that."},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = io.StringIO()
    assert annotate_jsonl(src, out) == 3
    got = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [g["refusal"] for g in got] == ["full", "none", "none"]  # `completion` wins when both are there
    assert {k: got[1][k] for k in rows[1]} == rows[1] and 0.0 <= got[1]["refusal_score"] <= 1.0


def test_an_exported_failed_call_is_not_labelled_and_a_content_filter_is_a_refusal(tmp_path: Path) -> None:
    """Found by review: `export | refusal` labelled a failed call's empty text `none`. As the daemon has it, an outage
    answered nothing to label (null), and the provider's own signals (`error_type` content_filter, `finish_reason`
    content_filter or refusal) are refusals."""
    rows = [
        {"canary": "c", "target": "t", "text": "", "error_type": "timeout", "refusal": None},
        {"canary": "c", "target": "t", "text": "", "error_type": "content_filter"},
        {"canary": "c", "target": "t", "text": "Here is the first part", "finish_reason": "content_filter"},
        {"canary": "c", "target": "t", "text": "Paris.", "finish_reason": "stop", "error_type": None},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = io.StringIO()
    assert annotate_jsonl(src, out) == 4
    got = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(g["refusal"], g["refusal_score"] is None) for g in got] == [
        (None, True), ("full", False), ("partial", False), ("none", False)]


def test_standard_input_is_named_as_such() -> None:
    import subprocess

    from tests.support.daemon import EXE

    bad = subprocess.run([*EXE, "refusal", "--jsonl", "-"], input='{"completion": "Fine."}\n{"prompt": "x"}\n',
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "<stdin>:2: field 'completion' missing (nor 'text')" in bad.stderr


def test_a_lines_refusal_text_is_a_refusal_and_must_be_text(tmp_path: Path) -> None:
    """Found by review23: `refusal_text` (the provider's refusal, which `export` writes) was not read: a refusal given
    in OpenAI's `refusal` field, with no content, was labelled none."""
    rows = [{"text": "", "refusal_text": "I can't help with that request."},
            {"text": "Paris.", "refusal_text": None}, {"text": "Paris.", "refusal_text": "  "}]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = io.StringIO()
    assert annotate_jsonl(src, out) == 3
    assert [json.loads(line)["refusal"] for line in out.getvalue().splitlines()] == ["full", "none", "none"]
    src.write_text(json.dumps({"text": "Paris.", "refusal_text": 1}) + "\n", encoding="utf-8")
    with pytest.raises(AnnotateError, match=r"in.jsonl:1: field 'refusal_text' not a string \(int\)"):
        annotate_jsonl(src, io.StringIO())


def test_only_the_daemons_own_error_types_leave_a_line_unlabelled(tmp_path: Path) -> None:
    """Found by review23: any `error_type` but content_filter left `refusal` null, one the daemon never writes (another
    tool's `HTTPError`, `Timeout` capitalised) too: the line's text was never judged."""
    rows = [{"text": "I'm sorry, but I can't help with that.", "error_type": kind}
            for kind in ("HTTPError", "Timeout", "", "timeout", "internal")]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = io.StringIO()
    assert annotate_jsonl(src, out) == 5
    assert [json.loads(line)["refusal"] for line in out.getvalue().splitlines()] == ["full", "full", "full", None, None]


def test_a_standard_output_that_fails_is_not_blamed_on_the_input(tmp_path: Path) -> None:
    # Found by a newcomer: `refusal --jsonl all.jsonl | head -c 10` said "error: cannot read all.jsonl: Broken pipe"
    # (exit 2), and a full disk "cannot read all.jsonl: No space left on device": the input was read fine
    import os
    import subprocess

    from tests.support.daemon import EXE

    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"completion": f"Answer {i}."}) + "\n" for i in range(3)), encoding="utf-8")
    with open("/dev/full", "w") as full:
        done = subprocess.run([*EXE, "refusal", "--jsonl", str(src)], stdout=full, stderr=subprocess.PIPE, text=True,
                              timeout=60)
    assert done.returncode == 1, done.stderr
    assert "error: standard output: cannot write: No space left on device" in done.stderr
    assert "cannot read" not in done.stderr
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line: as `| head` that has read enough
    try:
        done = subprocess.run([*EXE, "refusal", "--jsonl", str(src)], stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    finally:
        os.close(write)
    assert done.returncode == 0 and done.stderr == ""
