"""serve(): the blocking entry the ``llm-monitor sim`` command calls, run as a real process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

SCRIPT = "import sys; from monitor.sim import load_scenario, serve; " \
         "serve(load_scenario(sys.argv[1]), '127.0.0.1', int(sys.argv[2]), log_level='warning')"
SCENARIO = """
name: served
models:
  ok: {phases: [{name: p, ttft: 5, output_tps: 1000, system_fingerprint: fp_served}]}
  reset: {phases: [{name: p, ttft: 5, faults: {reset: {p: 1, at: 0.5}}}]}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_runs_a_scenario_file_until_terminated(tmp_path: Path) -> None:
    path = tmp_path / "served.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(path), str(port)])
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                state = httpx.get(base + "/_sim/state").json()
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "simulator did not start"
                time.sleep(0.05)
        assert state["scenario"] == "served" and set(state["models"]) == {"ok", "reset"}
        with openai.OpenAI(base_url=base + "/v1", api_key="k", max_retries=0) as client:
            completion = client.chat.completions.create(model="ok", messages=[{"role": "user", "content": "hi"}])
            assert completion.system_fingerprint == "fp_served" and completion.usage is not None
            with pytest.raises(openai.APIConnectionError):  # resets need the protocol serve() installs
                client.chat.completions.create(model="reset", messages=[{"role": "user", "content": "hi"}])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
