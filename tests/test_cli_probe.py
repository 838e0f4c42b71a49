"""`llm-monitor probe` as users run it: its JSON output, exit codes, the keys it needs, and a refusal judge that does not
answer."""

from __future__ import annotations

import json
import re
from pathlib import Path

from monitor.sim import SimServer
from tests.conftest import write_config
from tests.support.cli_config import ONE, two_targets
from tests.support.daemon import cli

REQUIRED = ["canary", "target", "started_at", "text", "finish_reason", "response_model", "system_fingerprint",
            "input_tokens", "output_tokens", "cost_usd", "latency_s", "ttft_s", "output_tokens_per_s", "error_type"]


def test_probe_json_has_the_documented_fields(tmp_path: Path, steady_sim: SimServer) -> None:
    cfg = write_config(tmp_path, two_targets(steady_sim), ONE)
    out = cli("probe", "-c", str(cfg), "--json", env={"K": "k"})
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 6
    for row in rows:
        assert all(k in row for k in REQUIRED), set(REQUIRED) - set(row)
        assert row["error_type"] is None and row["text"] and row["output_tokens"] > 0
    assert {r["target"] for r in rows} == {"gpt", "claude"}
    assert all(r["ttft_s"] is None for r in rows if r["target"] == "claude")  # not streamed
    only = cli("probe", "-c", str(cfg), "--json", "--target", "claude", env={"K": "k"})
    assert {json.loads(x)["target"] for x in only.stdout.splitlines()} == {"claude"}


def test_probe_exits_1_on_failed_calls(tmp_path: Path, faults_sim: SimServer) -> None:
    tgt = f"  - {{id: f, provider: openai, base_url: '{faults_sim.openai_base_url}', model: fault-server-error}}"
    out = cli("probe", "-c", str(write_config(tmp_path, tgt, ONE)), "--json")
    assert out.returncode == 1
    assert {json.loads(x)["error_type"] for x in out.stdout.splitlines()} == {"server_error"}


def test_probe_of_an_unknown_canary_names_the_known_ones(tmp_path: Path, steady_sim: SimServer) -> None:
    out = cli("probe", "-c", str(write_config(tmp_path, two_targets(steady_sim), ONE)), "--canary", "kill-python")
    assert out.returncode == 2
    assert out.stderr.strip() == ("error: no canary x target pair matches --canary kill-python (canaries: "
                                  "kill-python-process; targets: gpt, claude)")


def test_missing_key_is_a_clear_start_error(tmp_path: Path, steady_sim: SimServer) -> None:
    out = cli("probe", "-c", str(write_config(tmp_path, two_targets(steady_sim), ONE)))
    assert out.returncode == 2
    assert "environment variable K (named by api_key_env) is not set" in out.stderr


def test_probe_needs_only_the_keys_of_the_targets_it_calls(tmp_path: Path, steady_sim: SimServer) -> None:
    """`probe --target claude` on a shared config, run where only claude's key is set (an on-call laptop), used to
    refuse to start over every other target's unset key; the judge a probed canary's check calls is still needed."""
    targets = (f"  - {{id: gpt, provider: openai, base_url: '{steady_sim.openai_base_url}', model: sim-gpt, "
               "api_key_env: GPT_KEY}\n"
               f"  - {{id: claude, provider: anthropic, base_url: '{steady_sim.url}', model: sim-claude, "
               "api_key_env: CLAUDE_KEY, stream: false}\n"
               f"  - {{id: judge, provider: openai, base_url: '{steady_sim.openai_base_url}', model: sim-gpt, "
               "api_key_env: JUDGE_KEY, canaries: listed}")
    graded = ONE + """\
  - id: graded
    messages: [{role: user, content: "How do I stop a service?"}]
    targets: [gpt]
    checks: [{type: llm_judge, judge_target: judge, rubric: "Names systemctl stop."}]
"""
    cfg = write_config(tmp_path, targets, graded)
    unset = {"GPT_KEY": "", "CLAUDE_KEY": "", "JUDGE_KEY": ""}
    claude = cli("probe", "-c", str(cfg), "--json", "--target", "claude", env={**unset, "CLAUDE_KEY": "k"})
    assert claude.returncode == 0, claude.stderr
    rows = [json.loads(line) for line in claude.stdout.splitlines()]
    assert len(rows) == 3 and {(r["canary"], r["target"]) for r in rows} == {("kill-python-process", "claude")}
    gpt = cli("probe", "-c", str(cfg), "--target", "gpt", env={**unset, "GPT_KEY": "k"})
    assert gpt.returncode == 2 and f"{cfg}:4: target judge: environment variable JUDGE_KEY (named by api_key_env) is " \
        "not set" in " ".join(gpt.stderr.split())


def test_an_unreachable_refusal_judge_does_not_stop_the_start(tmp_path: Path, steady_sim: SimServer,
                                                              faults_sim: SimServer) -> None:
    """The refusal judge calibrates when the app starts (the daemon's start, a standby taking the lead, `probe`).
    A judge whose calls fail (here its server answers 500) crashed that start with a traceback, so an outage of
    the judge's provider took the whole monitor down with it."""
    targets = two_targets(steady_sim) + (
        f"\n  - {{id: judge, provider: openai, base_url: '{faults_sim.openai_base_url}', model: fault-server-error, "
        "canaries: listed}")
    cfg = write_config(tmp_path, targets, ONE, extra="refusal: {judge_target: judge}\n")
    out = cli("probe", "-c", str(cfg), "--json", "--target", "gpt", env={"K": "k"})
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert "refusal judge judge on fault-server-error" in out.stderr and "NOT trusted" in out.stderr, out.stderr
    assert "call(s) failed, first: RuntimeError: judge judge failed: server_error" in out.stderr, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 3 and all(r["refusal"] in ("none", "partial", "full") for r in rows)


def test_the_table_shows_why_a_call_failed_short_and_without_the_key(tmp_path: Path) -> None:
    """The table showed `auth` and nothing else for a failed call (only --json had the message)."""
    from tests.support.jsonserver import json_server

    key = "sk-live-abcdefghijklmnop0123456789"

    def answer(body: dict, headers: dict[str, str]) -> tuple[int, object]:  # a LiteLLM-style proxy echoing the key
        said = f"Authentication Error, Received API Key = {headers.get('authorization', '').removeprefix('Bearer ')}"
        return 401, {"error": {"message": said + " [/bold] " + "x" * 500, "type": "auth_error"}}

    with json_server(answer) as url:
        tgt = f"  - {{id: t, provider: openai, base_url: '{url}/v1', model: m, api_key_env: K, stream: false}}"
        cfg = write_config(tmp_path, tgt, ONE.replace("samples: 3", "samples: 1"))
        out = cli("probe", "-c", str(cfg), env={"K": key, "COLUMNS": "200"})
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    table = " ".join(out.stdout.replace("│", " ").split())
    assert "error" in out.stdout.splitlines()[1] and "auth" in table  # a column of its own
    assert "Authentication Error, Received API Key = <redacted> [/bold] xxx" in table
    assert key not in out.stdout and "abcdefghijklmnop" not in out.stdout
    assert "x" * 120 not in table.replace(" ", "") and "…" in table  # cut short: --json has it (300 characters)


def test_probe_exits_1_when_a_check_failed_and_0_when_all_passed(tmp_path: Path, steady_sim: SimServer) -> None:
    """Like a test runner: an answered call whose check failed is a failure of the probe, not only a failed call."""
    tgt = f"  - {{id: gpt, provider: openai, base_url: '{steady_sim.openai_base_url}', model: sim-gpt, api_key_env: K}}"
    failing = ONE + "    checks: [{type: contains, value: 'no answer holds this 7f3a9c', name: kw}]\n"
    out = cli("probe", "-c", str(write_config(tmp_path, tgt, failing)), "--json", env={"K": "k"})
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert rows and all(r["error_type"] is None for r in rows), out.stderr  # every call answered
    assert out.returncode == 1, out.stderr
    passing = ONE + "    checks: [{type: not_contains, value: 'no answer holds this 7f3a9c', name: kw}]\n"
    out = cli("probe", "-c", str(write_config(tmp_path, tgt, passing)), "--json", env={"K": "k"})
    assert out.returncode == 0, out.stderr


def test_probe_of_a_target_its_spend_cap_pauses_says_so_and_exits_1(tmp_path: Path, steady_sim: SimServer) -> None:
    # Found by QA: it printed an empty table and exited 1, explained only by a log warning
    capped = two_targets(steady_sim).replace("api_key_env: K}", "api_key_env: K, daily_spend_cap_usd: 0.000001, "
                                             "prices: {input: 1000, output: 1000}}", 1)
    cfg = str(write_config(tmp_path, capped, ONE))
    first = cli("probe", "-c", cfg, "--target", "gpt", env={"K": "k"})  # its first run reaches the cap
    assert first.returncode == 0, first.stderr
    again = cli("probe", "-c", cfg, "--target", "gpt", env={"K": "k"})
    assert again.returncode == 1 and "canary" not in again.stdout  # no empty table
    [line] = [x for x in again.stderr.splitlines() if x.startswith("nothing ran")]
    assert re.fullmatch(r"nothing ran: target gpt is paused by its daily spend cap \(\$1e-06\) until "
                        r"\d{4}-\d\d-\d\dT00:00:00\+00:00", line), line
    both = cli("probe", "-c", cfg, "--json", env={"K": "k"})  # claude runs; gpt does not, and that is said
    assert both.returncode == 0 and {json.loads(x)["target"] for x in both.stdout.splitlines()} == {"claude"}
    assert "not run: target gpt is paused by its daily spend cap" in both.stderr


def test_an_empty_canary_name_that_matches_nothing_is_shown_as_typed(tmp_path: Path, steady_sim: SimServer) -> None:
    """`probe --canary ''` said "no canary x target pair matches  (canaries: ...)": the empty name, as typed."""
    out = cli("probe", "-c", str(write_config(tmp_path, two_targets(steady_sim), ONE)), "--canary", "")
    assert out.returncode == 2
    assert out.stderr.startswith("error: no canary x target pair matches --canary '' (canaries: kill-python-process;")
