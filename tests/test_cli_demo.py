"""`llm-monitor demo` as users run it: metrics within a minute, the store it keeps (and never a monitor.yaml it would
overwrite), its summary of drift events, and a kept config that runs again on the simulator its header names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.daemon import cli, clis, free_port


@pytest.mark.slow
def test_demo_exports_metrics_within_60_seconds_and_keeps_its_store(tmp_path: Path) -> None:
    port = free_port()
    kept = tmp_path / "kept"
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "demo", "--port", str(port), "--duration", "60s",
                             "--keep", str(kept)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        count = 0.0
        while time.monotonic() < deadline and count == 0:
            time.sleep(1)
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                continue
            count = sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                        if line.startswith("gen_ai_client_operation_duration_seconds_count"))
        assert count > 0
        out, _ = proc.communicate(timeout=120)  # it stops itself at --duration, with its summary of events
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "✓" in out  # observations printed as they arrive
    # one line per observation, piped as well (not cut at 80 columns), the tokens and the text on the same line
    assert all(" tok" in line for line in out.splitlines() if " ✓ " in line and " @ " in line)
    # --keep: the store and its config stay, for drift, diff and export; a second demo there is refused
    assert f"Store kept in {kept}" in out and f"llm-monitor drift -c {kept / 'monitor.yaml'}" in out
    # the three commands at once (drift and export only read; the second demo refuses before it opens anything)
    listed, exported, again = clis(("drift", "-c", str(kept / "monitor.yaml"), "--json"),
                                   ("export", "-c", str(kept / "monitor.yaml")),
                                   ("demo", "--keep", str(kept), "--duration", "1s"), timeout=60)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    # the scenario changes at 45 s: by 60 s the demo has shown the first events opening (the refusal the flagship
    # canary declares zero-tolerance for, and the served model's rotation)
    opened = {(e["canary"], e["target"], e["signal"]) for e in map(json.loads, listed.stdout.splitlines())}
    assert ("kill-python-process", "sim-gpt", "refused") in opened, sorted(opened)
    assert ("kill-python-process", "sim-gpt", "response_model") in opened, sorted(opened)
    assert exported.returncode == 0 and exported.stdout.count("\n") > 0, exported.stderr
    assert again.returncode == 2 and "an earlier demo's store" in again.stderr and "Traceback" not in again.stderr


def test_demo_keep_never_overwrites_a_monitor_yaml(tmp_path: Path) -> None:
    """`demo --keep .` in a project folder must not replace the project's monitor.yaml with the demo's."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "monitor.yaml").write_text("# the user's own config\n")
    # both at once: each is refused before it writes anything
    r, file = clis(("demo", "--keep", str(project), "--duration", "1s", "--port", str(free_port())),
                   ("demo", "--keep", str(project / "monitor.yaml"), "--duration", "1s"), timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"{project / 'monitor.yaml'} exists and the demo would overwrite it" in " ".join(r.stderr.split())
    assert (project / "monitor.yaml").read_text() == "# the user's own config\n"
    assert not (project / "demo.db").exists()
    assert file.returncode == 2 and "is not a folder" in " ".join(file.stderr.split()), file.stderr


def test_demo_summary_lists_the_events_and_shows_evidence(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    from monitor.commands.demo import summary
    from monitor.drift.events import DriftEvent, evidence

    def event(signal: str, kind: str, **kw: Any) -> DriftEvent:
        return DriftEvent(canary="kill-python-process", target="sim-gpt", signal=signal, kind=kind, test="t",
                          baseline_value=0.0, current_value=1.0, effect_size=None, statistic=None, p_value=0.001,
                          threshold=None, baseline_n=12, current_n=3, first_obs_id="o1",
                          first_obs_at="2026-11-29T13:14:00", opened_at="2026-11-29T13:14:41", **kw)

    summary([event("response_model", "model"),
             event("refused", "behaviour", evidence=evidence("Use kill -9 PID.", "I can't help with that."))],
            tmp_path)
    out = capsys.readouterr().out
    assert "drift events of this demo (2)" in out and "response_model" in out and "refused" in out
    assert "Evidence of refused on kill-python-process @ sim-gpt" in out
    assert "[-Use kill -9 PID.-] {+I can't help with that.+}" in out  # piped: the diff keeps its markers
    assert f"llm-monitor diff kill-python-process -c {tmp_path / 'monitor.yaml'}" in out
    summary([], tmp_path / "my demo")
    out = capsys.readouterr().out
    assert "No drift event opened" in out and f"llm-monitor drift -c '{tmp_path / 'my demo' / 'monitor.yaml'}'" in out


def test_a_kept_demo_config_runs_again_on_a_simulator_started_as_its_header_says(tmp_path: Path) -> None:
    import re

    from monitor.commands.demo import DEMO_KEY_ENV, demo_config

    port = free_port()
    demo_config(tmp_path, f"http://127.0.0.1:{port}/v1", f"http://127.0.0.1:{port}", free_port(), "5s")
    written = (tmp_path / "monitor.yaml").read_text()
    said = re.search(r"`llm-monitor sim --port (\d+)`", written)
    assert said and DEMO_KEY_ENV in written.split("targets:")[0]
    # and that the file runs the whole library on its own schedules, not the demo's few canaries every 5s
    assert "canaries tagged `demo`, every 5s" in written.split("targets:")[0]
    sim = subprocess.Popen([sys.executable, "-m", "monitor.cli", "sim", "--port", said[1]],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120  # as Daemon.wait_ready
        with httpx.Client(timeout=1) as polls:  # one client: httpx.get costs 40 ms of CPU a call
            while time.monotonic() < deadline:
                try:
                    polls.get(f"http://127.0.0.1:{port}/")
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
        probed = cli("probe", "-c", str(tmp_path / "monitor.yaml"), "--canary", "kill-python-process", "--json",
                     env={DEMO_KEY_ENV: "any"}, timeout=60)
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    assert probed.returncode in (0, 1) and "Traceback" not in probed.stderr, probed.stderr  # 1: the scenario's 429s
    answered = {o["target"] for o in map(json.loads, probed.stdout.splitlines()) if o["error_type"] is None}
    assert answered == {"sim-gpt", "sim-claude"}, probed.stdout


def test_demo_lines_carry_the_time_they_are_printed_so_they_stay_in_order() -> None:
    """A run reports its samples when its last call ends; stamping lines with each call's start put a run begun at
    :11 below one begun at :12 that finished first (seen in the demo's output)."""
    from datetime import UTC, datetime

    from rich.console import Console

    from monitor.commands.demo import printer
    from monitor.domain import CallResult, ErrorType, Observation

    console = Console(record=True, width=200, color_system=None)
    printed = iter([datetime(2026, 11, 30, 10, 47, 12, tzinfo=UTC), datetime(2026, 11, 30, 10, 47, 13, tzinfo=UTC)])
    show = printer(console, clock=lambda: next(printed))
    show(Observation("slow", "t", "sim", "m", datetime(2026, 11, 30, 10, 47, 9, tzinfo=UTC), CallResult(text="ok")))
    show(Observation("fail", "t", "sim", "m", datetime(2026, 11, 30, 10, 47, 1, tzinfo=UTC),
                     CallResult(text="", error_type=ErrorType.TIMEOUT, error_message="no answer")))
    lines = console.export_text().splitlines()
    assert lines[0].startswith("10:47:12 ✓ slow @ t") and lines[1].startswith("10:47:13 ✗ fail @ t"), lines


def test_a_call_whose_checks_failed_is_not_marked_as_all_well() -> None:
    # Found by a newcomer: demo and probe marked an answered call ✓ however many of its checks failed.
    from datetime import UTC, datetime

    from rich.console import Console

    from monitor.commands.demo import printer
    from monitor.commands.probe import observation_table
    from monitor.domain import CallResult, CheckResult, FinishReason, Observation

    at = datetime(2026, 11, 30, 10, 47, 9, tzinfo=UTC)
    checks = (CheckResult("kw", "contains", True), CheckResult("fmt", "json_valid", False),
              CheckResult("judge", "llm_judge", None))
    good = Observation("good", "t", "sim", "m", at, CallResult(text="ok", finish_reason=FinishReason.STOP),
                       checks=[checks[0]])
    bad = Observation("bad", "t", "sim", "m", at, CallResult(text="ok", finish_reason=FinishReason.STOP),
                      checks=list(checks))
    console = Console(record=True, width=200, color_system=None)
    show = printer(console, clock=lambda: at)
    show(good)
    show(bad)
    lines = console.export_text().splitlines()
    assert lines[0].startswith("10:47:09 ✓ good @ t") and "failed" not in lines[0], lines
    assert lines[1].startswith("10:47:09 ! bad @ t") and "failed 1/3 checks: fmt" in lines[1], lines
    assert "  " not in lines[0]  # no model or fingerprint served: no gap where they would be
    served = Observation("s", "t", "sim", "m", at, CallResult(text="ok", response_model="m-2", system_fingerprint="fp"))
    show(served)
    assert console.export_text().splitlines()[-1].startswith("10:47:09 ✓ s @ t m-2 fp 0.00s")
    console = Console(record=True, width=300, color_system=None)
    console.print(observation_table([good, bad]))
    rows = {line.split("│")[1].strip(): line.split("│")[4].strip() for line in console.export_text().splitlines()
            if line.startswith("│")}
    assert rows == {"good": "✓ stop", "bad": "! stop"}, rows


def test_a_check_named_like_markup_is_shown_as_written() -> None:
    # A check may be named anything: `kw[/]` ended probe's table with a MarkupError, and the demo showed `[bold]x` as x
    from datetime import UTC, datetime

    from rich.console import Console

    from monitor.commands.demo import printer
    from monitor.commands.probe import observation_table
    from monitor.domain import CallResult, CheckResult, FinishReason, Observation

    at = datetime(2026, 11, 30, 10, 47, 9, tzinfo=UTC)
    bad = Observation("bad", "t", "sim", "m", at, CallResult(text="ok", finish_reason=FinishReason.STOP),
                      checks=[CheckResult("kw[/]", "contains", False), CheckResult("[bold]x", "contains", False)])
    console = Console(record=True, width=300, color_system=None)
    printer(console, clock=lambda: at)(bad)
    console.print(observation_table([bad]))
    out = console.export_text()
    assert "failed 2/2 checks: kw[/], [bold]x" in out and "kw[/]:✗, [bold]x:✗" in out, out


def test_an_answer_or_error_like_markup_is_shown_as_written() -> None:
    # Found by reading: an answer holding `[/INST]` (a Llama template leaking, as servers do) ended the demo's
    # printer with a MarkupError; so did a model name or an error message with a closing tag
    from datetime import UTC, datetime

    from rich.console import Console

    from monitor.commands.demo import printer
    from monitor.domain import CallResult, ErrorType, FinishReason, Observation

    at = datetime(2026, 11, 30, 10, 47, 9, tzinfo=UTC)
    answered = Observation("c", "t", "sim", "m", at, CallResult(text="sure [/INST] here", response_model="m[/]",
                                                                finish_reason=FinishReason.STOP))
    failed = Observation("c", "t", "sim", "m", at, CallResult(error_type=ErrorType.SERVER_ERROR,
                                                              error_message="HTTP 500: [/b] broke"))
    console = Console(record=True, width=300, color_system=None)
    show = printer(console, clock=lambda: at)
    show(answered)
    show(failed)
    out = console.export_text()
    assert "'sure [/INST] here'" in out and "m[/]" in out and "HTTP 500: [/b] broke" in out, out
