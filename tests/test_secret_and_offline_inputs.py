"""Secrets put where a name belongs, secret files that are not text, and JSONL input that is not UTF-8: clear
errors naming file, line and field, never a traceback and never the secret."""

from __future__ import annotations

from pathlib import Path

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
