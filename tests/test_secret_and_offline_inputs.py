"""Secrets put where a name belongs, secret files that are not text, and JSONL input that is not UTF-8: clear
errors naming file, line and field, never a traceback and never the secret."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.support.daemon import cli

TARGET = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m%s}"
PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n"
SLACK = "https://hooks.slack.com/services/T0000000/B0000000/XyZsecretTOKENvalue1234"


def test_a_slack_url_given_where_its_variable_name_belongs_is_refused_without_echoing_it(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, TARGET % "", PROBES,
                       extra=f"alerts:\n  sinks:\n    - {{name: s, type: slack, url_env: '{SLACK}'}}\n")
    run = cli("check-config", "-c", str(cfg))
    assert run.returncode == 2
    assert "alerts.sinks[0].url_env: must be the NAME of an environment variable" in run.stderr
    assert "(value: '<redacted>')" in run.stderr
    assert "XyZsecret" not in run.stderr + run.stdout


def test_secret_files_that_are_not_utf8_are_named_without_their_bytes(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"\xffsk-\xfe-secret-bytes")
    cfg = write_config(tmp_path, TARGET % f", api_key_file: '{key}'", PROBES,
                       extra=f"alerts:\n  sinks:\n    - {{name: h, type: webhook, url: 'http://127.0.0.1:9/h', "
                             f"secret_file: '{key}'}}\n")
    run = cli("check-config", "-c", str(cfg))
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert f"{cfg}:2: target t: api_key_file {key} is not UTF-8 text" in run.stderr.replace("\n", "")
    assert f"alert sink h: secret_file {key} is not UTF-8 text" in run.stderr
    assert "secret-bytes" not in run.stdout + run.stderr
    start = cli("run", "-c", str(cfg))
    assert start.returncode == 2 and "Traceback" not in start.stderr and f"{cfg}:2: target t: api_key_file {key} is not UTF-8 text" in start.stderr


def test_refusal_jsonl_that_is_not_utf8_names_the_line_and_a_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'\xef\xbb\xbf{"completion": "Sure, here it is."}\n{"completion": "caf\xe9"}\n')
    run = cli("refusal", "--jsonl", str(src))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert f"{src}:2: not UTF-8 text (byte 0xe9 at column 20)" in run.stderr
    assert run.stdout.count("refusal_score") == 1  # the first line, BOM and all


@pytest.mark.parametrize("kind", ["folder", "fifo", "device", "large"])
def test_an_api_key_file_that_is_no_small_regular_file_is_refused_without_reading_it(tmp_path: Path,
                                                                                      kind: str) -> None:
    """A folder, a named pipe (FIFO: reading it waited for a writer for good, check-config and `run` hung), a device
    (/dev/zero: read until memory ran out) or a file past 64 KiB (a log, a dump: it was read whole and sent as the
    key) is refused, naming the file and what it is; what it holds is never shown."""
    key = tmp_path / "key"
    if kind == "folder":
        key.mkdir()
    elif kind == "fifo":
        os.mkfifo(key)
    elif kind == "large":
        key.write_text("sk-secret-line\n" * 5000)  # 75,000 bytes
    else:
        key = Path("/dev/zero")
    cfg = write_config(tmp_path, TARGET % f", api_key_file: '{key}'", PROBES)
    run = cli("check-config", "-c", str(cfg), timeout=60)
    said = {"folder": "is a folder, not a file", "fifo": "is a named pipe (FIFO), not a file",
            "device": "is a device, not a file", "large": "is larger than 64 KiB (75,000 bytes): a key file holds "
                                                            "one key (what it holds is not shown)"}[kind]
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stdout + run.stderr
    assert f"{cfg}:2: target t: api_key_file {key} {said}" in run.stderr.replace("\n", ""), run.stderr
    assert "sk-secret" not in run.stdout + run.stderr


def test_a_sink_secret_file_that_is_no_small_regular_file_is_refused_too(tmp_path: Path) -> None:
    fifo = tmp_path / "hook"
    os.mkfifo(fifo)
    cfg = write_config(tmp_path, TARGET % "", PROBES, extra=f"alerts:\n  sinks:\n    - {{name: h, type: webhook, url: "
                                                            f"'http://127.0.0.1:9/h', secret_file: '{fifo}'}}\n")
    run = cli("check-config", "-c", str(cfg), timeout=60)
    assert run.returncode == 2 and f"alert sink h: secret_file {fifo} is a named pipe (FIFO), not a file" in run.stderr
