"""What a replica reads back from the store when it takes the lead, or for the pairs a reload adds: the failing
streak of every pair (llm_monitor_failing_since_timestamp_seconds and llm_monitor_failing_runs), so
LLMMonitorCanaryFailing neither resolves at a restart during an outage nor pages again once a new streak has lasted
its 15 minutes and 2 runs, and the health watch's failed runs, so canary.down counts the runs before a restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from monitor.app import App
from monitor.config import load_config
from monitor.domain import Observation
from monitor.sim import SimServer, scenario_from_dict
from tests.conftest import write_config
from tests.support.runner_config import PROBES, targets
from tests.test_runner_spend import judge_config

FAILING = "llm_monitor_failing_since_timestamp_seconds"
RUNS = "llm_monitor_failing_runs"
# Each model answers (up) or fails every call with a 500 (down), as the test switches it over the admin API (down
# would follow up on its own a day after the start).
SCENARIO = {"name": "switched", "seed": 1,
            "defaults": {"ttft": {"dist": "constant", "mean_ms": 5}, "output_tps": 2000,
                         "length": {"dist": "constant", "mean": 8}},
            "models": {m: {"phases": [{"name": "up"}, {"name": "down", "after": 86400, "faults": {"server_error": 1}}]}
                       for m in ("sim-gpt", "sim-claude")}}


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer(scenario_from_dict(SCENARIO)) as s:
        yield s


def switch(sim: SimServer, model: str, phase: str) -> None:
    httpx.post(f"{sim.url}/_sim/phase", json={"model": model, "phase": phase}, timeout=5).raise_for_status()


async def run(app: App, target: str) -> list[Observation]:
    canary, tgt = next((c, t) for c, t in app.config.pairs() if t.id == target)
    return await app.runner.run(canary, tgt)  # as the schedule runs it: `probe` (manual) runs are not the streak


def failing_since(app: App, target: str) -> float | None:
    return app.registry.get_sample_value(FAILING, {"canary": "kill-python-process", "target": target})


def failed_runs(app: App, target: str) -> float | None:
    return app.registry.get_sample_value(RUNS, {"canary": "kill-python-process", "target": target})


async def health_events(app: App, target: str) -> list[str]:
    """Run the canary on `target` as the schedule does (`App._run_job`): the health watch's events of that run."""
    canary, tgt = next((c, t) for c, t in app.config.pairs() if t.id == target)
    return [e.kind for e in app.health.run_finished(canary.id, tgt.id, await app.runner.run(canary, tgt))]


async def test_a_failing_streak_survives_a_restart_and_ends_at_the_first_success(sim: SimServer,
                                                                                 tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, targets(sim), PROBES), environ={"K": "k"})
    first = App(cfg, environ={"K": "k"}, serve_http=False, analyse=False)
    await first.start(schedule=False)
    try:
        switch(sim, "sim-gpt", "up")
        assert all(o.ok for o in await run(first, "gpt"))
        switch(sim, "sim-gpt", "down")
        streak = await run(first, "gpt")  # the streak's first failed run
        assert await run(first, "gpt") and not any(o.ok for o in streak)
        switch(sim, "sim-claude", "down")
        assert not any(o.ok for o in await run(first, "claude"))
        switch(sim, "sim-claude", "up")
        assert all(o.ok for o in await run(first, "claude"))  # its last run succeeded
    finally:
        await first.stop()
    began = min(o.started_at for o in streak).timestamp()
    assert failing_since(first, "gpt") == began and failed_runs(first, "gpt") == 2
    assert failed_runs(first, "claude") is None

    second = App(cfg, environ={"K": "k"}, serve_http=False, analyse=False)
    await second.start(schedule=False)
    try:
        assert failing_since(second, "gpt") == began  # from the store, before any run
        assert failed_runs(second, "gpt") == 2
        assert failing_since(second, "claude") is None and failed_runs(second, "claude") is None
        assert await health_events(second, "gpt") == ["canary.down"]  # its third failed run in a row
        assert failing_since(second, "gpt") == began  # the same streak goes on
        assert failed_runs(second, "gpt") == 3
        switch(sim, "sim-gpt", "up")
        assert any(o.ok for o in await run(second, "gpt"))
        assert failing_since(second, "gpt") is None and failed_runs(second, "gpt") is None
    finally:
        await second.stop()

    third = App(cfg, environ={"K": "k"}, serve_http=False, analyse=False)
    await third.start(schedule=False)
    await third.stop()
    assert failing_since(third, "gpt") is None and failing_since(third, "claude") is None
    assert failed_runs(third, "gpt") is None


async def test_a_failing_judge_keeps_its_streak_over_a_restart(sim: SimServer, tmp_path: Path) -> None:
    """The daemon's own calls have the gauge too (canary `_judge`, each call a run of its own)."""
    cfg = judge_config(tmp_path, sim, "claude", f"provider: anthropic, base_url: '{sim.url}', model: sim-claude",
                       samples=2)
    switch(sim, "sim-claude", "down")
    first = App(cfg, environ={"K": "k"}, serve_http=False, analyse=False)
    await first.start(schedule=False)
    try:
        assert all(o.ok for o in await run(first, "gpt"))
        await first.own_calls.settled()  # the judge's calls are recorded on the loop after its verdicts
    finally:
        await first.stop()
    judged = first.store.observations(canary="_judge", target="claude")
    assert judged and not any(o.ok for o in judged)
    labels = {"canary": "_judge", "target": "claude"}
    began = min(o.started_at for o in judged).timestamp()
    assert first.registry.get_sample_value(FAILING, labels) == began
    assert first.registry.get_sample_value(RUNS, labels) == len(judged)  # each call a run of its own
    second = App(cfg, environ={"K": "k"}, serve_http=False, analyse=False)
    await second.start(schedule=False)
    await second.stop()
    assert second.registry.get_sample_value(FAILING, labels) == began
    assert second.registry.get_sample_value(RUNS, labels) == len(judged)


async def test_a_pair_a_reload_adds_has_its_streak_read_back(sim: SimServer, tmp_path: Path) -> None:
    """Its streak gauges and its failed runs, as at start: a pair removed by one reload and added back by another
    (or added while its history is in the store) kept neither, so its page waited for a new streak."""
    cfg_path = write_config(tmp_path, targets(sim), PROBES)
    app = App(load_config(cfg_path, environ={"K": "k"}), environ={"K": "k"}, serve_http=False, analyse=False)
    await app.start(schedule=False)
    try:
        switch(sim, "sim-claude", "up")
        assert all(o.ok for o in await run(app, "claude"))
        switch(sim, "sim-claude", "down")
        assert [await health_events(app, "claude") for _ in range(2)] == [[], []]
        streak = [o for o in app.store.observations(canary="kill-python-process", target="claude") if not o.ok]
        probes = tmp_path / "probes" / "p.yaml"
        probes.write_text(PROBES + "    targets: [gpt]\n")
        assert (await app.reload())[0]
        assert failing_since(app, "claude") is None and failed_runs(app, "claude") is None  # removed
        probes.write_text(PROBES)
        assert (await app.reload())[0]
        assert failing_since(app, "claude") == min(o.started_at for o in streak).timestamp()
        assert failed_runs(app, "claude") == 2
        assert await health_events(app, "claude") == ["canary.down"]  # the third failed run in a row
    finally:
        await app.stop()
