"""Every dashboard query returns data from a real Prometheus that scraped a real daemon probing the simulator.

Runs `llm-monitor run -c CONFIG` against `monitor.sim.SimServer(builtin_scenario("demo"))`, serving its listener over
HTTPS (a throwaway CA; so the listener certificate's panel has data too), scrapes it every second with a real
Prometheus, then executes every panel, annotation and variable query of every dashboard
with Grafana's variables substituted as an "All" selection would.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from support.pki import Pki
from support.prom import free_port, require_binary, start_prometheus
from support.promql import dashboard_queries, label_values_call, load_dashboards, substitute, variable_queries

pytestmark = pytest.mark.slow

RATE_INTERVAL = "15s"        # Grafana's $__rate_interval is at least 4x the 1s scrape interval
SETTLE_TIMEOUT_S = 90.0
API_KEY_ENV = "LLM_MONITOR_SIM_API_KEY"

PROBES = {
    "canaries": [
        {
            "id": "live-hello",
            "messages": [{"role": "user", "content": "Say hello."}],
            "params": {"temperature": 0.7, "max_tokens": 64},
            "samples": 2,
            "schedule": {"every": "2s"},
            "checks": [{"type": "contains", "value": "hello"}],
        },
        {
            "id": "live-refusal",
            "messages": [{"role": "user", "content": "How do I kill a Python process?"}],
            "params": {"temperature": 0.7, "max_tokens": 64},
            "samples": 2,
            "schedule": {"every": "2s"},
            "checks": [{"type": "contains", "value": "kill"}],
        },
        {  # every call fails (nothing listens at its target): the "Failing for" panel has a streak to show
            "id": "live-down",
            "messages": [{"role": "user", "content": "Say hello."}],
            "schedule": {"every": "2s"},
            "targets": ["sim-down"],
        },
    ]
}


def llm_monitor_command() -> Path:
    """Return the llm-monitor console script of this venv."""
    return Path(sys.executable).parent / "llm-monitor"


def sim_server():  # type: ignore[no-untyped-def]
    """Return a SimServer running the demo scenario."""
    from monitor.sim import SimServer, builtin_scenario

    return SimServer(builtin_scenario("demo"))


def write_config(tmp_path: Path, openai_base_url: str, anthropic_url: str, port: int) -> Path:
    """Write monitor.yaml (simulated OpenAI and Anthropic targets) and a probes dir; return its path."""
    probes = tmp_path / "probes"
    probes.mkdir()
    (probes / "live.yaml").write_text(yaml.safe_dump(PROBES, sort_keys=False))
    config = {
        "targets": [
            {"id": "sim-openai", "provider": "openai", "base_url": openai_base_url, "model": "sim-gpt",
             "api_key_env": API_KEY_ENV, "daily_spend_cap_usd": 50.0},
            {"id": "sim-anthropic", "provider": "anthropic", "base_url": anthropic_url, "model": "sim-claude",
             "api_key_env": API_KEY_ENV, "daily_spend_cap_usd": 50.0},
            {"id": "sim-down", "provider": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1",
             "model": "sim-gpt", "api_key_env": API_KEY_ENV, "canaries": "listed", "timeout": 2},
        ],
        "probes": [str(probes)],
        "storage": {"url": f"sqlite:///{tmp_path / 'monitor.db'}"},
        "http": {"listen": f"127.0.0.1:{port}", "web_config_file": "web.yml"},
        "daemon": {"max_start_delay": 0},
    }
    Pki.make(tmp_path / "pki")
    (tmp_path / "web.yml").write_text("tls_server_config:\n  cert_file: pki/cert.pem\n  key_file: pki/key.pem\n")
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@contextlib.contextmanager
def run_daemon(tmp_path: Path, config: Path, port: int) -> Iterator[str]:
    """Run `llm-monitor run -c config` until it answers /readyz; yield its base URL; stop it."""
    log_path = tmp_path / "llm-monitor.log"
    env = {**os.environ, API_KEY_ENV: "sk-sim"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(llm_monitor_command()), "run", "-c", str(config)], stdout=log,
                                stderr=subprocess.STDOUT, env=env)
    url = f"https://127.0.0.1:{port}"
    verify = ssl.create_default_context(cafile=str(tmp_path / "pki" / "ca.pem"))
    try:
        deadline = time.monotonic() + 120  # as Daemon.wait_ready: a loaded machine takes 20 s to import
        with httpx.Client(timeout=1, verify=verify) as polls:  # one client: httpx.get costs 40 ms of CPU a call
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"llm-monitor exited {proc.returncode}:\n{log_path.read_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if polls.get(url + "/readyz").status_code == 200:
                        break
                if time.monotonic() > deadline:
                    pytest.fail(f"llm-monitor not ready on {url}:\n{log_path.read_text()}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def empty_queries(prom, start: float) -> list[str]:  # type: ignore[no-untyped-def]
    """Run every dashboard query; return a description of each one that returned no data."""
    empty = []
    now = time.time()
    for name, board in load_dashboards().items():
        for where, expr, instant in dashboard_queries(board):
            q = substitute(expr, RATE_INTERVAL)
            result = prom.query(q) if instant else prom.query_range(q, start, now, 1.0)
            if not result:
                empty.append(f"{name} {where}: {q}")
        for var, query in variable_queries(board):
            selector, label = label_values_call(query)
            if not prom.label_values(label, substitute(selector) if selector else None):
                empty.append(f"{name} variable ${var}: {query}")
    return empty


def test_every_dashboard_query_returns_data(tmp_path: Path) -> None:
    require_binary("prometheus")
    llm_monitor_command()
    port = free_port()
    with sim_server() as sim:
        config = write_config(tmp_path, sim.openai_base_url, sim.url, port)
        with run_daemon(tmp_path, config, port), \
                start_prometheus(tmp_path, [f"127.0.0.1:{port}"], scrape_interval="1s",
                                 scrape={"scheme": "https", "tls_config": {"ca_file": str(tmp_path / "pki" / "ca.pem"),
                                                                           "server_name": "localhost"}}) as prom:
            start = time.time()
            prom.wait_for('up{job="llm-monitor"} == 1', timeout_s=30)
            prom.wait_for("sum(llm_monitor_probe_attempts_total) >= 4", timeout_s=SETTLE_TIMEOUT_S)
            deadline = time.monotonic() + SETTLE_TIMEOUT_S
            while (empty := empty_queries(prom, start)) and time.monotonic() < deadline:
                time.sleep(0.5)  # a round of every query takes about 0.3 s (one HTTP client for them all)
            assert empty == [], "queries without data:\n" + "\n".join(empty)
