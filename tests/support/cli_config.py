"""The canary and targets (`ONE`, `two_targets`) the `llm-monitor` command tests run on the simulator."""

from __future__ import annotations

from monitor.sim import SimServer

ONE = """\
canaries:
  - id: kill-python-process
    messages: [{role: user, content: "How do I kill a Python process?"}]
    samples: 3
    schedule: {every: 5m}
"""


def two_targets(sim: SimServer) -> str:
    return (f"  - {{id: gpt, provider: openai, base_url: '{sim.openai_base_url}', model: sim-gpt, api_key_env: K}}\n"
            f"  - {{id: claude, provider: anthropic, base_url: '{sim.url}', model: sim-claude, api_key_env: K, "
            f"stream: false}}")
