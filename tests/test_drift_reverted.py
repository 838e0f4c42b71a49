"""A provider change that goes back: the drift events it opened resolve once the signal is back at baseline, also
those opened while the window still held mostly the old behaviour (the engine judges the return against the window
the change showed most in)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from monitor.sim import SimServer, scenario_from_dict
from tests.support.daemon import cli
from tests.test_drift_cli import started_app

BARE = '{"name": "Ada Lovelace", "birth_year": 1815}'
FENCED = "```json\n" + BARE + "\n```"
PROBES = ("canaries:\n  - id: j\n    messages: [{role: user, content: 'Ada Lovelace as JSON'}]\n    samples: 2\n"
          "    params: {temperature: 0.7}\n")


def scenario() -> object:
    def answers(text: str) -> list[dict[str, object]]:
        return [{"pattern": "Ada", "choices": [{"text": text, "p": 1.0}]}]

    return scenario_from_dict({"name": "revert", "seed": 9, "defaults": {"ttft": 5, "output_tps": 5000},
                               "models": {"m": {"phases": [
                                   {"name": "a", "answers": answers(BARE)},
                                   {"name": "b", "after_requests": 10**6, "answers": answers(FENCED)},
                                   {"name": "back", "after_requests": 10**7, "answers": answers(BARE)}]}}})


async def test_events_opened_early_in_a_change_that_went_back_resolve(tmp_path: Path) -> None:
    # Found with the simulator: JSON answers came in a code fence for a few runs, then bare again. The length and
    # similarity events, opened on a window of 6 bare answers and 4 fenced, stayed open for good (current value =
    # baseline value, p = 1): a resolve needs the window to differ from the opening one, and all-bare windows do
    # not differ enough from a window that was mostly bare.
    with SimServer(scenario()) as sim:
        app, cfg_path, canary, target = await started_app(
            tmp_path, sim, PROBES, "{baseline_size: 10, window: 10, eval_every: 2, disabled_signals: [latency_s, ttft_s]}")

        async def runs(phase: str, n: int) -> None:
            httpx.post(sim.url + "/_sim/phase", json={"model": "m", "phase": phase}).raise_for_status()
            for _ in range(n):
                await app.runner.run(canary, target)
            await asyncio.sleep(0.5)  # a run does not wait for its observations' analysis

        try:
            await runs("a", 80)
            fenced = 0
            opened: dict[str, str] = {}
            while not opened and fenced < 10:
                await runs("b", 1)
                fenced += 2
                opened = {e["signal"]: e["id"] for e in map(json.loads, cli(
                    "drift", "-c", str(cfg_path), "--open", "--json").stdout.splitlines())}
            assert fenced <= 6, "opened only once the window held the change alone"
            await runs("b", 5)  # the change shows fully
            await runs("back", 30)
        finally:
            await app.stop()
    assert {"output_chars", "output_tokens", "similarity"} <= set(opened), opened
    states = {e["id"]: e["state"] for e in map(json.loads, cli("drift", "-c", str(cfg_path), "--json").stdout
                                                          .splitlines())}
    watched = ("output_chars", "output_tokens", "similarity")  # the rate charts (exact_match) resolve by their own
    assert {s: states[opened[s]] for s in watched} == dict.fromkeys(watched, "resolved")  # reverse chart, later
