"""Reload in-process: what a reload can change at once, and what it keeps until the next restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from tests.conftest import write_config

PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n"
TARGET = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}"


async def test_reload_keeps_store_listen_and_drift_settings_until_restart_and_says_so(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, TARGET, PROBES, extra="drift: {baseline_size: 20}\n")
    app = App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False)
    await app.start(schedule=False)
    try:
        text = cfg.read_text()
        probes = tmp_path / "probes" / "p.yaml"
        cfg.write_text(text.replace("m.db", "other.db").replace("127.0.0.1:0", "127.0.0.1:9999")
                       .replace("baseline_size: 20", "baseline_size: 40"))
        probes.write_text(PROBES.replace("content: hi", "content: hello"))
        ok, message = await app.reload()
        assert ok and message.endswith("; changed storage.url, http.listen, drift: takes effect at the next restart")
        assert app.config.canaries[0].messages[0].content == "hello"  # the rest is in force at once
        assert (app.config.storage.url, app.config.http.listen, app.config.drift.baseline_size) == \
            (f"sqlite:///{tmp_path / 'm.db'}", "127.0.0.1:0", 20)
        assert not (tmp_path / "other.db").exists()
        cfg.write_text(text)
        probes.write_text(PROBES.replace("content: hi", "content: hey"))
        ok, message = await app.reload()
        assert ok and "restart" not in message and app.config.canaries[0].messages[0].content == "hey"
    finally:
        await app.stop()


async def test_a_fleet_budget_is_split_over_the_streams_and_a_new_split_waits_for_a_restart(tmp_path: Path) -> None:
    fast = PROBES + "    schedule: {every: 1s}\n"  # 86,400 observations a day: over the cap
    cfg = write_config(tmp_path, TARGET, fast, extra="drift: {false_alarms_per_day: 0.2}\n")
    config = load_config(cfg, environ={})
    app = App(config, registry=CollectorRegistry(), environ={}, serve_http=False)
    await app.start(schedule=False)
    try:
        assert app.analysis is not None
        per_stream = app.analysis.engine.settings.false_alarms_per_10k
        assert per_stream == config.drift_settings().false_alarms_per_10k < 0.5
        assert per_stream * config.observations_per_day() / 10_000 == pytest.approx(0.2)
        (tmp_path / "probes" / "p.yaml").write_text(fast + fast.removeprefix("canaries:\n").replace("c1", "c2"))
        ok, message = await app.reload()  # twice the streams: half the budget each, from the next restart
        assert ok and message.endswith("; changed drift: takes effect at the next restart")
        assert app.analysis.engine.settings.false_alarms_per_10k == per_stream
        ok, message = await app.reload()  # still not in force: still said
        assert ok and message.endswith("; changed drift: takes effect at the next restart")
        (tmp_path / "probes" / "p.yaml").write_text(fast)  # back to the split in force: nothing to say
        ok, message = await app.reload()
        assert ok and "restart" not in message
    finally:
        await app.stop()


async def test_a_failed_reload_is_one_log_line_naming_every_problem(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    # Found by QA: the reload error carried one problem per line, so the text log format (--log-format text)
    # split one event over several lines.
    cfg = write_config(tmp_path, TARGET, PROBES)
    app = App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False)
    await app.start(schedule=False)
    try:
        (tmp_path / "probes" / "p.yaml").write_text(PROBES + "  - {bogus: 1}\n")
        ok, message = await app.reload()
    finally:
        await app.stop()
    assert not ok and len(message.splitlines()) == 3  # the reply keeps one problem per line
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reload failed")]
    assert "\n" not in line and line.count("canaries[1]") == 3, line
