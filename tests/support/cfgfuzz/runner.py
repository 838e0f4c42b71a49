"""Running cases: each case's files written into one folder (beside a key file and TLS files written once), loaded
with `load_config` and checked with `llm-monitor check-config` in this process, each under a time limit."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.config.loader import load_config
from tests.support.cfgfuzz import seeds
from tests.support.cfgfuzz.case import MONITOR, WEB, Case
from tests.support.cfgfuzz.invariants import cli_violations, load_violations

TIME_LIMIT_S = 20.0


class _TooSlow(Exception):
    """A case ran past TIME_LIMIT_S."""


@dataclass
class Outcome:
    case: Case
    loaded: Any  # the Config, or the exception load_config raised
    code: Any  # check-config's exit code, or the exception it raised (None: not run)
    problems: list[str]


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise _TooSlow(f"took over {seconds:g} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def _environment() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in seeds.ENV}
    os.environ.update(seeds.ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _write(case: Case, folder: Path) -> None:
    for name in (MONITOR, WEB):
        (folder / name).unlink(missing_ok=True)
    shutil.rmtree(folder / "probes", ignore_errors=True)
    (folder / "probes").mkdir()
    for name, raw in case.files.items():
        (folder / name).write_bytes(raw)


def check_config(args: list[str]) -> tuple[Any, str]:
    """Run `llm-monitor check-config ARGS` in this process: its exit code (or what it raised) and its output."""
    from monitor.cli import main

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    code: Any
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            code = main(["check-config", *args])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except Exception as e:  # the invariant under test: it exits, 0 or 2
        code = e
    finally:
        root.handlers[:], root.level = handlers, level
    return code, buffer.getvalue()


def run_case(case: Case, folder: Path, *, cli: bool = True) -> Outcome:
    """Write `case` into `folder`, load it and (with `cli`) check it with check-config; check the invariants."""
    _write(case, folder)
    path = folder / MONITOR
    web = str(folder / WEB) if case.web_flag else None
    files = {str(folder / name) for name in case.files} | {"(command line)"}
    loaded: Any
    code: Any = None
    output = ""
    with _environment():
        try:
            with _time_limit(TIME_LIMIT_S):
                loaded = load_config(path, seeds.ENV, web_config_file=web)
        except Exception as e:
            loaded = e
        problems = load_violations(loaded, files)
        if cli:
            try:
                with _time_limit(TIME_LIMIT_S):
                    code, output = check_config(["-c", str(path), *(["--web.config.file", web] if web else [])])
            except _TooSlow as e:
                code = e
            problems += cli_violations(code, output, loaded)
    return Outcome(case, loaded, code, problems)


def run_cases(cases: list[Case], folder: Path, *, cli: bool = True) -> list[Outcome]:
    """Run every case in `folder` (its key and TLS files are written first)."""
    seeds.write_fixed(folder)
    return [run_case(c, folder, cli=cli) for c in cases]
