"""The exit watch's bound covers the daemon's own slowest call still allowed to finish at shutdown.

A refusal judge asked as the grace period ends (on the analysis thread, which `Analysis.close` waits for) or an
llm_judge check's call (a worker thread the interpreter waits for) takes up to JUDGE_TIMEOUT_S + 5 s, an embeddings
call up to its target's timeout: with a judge that answers slowly, and a healthy store, the watch ended the
shutdown at grace + 10 + 30 s, status 1, before the references learned were stored.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from monitor.commands.run import shutdown_bound
from monitor.config import load_config
from monitor.quality import JUDGE_TIMEOUT_S
from tests.conftest import write_config

TARGETS = """\
  - {id: a, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m, timeout: 120}
  - {id: j, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: judge-1}"""
PROBES = """\
canaries:
  - id: hello
    messages: [{role: user, content: "Say hello."}]
"""


def _app(tmp_path: Path, extra: str = "") -> Any:
    config = load_config(write_config(tmp_path, TARGETS, PROBES, extra=extra), environ={})
    return SimpleNamespace(config=config, leadership_lost=asyncio.Event())


def test_the_bound_covers_a_refusal_judges_call(tmp_path: Path) -> None:
    app = _app(tmp_path, "refusal: {judge_target: j}\n")
    assert shutdown_bound(app) >= app.config.daemon.grace_period + 10 + 30 + JUDGE_TIMEOUT_S + 5


def test_the_bound_covers_an_llm_judge_checks_call(tmp_path: Path) -> None:
    probes = PROBES + "    checks: [{type: llm_judge, rubric: Says hello., judge_target: j}]\n"
    config = load_config(write_config(tmp_path, TARGETS, probes), environ={})
    app = SimpleNamespace(config=config, leadership_lost=asyncio.Event())
    assert shutdown_bound(app) >= config.daemon.grace_period + 10 + 30 + JUDGE_TIMEOUT_S + 5


def test_the_bound_covers_an_embeddings_call(tmp_path: Path) -> None:
    app = _app(tmp_path, "drift: {embeddings: {target: a, model: e}}\n")
    assert shutdown_bound(app) >= app.config.daemon.grace_period + 10 + 30 + 120


def test_without_calls_of_its_own_the_bound_is_unchanged(tmp_path: Path) -> None:
    app = _app(tmp_path)
    assert shutdown_bound(app) == app.config.daemon.grace_period + 10 + 30
