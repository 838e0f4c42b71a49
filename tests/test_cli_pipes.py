"""The read commands as a pipeline's first stage: a reader that stops early (`| head -1`) ends them quietly."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from monitor.sim import scenario_from_dict
from tests.support.daemon import EXE
from tests.support.drift_app import stored_runs

SCENARIO = scenario_from_dict({"name": "pipes", "seed": 3, "defaults": {"ttft": 5, "output_tps": 5000},
                               "models": {"m": {"phases": [{"name": "a"}]}}})


@pytest.fixture
async def stored(tmp_path: Path) -> Path:
    """A store with a formed baseline for canary c1 x target t and observations after it; its config path."""
    cfg, _ = await stored_runs(tmp_path, SCENARIO, 5, "{baseline_size: 5}", 2)
    return cfg


def closed_pipe_run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `llm-monitor ARGS` writing into a pipe whose reader has gone (as `| head` that has read enough)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([*EXE, *args], stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)


def test_a_closed_pipe_ends_every_read_command_quietly_with_exit_0(stored: Path) -> None:
    # Found by QA: `diff ... | head -1` and `baseline show | head -1` exited 1 (rich's console ends the program
    # with exit 1 on a broken pipe), where `drift --json` and `export` exited 0, as Unix tools do
    cfg = str(stored)
    runs = {" ".join(a for a in args if a != cfg): closed_pipe_run(*args) for args in (
        ["diff", "c1", "-c", cfg], ["baseline", "show", "-c", cfg], ["baseline", "show", "-c", cfg, "--json"],
        ["drift", "-c", cfg], ["drift", "-c", cfg, "--json"], ["export", "-c", cfg],
        ["alerts", "pending", "-c", cfg, "--all"])}
    assert {name: (done.returncode, done.stderr) for name, done in runs.items() if (done.returncode, done.stderr)
            != (0, "")} == {}


def test_an_output_that_cannot_be_written_is_one_line_and_exit_1(stored: Path) -> None:
    # Found by QA: `diff`, `drift`, `baseline show` and `alerts pending` into a full disk ended with a traceback,
    # where `export` says `error: standard output: cannot write: No space left on device` (a runtime error, exit 1)
    cfg = str(stored)
    runs = {}
    for args in (["diff", "c1"], ["baseline", "show"], ["baseline", "show", "--json"], ["drift"],
                 ["alerts", "pending", "--all"], ["store", "scrub"]):
        with open("/dev/full", "w") as full:
            runs[" ".join(args)] = subprocess.run([*EXE, *args, "-c", cfg], stdout=full, stderr=subprocess.PIPE,
                                                  text=True, timeout=60)
    said = "error: standard output: cannot write: No space left on device\n"
    assert {name: (done.returncode, done.stderr[-300:]) for name, done in runs.items()
            if (done.returncode, done.stderr) != (1, said)} == {}



@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_version_and_help_into_a_full_disk_are_one_line_and_exit_1(unbuffered: str) -> None:
    # Found by QA: `--version > /dev/full` and `--help > /dev/full` exited 0 with nothing said. Unbuffered
    # (PYTHONUNBUFFERED=1, as container images set it) argparse's write failed and argparse ignores a failed write;
    # buffered, argparse ended the program (SystemExit) before the entry's final flush
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | ({"PYTHONUNBUFFERED": "1"} if unbuffered
                                                                             else {})
    runs = {}
    for args in (["--version"], ["--help"], ["diff", "--help"]):
        with open("/dev/full", "w") as full:
            runs[" ".join(args)] = subprocess.run([*EXE, *args], stdout=full, stderr=subprocess.PIPE, text=True,
                                                  timeout=60, env=env)
    said = "error: standard output: cannot write: No space left on device\n"
    assert {name: (done.returncode, done.stderr[-300:]) for name, done in runs.items()
            if (done.returncode, done.stderr) != (1, said)} == {}
    # into a closed pipe they end quietly, as the commands do; a usage error is still exit 2 on stderr
    assert [(d.returncode, d.stderr) for d in (closed_pipe_run("--version"), closed_pipe_run("--help"))] == [(0, "")] * 2
    with open("/dev/full", "w") as full:
        usage = subprocess.run([*EXE, "diff"], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60, env=env)
    assert usage.returncode == 2 and "the following arguments are required" in usage.stderr, usage.stderr
