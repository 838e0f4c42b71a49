"""The listener's TLS in-process: the context loading the config built is the one served, at start and after a
reload, and its certificate's expiry exported and warned of; over a real loopback listener and certificates made
per test."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from monitor.app import App
from monitor.config import load_config
from monitor.webconfig.tls import CHECK_FILES_S
from tests.conftest import write_config
from tests.support.pki import Pki

PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n"
TARGET = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}"
TLS = "tls_server_config:\n  cert_file: pki/cert.pem\n  key_file: pki/key.pem\n"

_opened: list[str] | None = None  # the files opened for reading while `reads` records


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _opened is not None and isinstance(args[0], str | Path) and "r" in (args[1] or "r"):
        _opened.append(str(args[0]))


@pytest.fixture(scope="module")
def reads() -> Any:
    """`with reads(path) as opened:` lists each time `path` was opened for reading meanwhile (an audit hook:
    the real file reads, whatever code makes them)."""
    sys.addaudithook(_audit)  # cannot be removed; records nothing outside `reads`

    @contextlib.contextmanager
    def recording(path: Path) -> Iterator[list[str]]:
        global _opened
        _opened, mine = [], []
        try:
            yield mine
        finally:
            mine += [p for p in _opened if p == str(path)]
            _opened = None

    return recording


def config_with_tls(folder: Path, web: str = TLS) -> Path:
    cfg = write_config(folder, TARGET, PROBES)
    cfg.write_text(cfg.read_text().replace('"127.0.0.1:0"}', '"127.0.0.1:0", web_config_file: web.yml}'))
    (folder / "web.yml").write_text(web)
    return cfg


async def status(app: App, verify: ssl.SSLContext) -> int:
    async with httpx.AsyncClient(verify=verify, timeout=5) as client:
        return (await client.get(f"https://127.0.0.1:{app.port}/healthz")).status_code


async def test_the_context_loading_built_is_served_and_a_reload_builds_one(tmp_path: Path, reads: Any) -> None:
    """Loading the config builds the listener's context to check its files; start and reload used to build it a
    second time from the same files. Settings that wait for a restart still do: a reload that changes them serves
    the loaded files under the running settings."""
    pki = Pki.make(tmp_path / "pki")
    cert = tmp_path / "pki" / "cert.pem"
    cfg = config_with_tls(tmp_path)
    with reads(cert) as opened:
        config = load_config(cfg, environ={})
        app = App(config, registry=CollectorRegistry(), environ={})
        await app.start(schedule=False)
    try:
        assert len(opened) == 1  # by loading, not again by the start
        assert app.tls is not None and config.listener_tls is not None
        assert app.tls.context is config.listener_tls.context
        assert await status(app, pki.client()) == 200

        renewed = Pki.make(tmp_path / "pki", name="-new")
        for part in ("cert", "key"):
            (tmp_path / "pki" / f"{part}-new.pem").replace(tmp_path / "pki" / f"{part}.pem")
        with reads(cert) as opened:
            ok, message = await app.reload()
        assert ok, message
        assert len(opened) == 1  # by loading, not again by the reload
        assert await status(app, renewed.client()) == 200
        with pytest.raises(httpx.ConnectError):
            await status(app, pki.client())  # the old CA's certificate is no longer served

        (tmp_path / "web.yml").write_text(TLS + "  min_version: TLS13\n")
        with reads(cert) as opened:
            ok, message = await app.reload()
        assert ok and message.endswith("; changed tls_server_config.min_version: takes effect at the next restart")
        assert len(opened) == 2  # checked as loaded, then built under the running settings
        tls12 = renewed.client()
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        assert await status(app, tls12) == 200  # the running min_version, TLS12, until a restart
    finally:
        await app.stop()


async def test_files_renewed_between_loading_and_start_are_served_once_the_watch_looks(tmp_path: Path) -> None:
    """The context served at start is the one loading built: files renewed since (the store's migration and the
    refusal model's warm-up lie between) count as changed, as they were stamped before loading read them."""
    Pki.make(tmp_path / "pki")
    config = load_config(config_with_tls(tmp_path), environ={})
    renewed = Pki.make(tmp_path / "pki", name="-new")
    for part in ("cert", "key"):
        (tmp_path / "pki" / f"{part}-new.pem").replace(tmp_path / "pki" / f"{part}.pem")
    app = App(config, registry=CollectorRegistry(), environ={})
    await app.start(schedule=False)
    try:
        await asyncio.sleep(CHECK_FILES_S + 0.2)
        assert await status(app, renewed.client()) == 200  # this handshake's look finds the change
    finally:
        await app.stop()


EXPIRY = "llm_monitor_web_tls_certificate_expiry_timestamp_seconds"


async def scraped(app: App, verify: ssl.SSLContext) -> float:
    """The expiry gauge's value in a scrape of the listener."""
    async with httpx.AsyncClient(verify=verify, timeout=5) as client:
        text = (await client.get(f"https://127.0.0.1:{app.port}/metrics")).text
    return next(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == EXPIRY)


async def test_the_certificate_expiry_is_exported_and_warned_of_at_start_on_reload_and_on_renewal(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    soon, later, expired = now + timedelta(days=3, hours=1), now + timedelta(days=90), now - timedelta(days=1)
    pki = Pki.make(tmp_path / "pki", not_after=soon)
    cert = tmp_path / "pki" / "cert.pem"
    caplog.set_level(logging.INFO)
    app = App(load_config(config_with_tls(tmp_path), environ={}), registry=CollectorRegistry(), environ={})
    await app.start(schedule=False)
    try:
        assert await scraped(app, pki.client()) == soon.timestamp()
        assert warnings(caplog) == [f"the TLS certificate in {cert} expires on {iso(soon)}, in 3 days: renew it"]

        caplog.clear()
        ok, _ = await app.reload()  # the same certificate: said again
        assert ok and warnings(caplog) == [f"the TLS certificate in {cert} expires on {iso(soon)}, in 3 days: renew it"]

        caplog.clear()
        renewed = renew(tmp_path, "-later", later)
        ok, _ = await app.reload()
        assert ok and warnings(caplog) == [] and await scraped(app, renewed.client()) == later.timestamp()

        caplog.clear()
        renewed = renew(tmp_path, "-expired", expired)  # renewed in its files, without a reload: the watch serves it
        await asyncio.sleep(CHECK_FILES_S + 0.2)
        with pytest.raises(httpx.ConnectError, match="certificate has expired"):
            await scraped(app, renewed.client())  # this handshake's look serves the files: clients refuse them
        assert app.registry.get_sample_value(EXPIRY) == expired.timestamp()
        assert warnings(caplog) == [f"the TLS certificate in {cert} expired on {iso(expired)}: clients refuse it; "
                                    "renew it"]
    finally:
        await app.stop()


def renew(folder: Path, name: str, not_after: datetime) -> Pki:
    """Replace cert.pem and key.pem with a certificate of a new CA, valid until `not_after`."""
    pki = Pki.make(folder / "pki", name=name, not_after=not_after)
    for part in ("cert", "key"):
        (folder / "pki" / f"{part}{name}.pem").replace(folder / "pki" / f"{part}.pem")
    return pki


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "TLS certificate" in r.getMessage()]


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
