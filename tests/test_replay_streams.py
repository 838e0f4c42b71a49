"""`replay` on dumps that do not hold the same canaries and targets: what was not compared is said, never shown
as a clean result."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.daemon import cli


def write(path: Path, pairs: list[tuple[str, str]], text: str = "Use kill -9 PID.") -> Path:
    path.write_text("".join(json.dumps({"canary": c, "target": t, "text": text}) + "\n"
                            for c, t in pairs for _ in range(30)))
    return path


def test_dumps_that_share_no_stream_are_an_error_naming_both_files_and_what_each_holds(tmp_path: Path) -> None:
    # A dump of another canary set (or an export with a typo in --target) replayed to an empty table, exit 0:
    # "no drift", when nothing had been compared.
    base = write(tmp_path / "march.jsonl", [("prime", "gpt")])
    cur = write(tmp_path / "june.jsonl", [("essay", "gpt"), ("prime", "claude")])
    out = cli("replay", "--baseline", str(base), "--current", str(cur), "--json")
    assert out.returncode == 2 and out.stdout == ""
    assert f"{base} and {cur} share no canary x target" in out.stderr
    assert f"{base} holds prime@gpt" in out.stderr and f"{cur} holds essay@gpt, prime@claude" in out.stderr


def test_streams_in_one_dump_only_are_named_and_the_shared_ones_compared(tmp_path: Path) -> None:
    base = write(tmp_path / "a.jsonl", [("prime", "gpt"), ("old", "gpt")])
    cur = write(tmp_path / "b.jsonl", [("prime", "gpt"), ("new", "gpt")], text="I can't help with that.")
    out = cli("replay", "--baseline", str(base), "--current", str(cur), "--json")
    assert out.returncode == 0, out.stderr
    assert {json.loads(x)["canary"] for x in out.stdout.splitlines()} == {"prime"}
    assert f"old@gpt (in {base} only)" in out.stderr and f"new@gpt (in {cur} only)" in out.stderr
    same = cli("replay", "--baseline", str(base), "--current", str(base), "--json")
    assert same.returncode == 0 and same.stderr == ""
