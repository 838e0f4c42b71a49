"""A standby checks its alert sinks' secrets at start and at each reload as the leader does.

Found by review: a standby builds its alerting only when it takes the lead, so a sink URL from `url_env` or
`url_file` that is no http(s) URL went unnoticed at its start and was reported when it took over (which may be at
3am), and it exited 1 then; the leader refused the same config at its start (exit 2).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from monitor.errors import SecretError
from tests.conftest import write_config

PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    schedule: {every: 1h}\n"
TARGET = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}"
SINKS = "alerts:\n  sinks:\n    - {name: chat, type: slack, url_env: SLACK_URL}\n"
GOOD = "http://127.0.0.1:9/slack"
PASTED = "hooks.slack.com/services/T0AAAA/B0BBBB/xYz123SecretPart"  # the scheme left out: the value is the secret
REFUSED = ("url_env SLACK_URL: must be an http:// or https:// URL (the value read is not shown: a URL from a "
           "variable or file is kept secret)")


@pytest.fixture
def url(store_url: str) -> str:  # SQLite and PostgreSQL (conftest)
    return store_url


def at(cfg: Path, written: str) -> str:
    """`file:line` of the first line of `cfg` holding `written`."""
    return f"{cfg}:{next(n for n, line in enumerate(cfg.read_text().splitlines(), 1) if written in line)}"


@pytest.fixture
def replica(tmp_path: Path, url: str) -> Callable[[str, dict[str, str]], tuple[App, Path]]:
    """Return a maker of replicas on one store, each with its own config file (the caller starts and stops it)."""

    def make(name: str, environ: dict[str, str]) -> tuple[App, Path]:
        folder = tmp_path / name
        folder.mkdir()
        cfg = write_config(folder, TARGET, PROBES, extra=SINKS)
        cfg.write_text(cfg.read_text().replace(f"sqlite:///{folder / 'm.db'}", url))
        app = App(load_config(cfg, environ=environ), registry=CollectorRegistry(), environ=environ,
                  serve_http=False)
        return app, cfg

    return make


@pytest.fixture
async def leader(replica: Callable[[str, dict[str, str]], tuple[App, Path]]) -> AsyncIterator[App]:
    app, _ = replica("leader", {"SLACK_URL": GOOD})
    await app.start()
    assert app.leading
    try:
        yield app
    finally:
        await app.stop()


async def test_a_standby_refuses_to_start_with_a_sink_url_the_leader_refuses(
        leader: App, replica: Callable[[str, dict[str, str]], tuple[App, Path]]) -> None:
    standby, cfg = replica("standby", {"SLACK_URL": PASTED})
    try:
        with pytest.raises(SecretError) as refused:
            await standby.start()
    finally:
        if standby.succession.standing_by:  # started: the check is missing
            await standby.stop()
        else:
            await asyncio.to_thread(standby.store.close)
    assert str(refused.value) == f"{at(cfg, 'name: chat')}: alert sink chat: {REFUSED}"  # as the leader says it
    assert "SecretPart" not in str(refused.value)


async def test_a_standby_refuses_a_reload_with_it_and_keeps_its_config(
        leader: App, replica: Callable[[str, dict[str, str]], tuple[App, Path]]) -> None:
    environ = {"SLACK_URL": GOOD}
    standby, cfg = replica("standby", environ)
    await standby.start()
    try:
        assert not standby.leading and standby.alerting is None
        running = standby.config
        environ["SLACK_URL"] = PASTED
        ok, message = await standby.reload()
        assert not ok and message == f"{at(cfg, 'name: chat')}: alert sink chat: {REFUSED}"
        assert standby.config is running
        environ["SLACK_URL"] = GOOD
        ok, message = await standby.reload()
        assert ok, message
    finally:
        await standby.stop()
