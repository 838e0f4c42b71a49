"""`llm-monitor run` as a real process: signals (SIGTERM drains, SIGHUP reloads), reload over HTTP, and its HTTP
endpoints (observations paged and filtered, drift views when drift is disabled)."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from monitor.sim import SimServer, scenario_from_dict
from tests.conftest import write_config
from tests.support.cli_config import ONE
from tests.support.daemon import Daemon, free_port


@pytest.fixture
def slow_sim() -> SimServer:
    scenario = scenario_from_dict({"name": "slow", "seed": 1, "defaults": {
        "ttft": {"dist": "constant", "mean_ms": 2500}, "output_tps": 50, "length": {"dist": "constant", "mean": 20}},
        "models": {"*": {"phases": [{"name": "slow"}]}}})
    with SimServer(scenario) as sim:
        yield sim


def daemon_config(tmp_path: Path, sim: SimServer, port: int, grace: float) -> Path:
    probes = ONE.replace("schedule: {every: 5m}", "schedule: {every: 1h}")
    cfg = write_config(tmp_path, f"  - {{id: gpt, provider: openai, base_url: '{sim.openai_base_url}', "
                                 "model: sim-gpt, api_key_env: K}", probes,
                       extra=f"daemon: {{grace_period: {grace}, max_start_delay: 0}}\n")
    cfg.write_text(cfg.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
    return cfg


def stored(tmp_path: Path) -> list[tuple[str | None, str]]:
    with sqlite3.connect(tmp_path / "m.db") as db:
        return db.execute("SELECT error_type, text FROM observations").fetchall()


@pytest.mark.slow
def test_sigterm_lets_in_flight_probes_finish(tmp_path: Path, slow_sim: SimServer) -> None:
    port = free_port()
    d = Daemon(daemon_config(tmp_path, slow_sim, port, grace=20), port, env={"K": "k"})
    try:
        d.wait_ready()
        time.sleep(1.0)  # the first run starts at once; its calls wait 2.5 s for the first token
        assert 'llm_monitor_probes_in_flight{target="gpt"} 3.0' in d.get("/metrics").text
        d.signal(signal.SIGTERM)
        assert d.wait(timeout=30) == 0
    finally:
        d.stop()
    rows = stored(tmp_path)
    assert len(rows) == 3 and all(err is None and text for err, text in rows), rows


@pytest.mark.slow
def test_sigterm_past_grace_stores_cancelled_calls(tmp_path: Path, slow_sim: SimServer) -> None:
    port = free_port()
    d = Daemon(daemon_config(tmp_path, slow_sim, port, grace=0.5), port, env={"K": "k"})
    try:
        d.wait_ready()
        time.sleep(0.8)
        started = time.monotonic()
        d.signal(signal.SIGTERM)
        assert d.wait(timeout=30) == 0
        assert time.monotonic() - started < 10
    finally:
        d.stop()
    assert [err for err, _ in stored(tmp_path)] == ["cancelled"] * 3
    assert "Traceback" not in d.log


@pytest.mark.slow
def test_reload_by_sighup_and_http(tmp_path: Path, steady_sim: SimServer) -> None:
    port = free_port()
    cfg = daemon_config(tmp_path, steady_sim, port, grace=5)
    d = Daemon(cfg, port, env={"K": "k", "LLM_MONITOR_RELOAD_TOKEN": "tok-123"})
    try:
        d.wait_ready()
        assert [c["id"] for c in d.get("/api/canaries").json()] == ["kill-python-process"]
        assert d.get("/api/targets").json()[0]["model"] == "sim-gpt"
        probes = tmp_path / "probes" / "p.yaml"
        good = probes.read_text()
        probes.write_text(good.replace("samples: 3", "samples: -1"))
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "llm_monitor_config_last_reload_successful 0.0" not in d.get("/metrics").text:
            assert time.monotonic() < deadline, d.log
            time.sleep(0.1)
        assert "reload failed, keeping the running config" in d.log
        assert d.get("/readyz").status_code == 200
        probes.write_text(good.replace("kill-python-process", "renamed-canary"))
        assert httpx.post(d.url + "/-/reload").status_code == 401
        assert httpx.post(d.url + "/-/reload", headers={"authorization": "Bearer nope"}).status_code == 401
        r = httpx.post(d.url + "/-/reload", headers={"authorization": "Bearer tok-123"}, timeout=10)
        assert r.status_code == 200 and r.json()["reloaded"] is True
        assert r.json()["message"].startswith("reloaded: 1 canary, 1 target, "), r.json()  # was "1 canaries, 1 targets"
        assert [c["id"] for c in d.get("/api/canaries").json()] == ["renamed-canary"]
        assert "llm_monitor_config_last_reload_successful 1.0" in d.get("/metrics").text
        deadline = time.monotonic() + 20
        while len(d.get("/api/observations?canary=kill-python-process&limit=5").json()) < 2:  # stored one by one
            assert time.monotonic() < deadline
            time.sleep(0.2)
        obs = d.get("/api/observations?canary=kill-python-process&limit=2").json()
        assert len(obs) == 2 and obs[0]["target"] == "gpt"
        # page back: the next link is this daemon's URL with the filters kept and a cursor after the page's last row
        first = d.get("/api/observations", params={"canary": "kill-python-process", "limit": 1})
        assert first.links["next"]["url"] == (f"{d.url}/api/observations?canary=kill-python-process&limit=1"
                                              f"&cursor={first.headers['x-next-cursor']}")
        following = d.get(first.links["next"]["url"].removeprefix(d.url)).json()
        every = [o["id"] for o in d.get("/api/observations?canary=kill-python-process&limit=1000").json()]
        # the row after the first page's, whatever newer ones the daemon stored meanwhile (they go in front)
        assert [o["id"] for o in following] == [every[every.index(first.json()[0]["id"]) + 1]]
        # a time window: until (exclusive) and since (inclusive)
        newest, older = obs
        page = d.get("/api/observations", params={"canary": "kill-python-process", "limit": 1,
                                                   "until": newest["started_at"]}).json()
        assert [o["id"] for o in page] == [older["id"]]
        later = d.get("/api/observations", params={"canary": "kill-python-process", "limit": 1000,
                                                    "since": newest["started_at"]}).json()
        assert newest["id"] in {o["id"] for o in later} and older["id"] not in {o["id"] for o in later}
        # started_at pasted into the URL as it is: its "+00:00" arrives as " 00:00"
        assert "+00:00" in newest["started_at"]
        raw = d.get(f"/api/observations?canary=kill-python-process&limit=1&until={newest['started_at']}")
        assert raw.status_code == 200 and [o["id"] for o in raw.json()] == [older["id"]], raw.text
        for query, error in (("/api/observations?limit=abc", "limit: not a whole number (digits 0-9): 'abc'"),
                             ("/api/observations?since=yesterday",
                              "since: not an RFC 3339 time: 'yesterday' (e.g. 2026-11-30T07:50:00Z)"),
                             ("/api/observations?limit=0", "limit: must be at least 1 (got 0)"),
                             ("/api/drift?state=opened", "state: must be one of open, resolved, accepted "
                                                         "(got 'opened')")):
            bad = d.get(query)
            assert (bad.status_code, bad.json()) == (400, {"error": error})
        for value in ("x" * 3000, "-" + "9" * 3000):  # a long value is cut short in the answer, as elsewhere
            bad = d.get(f"/api/observations?limit={value}")
            assert bad.status_code == 400 and len(bad.json()["error"]) < 300, bad.text[:300]
            assert bad.json()["error"].startswith("limit: "), bad.text[:300]
    finally:
        d.stop()
    assert "tok-123" not in d.log and '"k"' not in d.log


def test_drift_views_say_when_drift_is_disabled(tmp_path: Path, steady_sim: SimServer) -> None:
    port = free_port()
    cfg = daemon_config(tmp_path, steady_sim, port, grace=5)
    cfg.write_text(cfg.read_text() + "drift: {enabled: false}\n")
    d = Daemon(cfg, port, env={"K": "k"})
    try:
        d.wait_ready()
        for path in ("/api/drift", "/api/drift?state=open", "/api/drift/abc", "/api/baselines"):
            r = d.get(path)
            assert r.status_code == 404 and "drift.enabled: false" in r.json()["error"], (path, r.text)
        assert d.get("/api/observations").status_code == 200
    finally:
        d.stop()
