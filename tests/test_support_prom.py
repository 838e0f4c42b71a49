"""The test harness's Prometheus starter: a first try that cannot come up is retried on a fresh port, with the
evidence kept (CI once saw a Prometheus not ready in 30 s, with nothing in its warn-level log)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.support import prom


def test_a_server_whose_port_was_taken_is_started_again_and_the_first_log_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prom.require_binary(*prom.PROMETHEUS_BINARIES)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        held = taken.getsockname()[1]
        ports = iter([held])
        real = prom.free_port
        monkeypatch.setattr(prom, "free_port", lambda: next(ports, None) or real())
        with pytest.warns(prom.RetriedStart) as caught, prom.start_prometheus(tmp_path, []) as server:
            assert server.port != held
            assert httpx.get(server.url + "/-/ready", timeout=5).status_code == 200
    message = str(caught[0].message)
    assert "address already in use" in message, message
    assert f":{held}" in message  # ss named the socket that held the port
    assert "address already in use" in (tmp_path / "prometheus" / "prometheus.first.log").read_text()


def test_a_second_failure_raises_with_both_tries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prom.require_binary(*prom.PROMETHEUS_BINARIES)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setattr(prom, "free_port", lambda: taken.getsockname()[1])
        with (pytest.warns(prom.RetriedStart),
              pytest.raises(RuntimeError, match="(?s)first try:.*address already in use"),
              prom.start_prometheus(tmp_path, [])):
            pass
