"""Start real Prometheus and Alertmanager processes for tests (tmp dirs, free ports, cleanup).

Use as context managers:

    with start_prometheus(tmp_path, ["127.0.0.1:9464"], rule_files=[rules]) as prom:
        prom.wait_for("up == 1")
        prom.query("llm_monitor_build_info")

    with start_alertmanager(tmp_path, config_text) as am:
        httpx.get(am.url + "/api/v2/alerts")

Tests that need the binaries call `require_binary`, which skips with a clear reason when one is missing.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

PROMETHEUS_BINARIES = ("prometheus",)
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")
START_TIMEOUT_S = 30.0


def require_binary(*names: str) -> str:
    """Return the path of the first binary found on PATH, or skip the test naming what is missing."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"{' / '.join(names)} not on PATH (Debian: apt-get install -y prometheus prometheus-alertmanager)")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    """A running Prometheus-family server: its process, port, base URL, config path and log file."""

    proc: subprocess.Popen[bytes]
    port: int
    config_path: Path
    log_path: Path
    # one client for every request of the test: httpx.get builds a client (and its TLS context) per call, 30 ms
    # each, which made a round of a hundred dashboard queries take seconds
    _client: httpx.Client | None = field(default=None, init=False, repr=False)

    @property
    def client(self) -> httpx.Client:
        """The HTTP client for this server's API, made on first use and closed by `stop`."""
        if self._client is None:
            self._client = httpx.Client(timeout=10.0)
        return self._client

    @property
    def url(self) -> str:
        """Return the base URL, e.g. http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """Return the server's combined stdout/stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Block until GET /-/ready answers 200; raise with the log if the process dies or times out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.config_path.name}: server exited {self.proc.returncode}\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if self.client.get(self.url + "/-/ready", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"server on {self.url} not ready after {timeout_s}s\n{self.log()}")

    def stop(self) -> None:
        """Terminate the process and wait for it (kill after 10 s)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class PrometheusProcess(ServerProcess):
    """A Prometheus server with helpers for its HTTP query API."""

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/<path> and return `data`; raise on an error status."""
        resp = self.client.get(f"{self.url}/api/v1/{path}", params=params)
        body = resp.json()
        if resp.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"/api/v1/{path} {params}: {resp.status_code} {body}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Run an instant query and return its result list."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        return self.api("query", **params)["result"]

    def query_range(self, expr: str, start: float, end: float, step: float = 1.0) -> list[dict[str, Any]]:
        """Run a range query and return its result list."""
        return self.api("query_range", query=expr, start=start, end=end, step=step)["result"]

    def label_values(self, label: str, match: str | None = None) -> list[str]:
        """Return the values of a label, optionally restricted to series matching `match`."""
        params = {"match[]": match} if match else {}
        return self.api(f"label/{label}/values", **params)

    def alerts(self) -> list[dict[str, Any]]:
        """Return the alerts Prometheus currently has pending or firing."""
        return self.api("alerts")["alerts"]

    def wait_for(self, expr: str, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """Poll an instant query until it returns a non-empty result; return it or raise TimeoutError."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                return result
            time.sleep(0.5)
        raise TimeoutError(f"no result for {expr!r} after {timeout_s}s\n{self.log()[-4000:]}")


def prometheus_config(
    scrape_targets: Sequence[str],
    *,
    job: str = "llm-monitor",
    rule_files: Sequence[Path] = (),
    alertmanagers: Sequence[str] = (),
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    scrape: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return a Prometheus configuration scraping `scrape_targets` (host:port) as `job`, with the scrape settings
    in `scrape` (scheme, basic_auth, tls_config, ...)."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval,
                   "scrape_timeout": scrape_interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(scrape_targets)}],
                            **(scrape or {})}],
    }
    if alertmanagers:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
    return config


@contextlib.contextmanager
def start_prometheus(
    tmp_path: Path,
    scrape_targets: Sequence[str],
    *,
    job: str = "llm-monitor",
    rule_files: Sequence[Path] = (),
    alertmanagers: Sequence[str] = (),
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    scrape: dict[str, Any] | None = None,
) -> Iterator[PrometheusProcess]:
    """Run Prometheus in tmp_path/prometheus scraping `scrape_targets`; stop it on exit."""
    binary = require_binary(*PROMETHEUS_BINARIES)
    home = tmp_path / "prometheus"
    home.mkdir(parents=True, exist_ok=True)
    config_path = home / "prometheus.yml"
    config = prometheus_config(scrape_targets, job=job, rule_files=rule_files, alertmanagers=alertmanagers,
                               scrape_interval=scrape_interval, evaluation_interval=evaluation_interval,
                               scrape=scrape)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    with _serve(PrometheusProcess, binary, home, config_path,
                [f"--storage.tsdb.path={home / 'data'}", "--web.enable-lifecycle"]) as server:
        yield server


BLACKHOLE = "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n"  # an Alertmanager that notifies no one


def active_alerts(url: str, until: Callable[[list[dict]], bool] = lambda _: True, timeout: float = 15) -> list[dict]:
    """Return Alertmanager's active alerts once `until` holds of them (or when `timeout` runs out)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5) as polls:  # one client: httpx.get costs 40 ms of CPU a call, 10 calls a second
        while True:
            active = polls.get(url + "/api/v2/alerts", params={"active": "true"}).json()
            if until(active) or time.monotonic() > deadline:
                return active
            time.sleep(0.1)


@contextlib.contextmanager
def start_alertmanager(tmp_path: Path, config_text: str) -> Iterator[ServerProcess]:
    """Run Alertmanager in tmp_path/alertmanager with `config_text` (clustering off); stop it on exit."""
    binary = require_binary(*ALERTMANAGER_BINARIES)
    home = tmp_path / "alertmanager"
    home.mkdir(parents=True, exist_ok=True)
    config_path = home / "alertmanager.yml"
    config_path.write_text(config_text)
    with _serve(ServerProcess, binary, home, config_path,
                [f"--storage.path={home / 'data'}", "--cluster.listen-address="]) as server:
        yield server


class RetriedStart(UserWarning):
    """A server that did not come up was started again on another port; the message holds the first try's log and
    what held its port (pyproject shows these warnings instead of failing on them)."""


def _port_holders(port: int) -> str:
    """Return `ss`'s lines for the TCP sockets on `port` (the evidence of a port race), or why there are none."""
    if not shutil.which("ss"):
        return "(ss not on PATH)"
    out = subprocess.run(["ss", "-tanp", f"( sport = :{port} or dport = :{port} )"], capture_output=True, text=True,
                         timeout=10, check=False)
    return out.stdout.strip() or out.stderr.strip()


@contextlib.contextmanager
def _serve(kind: Any, binary: str, home: Path, config_path: Path, args: list[str]) -> Iterator[Any]:
    """Start `binary` on a free loopback port with its log in `home`, wait until ready, stop it on exit.

    A server that is not ready in time, or exits, is started once more on a fresh port (free_port's port can be
    taken by another process before the server binds it); the first try's log and port holders go into a
    RetriedStart warning, and into the error if the second try fails as well."""
    first = ""
    for attempt in (1, 2):
        port = free_port()
        log_path = home / f"{home.name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen([binary, f"--config.file={config_path}", f"--web.listen-address=127.0.0.1:{port}",
                                     "--log.level=info", *args], stdout=log, stderr=subprocess.STDOUT)
        server = kind(proc, port, config_path, log_path)
        try:
            server.wait_ready()
            break
        except (TimeoutError, RuntimeError) as exc:
            holders = _port_holders(port)
            server.stop()
            if attempt == 2:
                raise type(exc)(f"{exc}\nsockets on port {port}:\n{holders}\nfirst try:\n{first}") from exc
            first = f"{exc}\nsockets on port {port}:\n{holders}"
            log_path.rename(home / f"{home.name}.first.log")
            warnings.warn(RetriedStart(f"{binary} started again: {first}"), stacklevel=3)
    try:
        yield server
    finally:
        server.stop()
