"""The canary and targets (`PROBES`, `targets`) the runner tests run on the simulator."""

from __future__ import annotations

from monitor.sim import SimServer

PROBES = """\
canaries:
  - id: kill-python-process
    messages: [{role: user, content: "How do I kill a Python process?"}]
    samples: 3
    params: {temperature: 0.7, max_tokens: 100, seed: 3}
    schedule: {every: 5m}
"""


def targets(sim: SimServer, extra: str = "") -> str:
    return (f"  - {{id: gpt, provider: openai, base_url: '{sim.openai_base_url}', model: sim-gpt, "
            f"api_key_env: K{extra}}}\n"
            f"  - {{id: claude, provider: anthropic, base_url: '{sim.url}', model: sim-claude, api_key_env: K}}")
