"""`llm-monitor run` warns, naming the folder, when a probe folder holds no probe file at start: a daemon that runs no
canary is otherwise silent about it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.commands.run import serve
from monitor.config import load_config
from tests.conftest import write_config

TARGET = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}"


async def test_run_warns_of_an_empty_probe_folder_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = write_config(tmp_path, TARGET, "canaries: []\n")
    (tmp_path / "probes" / "p.yaml").unlink()  # the folder is there, with no probe file in it
    app = App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False)
    stop = asyncio.Event()
    caplog.set_level(logging.WARNING)
    daemon = asyncio.create_task(serve(app, stop))  # as `llm-monitor run` runs it
    await app.started.wait()
    stop.set()
    assert await daemon == 0
    [line] = [r.getMessage() for r in caplog.records if "probe" in r.getMessage() and r.levelname == "WARNING"]
    assert "./probes" in line and "probes[0]" in line and "no canary" in line
