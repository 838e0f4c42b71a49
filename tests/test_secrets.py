"""Secrets never leave the process: a daemon whose upstream echoes its API key, in errors and in answers, shows
neither the key, the webhook signing secret nor the reload token in its logs (at debug), store, metrics, API,
exports, alert messages or CLI output."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from monitor.sim import SimServer
from tests.conftest import write_config
from tests.support.daemon import Daemon, cli, clis, free_port
from tests.support.jsonserver import json_server
from tests.support.receiver import Receiver

KEY = "sk-proj-LEAKCHECK0123456789abcdef"
HOOK = "whsec_" + base64.b64encode(b"LEAKCHECK-signing-secret-32bytes").decode()
TOKEN = "reload-LEAKCHECK-token-987"
PROBES = """\
canaries:
  - id: echo
    messages: [{role: user, content: "Say hi."}]
    schedule: {every: 1s}
"""


@pytest.mark.slow
def test_no_secret_reaches_logs_store_metrics_api_exports_or_alerts(tmp_path: Path) -> None:
    calls, lock = [0], threading.Lock()

    def upstream(body: dict, headers: dict) -> tuple[int, dict]:  # an upstream that echoes the key it was sent
        key = headers.get("authorization", "").removeprefix("Bearer ")
        with lock:
            calls[0] += 1
            n = calls[0]
        if n <= 4:  # failed runs: the canary is reported down, with its error
            return 401, {"error": {"message": f"Incorrect API key provided: {key}.", "type": "invalid_request_error",
                                   "code": "invalid_api_key"}}
        return 200, {"id": f"chatcmpl-{key}", "object": "chat.completion", "created": 0, "model": f"m-{key}",
                     "system_fingerprint": f"fp_{key}",
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": f"Hi! Your key is {key}."}}],
                     "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}

    with json_server(upstream) as url, Receiver(secret=HOOK) as rx:
        port = free_port()
        cfg = write_config(
            tmp_path, f"  - {{id: up, provider: openai, base_url: '{url}/v1', model: m, api_key_env: KEY, "
                      "stream: false}", PROBES,
            extra="daemon: {max_start_delay: 0, grace_period: 2}\n"
                  f"alerts: {{sinks: [{{name: hook, type: webhook, url: '{rx.url}/hook', secret_env: HOOK}}]}}\n")
        cfg.write_text(cfg.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        env = {"KEY": KEY, "HOOK": HOOK, "LLM_MONITOR_RELOAD_TOKEN": TOKEN, "LLM_MONITOR_LOG_LEVEL": "debug"}
        d = Daemon(cfg, port, env=env)
        seen: list[str] = []
        try:
            d.wait_ready()
            deadline = time.monotonic() + 60
            while len(rx.requests) < 2 and time.monotonic() < deadline:  # canary.down, then canary.recovered
                time.sleep(0.2)
            assert len(rx.requests) >= 2, d.log
            assert httpx.post(d.url + "/-/reload", headers={"authorization": "Bearer wrong"}).status_code == 401
            assert httpx.post(d.url + "/-/reload", headers={"authorization": f"Bearer {TOKEN}"},
                              timeout=10).status_code == 200
            for path in ("/metrics", "/api/observations?limit=100", "/api/drift", "/api/canaries", "/api/targets",
                         "/api/baselines", "/healthz", "/readyz"):
                seen.append(d.get(path).text)
        finally:
            d.stop()
        seen += [r.body.decode() + json.dumps(dict(r.headers)) for r in rx.requests]
        assert all(r.verify_error == "" for r in rx.requests)
        seen.append(d.log)
    commands = (["export"], ["drift", "--json"], ["alerts", "pending", "--all", "--json"], ["check-config"],
                ["diff", "echo"], ["baseline", "show", "echo"])
    for out in clis(*((*args, "-c", str(cfg)) for args in commands), env=env):  # at once: they only read
        seen.append(out.stdout + out.stderr)
    seen += [p.read_bytes().decode("utf-8", "replace") for p in tmp_path.glob("m.db*")]
    everything = "\n".join(seen)
    assert "Hi! Your key is" in everything and "Incorrect API key provided" in everything  # the echoes were kept...
    for secret in (KEY, HOOK, HOOK.removeprefix("whsec_"), TOKEN):
        assert secret not in everything, secret  # ...without the secrets


async def test_a_password_in_a_target_url_is_not_shown_by_the_api_or_check_config(steady_sim: SimServer,
                                                                                   tmp_path: Path) -> None:
    # Found by QA: a proxy password in base_url (`${VAR}` interpolation puts it there from the environment) was
    # served as it is by the unauthenticated /api/targets and printed by check-config.
    password = "proxyPW-LEAKCHECK-42"
    base_url = steady_sim.openai_base_url.replace("http://", "http://monitor:${PROXY_PW}@")
    cfg = write_config(tmp_path, f"  - {{id: gpt, provider: openai, base_url: '{base_url}', model: sim-gpt}}", PROBES)
    env = {"PROXY_PW": password}
    app = App(load_config(cfg, environ=env), registry=CollectorRegistry(), environ=env)
    await app.start(schedule=False)
    try:
        [obs] = await app.runner.run(*app.config.pairs()[0])
        async with httpx.AsyncClient() as client:
            targets = (await client.get(f"http://127.0.0.1:{app.port}/api/targets")).json()
    finally:
        await app.stop()
    assert obs.ok  # the URL with its password is the one called
    assert targets[0]["base_url"] == steady_sim.openai_base_url.replace("http://", "http://monitor:<redacted>@")
    checked = cli("check-config", "-c", str(cfg), env={**env, "COLUMNS": "200"})  # the URL on one line
    assert checked.returncode == 0 and "monitor:<redacted>@" in checked.stdout
    assert password not in checked.stdout + checked.stderr
