"""The baseline commands as users run them on a live store: accept right after a change, pin and accept counting the
failed calls of their range, and what `baseline show` and the events table say."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from monitor.commands.common import utc_time
from monitor.config import load_config
from monitor.sim import SimServer, scenario_from_dict
from monitor.store import Store
from monitor.store.drift_repo import DriftRepository
from tests.support.drift_app import started_app, stored_runs
from tests.support.inprocess import CliRun


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> CliRun:
    """`llm-monitor ARGS` run in this process."""
    return CliRun(capsys)


async def test_accept_right_after_a_change_takes_only_observations_since_it(
        tmp_path: Path, cli: CliRun) -> None:
    """The latest baseline_size observations would straddle the change: the accepted baseline must be the new
    behaviour only (else it is a mix, and the next window test may open an event against it)."""

    scenario = scenario_from_dict({"name": "mix", "seed": 6, "defaults": {"ttft": 5, "output_tps": 5000},
                                   "models": {"m": {"phases": [{"name": "a", "system_fingerprint": "fp_old"},
                                                               {"name": "b", "after_requests": 10**6,
                                                                "system_fingerprint": "fp_new"}]}}})
    probes = ("canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    samples: 6\n"
              "    params: {temperature: 0.7}\n")
    with SimServer(scenario) as sim:
        app, cfg_path, canary, target = await started_app(tmp_path, sim, probes, "{baseline_size: 10}")
        try:
            for _ in range(3):
                await app.runner.run(canary, target)
            await asyncio.sleep(0.05)
            httpx.post(sim.url + "/_sim/phase", json={"model": "m", "phase": "b"}).raise_for_status()
            await app.runner.run(canary, target)  # six new observations: the fingerprint event opens
        finally:
            await app.stop()
    accept = cli("baseline", "accept", "c1", "-c", str(cfg_path), "--note", "new fingerprint")
    assert accept.returncode == 0 and "(6 observations)" in accept.stdout, accept.stdout + accept.stderr
    store = Store(load_config(cfg_path, environ={}).storage.url)
    [row] = DriftRepository(store.engine).baselines(canary="c1", target="t")
    taken = sorted(o.started_at for o in store.observations(canary="c1", target="t", limit=6))
    store.close()
    assert row["data"]["identity"]["system_fingerprint"] == ["fp_new"]
    # `baseline show` gave an accepted baseline's `since` as the time it was made (the accept's), not the answers
    # it was accepted from, as a pinned one's range is shown
    show = cli("baseline", "show", "c1", "-c", str(cfg_path))
    assert show.returncode == 0, show.stdout + show.stderr
    rows: list[list[str]] = []  # since, source of each row; a cell folded over lines is joined again
    for line in show.stdout.splitlines():
        cells = [c.strip() for c in line.split("│")[1:]]
        if cells and cells[0]:
            rows.append([cells[2], cells[3]])
        elif cells:
            rows[-1][0] += " " + cells[2]
    assert [r for r in rows if r[1] == "accepted"] == [
        [f"accepted range {utc_time(taken[0])} .. {utc_time(taken[-1])}", "accepted"]], show.stdout


def test_the_events_table_says_which_test_decided_and_does_not_mix_p_values_with_chart_levels() -> None:
    from monitor.commands.drift import decision

    assert decision({"test": "mann_whitney", "p_value": 3.2e-6, "statistic": 410.0, "threshold": None}) == \
        "mann_whitney p=3.2e-06"
    assert decision({"test": "bernoulli_cusum", "p_value": None, "statistic": 7.14, "threshold": 5.2}) == \
        "bernoulli_cusum 7.14/5.2"
    assert decision({"test": "first_seen", "p_value": None, "statistic": None, "threshold": None}) == "first_seen"
    # a chart's event whose signal a window test went on testing: that p-value under that test's name, never the
    # chart's (`rank_cusum p=4.1e-08` read as the rank CUSUM's); one stored before that was kept apart: `window`
    assert decision({"test": "rank_cusum", "p_value": None, "statistic": 13.1, "threshold": 13.0,
                     "detail": {"window": {"test": "mann_whitney+ks", "p_value": 4.1e-8}}}) == \
        "rank_cusum 13.1/13; mann_whitney+ks p=4.1e-08"
    assert decision({"test": "rank_cusum", "p_value": 4.1e-8, "statistic": 13.1, "threshold": 13.0}) == \
        "rank_cusum 13.1/13; window p=4.1e-08"
    # a replayed window test keeps its level (alpha) as its threshold: still its p-value
    assert decision({"test": "chi_square", "p_value": 1e-4, "statistic": 31.0, "threshold": 0.01}) == "chi_square p=0.0001"


def test_baseline_show_counts_what_the_reference_learned_beside_what_it_was_built_from() -> None:
    from monitor.commands.baseline import reference_n

    assert reference_n({"count": 30, "rates": {"refused": [2, 30], "error": [1, 31]}}) == 31
    assert reference_n({"count": 30, "rates": {"refused": [9, 640], "error": [4, 655]}}) == 655  # learned
    assert reference_n({"count": 30}) == 30


def test_baseline_show_says_how_many_failed_calls_it_left_out_as_outages() -> None:
    from monitor.commands.baseline import left_out

    assert left_out({"version": 1, "count": 30}) == "0"  # nothing left out (or stored before the outage rule)
    assert left_out({"version": 2, "outages": {"held": [], "run": 0, "left_out": 4, "outages": 1}}) == \
        "4 calls in 1 run"
    assert left_out({"version": 2, "outages": {"held": [{"error": True}], "run": 1, "left_out": 0,
                                               "outages": 0}}) == "0"  # an open run is not left out yet
    assert left_out({"version": 2, "outages": {"left_out": 9, "outages": 2}}) == "9 calls in 2 runs"


async def test_pin_and_accept_count_the_ranges_failed_calls_in_the_error_rate(
        tmp_path: Path, cli: CliRun) -> None:
    # `baseline pin` and `accept` gave the engine the range's successful observations only, so their baselines
    # expected no error at all where the daemon's own (first_n) ones learn the provider's isolated errors.
    scenario = scenario_from_dict({"name": "flaky", "seed": 3, "defaults": {"ttft": 5, "output_tps": 5000},
                                   "models": {"*": {"phases": [{"name": "a", "faults": {"malformed": 0.25}}]}}})
    cfg_path, observed = await stored_runs(tmp_path, scenario, 6, "{baseline_size: 10}", runs=4)
    failed = sum(1 for o in observed if not o.ok)
    assert 0 < failed < len(observed) - 10, failed  # isolated failures among enough answers (seed 3)

    def stored_error_rate() -> list[int]:
        store = Store(load_config(cfg_path, environ={}).storage.url)
        try:
            data = DriftRepository(store.engine).baselines(canary="c1", target="t")[0]["data"]
        finally:
            store.close()
        assert data["version"] == 1 and data["count"] >= 10, data  # isolated failures: nothing left out
        return data["rates"]["error"]

    pin = cli("baseline", "pin", "c1", "--since", "1h", "-c", str(cfg_path))
    assert pin.returncode == 0 and "failed call" in pin.stdout, pin.stdout + pin.stderr
    errors, n = stored_error_rate()
    assert errors > 0 and n > 10, (errors, n)
    accept = cli("baseline", "accept", "c1", "-c", str(cfg_path))
    assert accept.returncode == 0, accept.stderr
    errors, n = stored_error_rate()
    assert errors > 0 and n > 10, (errors, n)


async def test_baseline_show_without_a_canary_lists_every_canarys_baselines(
        tmp_path: Path, cli: CliRun) -> None:
    # `baseline show` needed a canary: watching baselines form across a fleet took one command per canary, and
    # "show" alone was a usage error.
    scenario = scenario_from_dict({"name": "all", "seed": 4, "defaults": {"ttft": 5, "output_tps": 5000},
                                   "models": {"m": {"phases": [{"name": "a"}]}}})
    probes = "canaries:\n" + "".join(f"  - id: {c}\n    messages: [{{role: user, content: {c}}}]\n    samples: 5\n"
                                     for c in ("c1", "c2"))
    with SimServer(scenario) as sim:
        app, cfg_path, _, _ = await started_app(tmp_path, sim, probes, "{baseline_size: 5}")
        try:
            pairs = load_config(cfg_path, environ={}).pairs()
            await app.runner.run(*pairs[0])  # c1 forms its baseline; c2 never ran
        finally:
            await app.stop()
    show = cli("baseline", "show", "-c", str(cfg_path))
    assert show.returncode == 0, show.stderr
    assert "c1 " in show.stdout and "first_n" in show.stdout
    assert "c2 @ t: no baseline yet" in show.stdout
    bad = cli("baseline", "show", "-c", str(cfg_path), "--target", "tt")
    assert bad.returncode == 2 and "no target 'tt' in the configuration or in any stored drift event or baseline (known: t)" in bad.stderr
    need = cli("baseline", "accept", "-c", str(cfg_path))
    assert need.returncode == 2 and "the following arguments are required: canary" in need.stderr


async def test_pin_refuses_a_range_holding_more_than_it_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    # `baseline pin` read the oldest 100,000 observations of its range and pinned those, saying nothing of the rest:
    # a long range was silently cut short. (A small cap stands in for PIN_MAX_OBSERVATIONS.)
    from monitor.commands import baseline as command

    scenario = scenario_from_dict({"name": "many", "seed": 5, "defaults": {"ttft": 5, "output_tps": 5000},
                                   "models": {"m": {"phases": [{"name": "a"}]}}})
    cfg_path, observed = await stored_runs(tmp_path, scenario, 6, "{baseline_size: 5}", runs=3)
    monkeypatch.setattr(command, "PIN_MAX_OBSERVATIONS", 10)
    capsys.readouterr()
    assert command.baseline(str(cfg_path), "pin", "c1", None, "", since="2026-01-01T00:00:00Z") == 2
    err = " ".join(capsys.readouterr().err.split())
    eleventh = utc_time(sorted(o.started_at for o in observed)[10])
    assert ("c1 @ t: the range 2026-01-01T00:00:00+00:00 .. now (" in err and "holds 18 observations (failed calls "
            f"included), more than baseline pin reads (10; nothing changed): choose a shorter range, --until {eleventh} "
            "for its oldest 10 or fewer, or a later --since" in err), err
    store = Store(load_config(cfg_path, environ={}).storage.url)
    try:
        assert [r["source"] for r in DriftRepository(store.engine).baselines(canary="c1", target="t")] == ["first_n"]
    finally:
        store.close()
    monkeypatch.setattr(command, "PIN_MAX_OBSERVATIONS", 18)  # the whole range fits: pinned, all of it
    assert command.baseline(str(cfg_path), "pin", "c1", None, "", since="2026-01-01T00:00:00Z") == 0
    assert "baseline pinned to 18 observations" in capsys.readouterr().out


async def test_baseline_show_json_writes_one_object_per_baseline(tmp_path: Path, cli: CliRun) -> None:
    # `baseline show` had no --json, though drift, probe, replay and alerts pending do: scripts parsed the table.
    import json

    scenario = scenario_from_dict({"name": "js", "seed": 4, "defaults": {"ttft": 5, "output_tps": 5000},
                                   "models": {"m": {"phases": [{"name": "a", "system_fingerprint": "fp_a"}]}}})
    probes = "canaries:\n" + "".join(f"  - id: {c}\n    messages: [{{role: user, content: {c}}}]\n    samples: 5\n"
                                     for c in ("c1", "c2"))
    with SimServer(scenario) as sim:
        app, cfg_path, _, _ = await started_app(tmp_path, sim, probes, "{baseline_size: 5}")
        try:
            await app.runner.run(*load_config(cfg_path, environ={}).pairs()[0])  # c1 forms its baseline
        finally:
            await app.stop()
    show = cli("baseline", "show", "-c", str(cfg_path), "--json")
    assert show.returncode == 0, show.stderr
    [row] = [json.loads(line) for line in show.stdout.splitlines()]
    store = Store(load_config(cfg_path, environ={}).storage.url)
    [stored] = DriftRepository(store.engine).baselines(canary="c1", target="t")
    store.close()
    assert row == {"id": stored["id"], "canary": "c1", "target": "t", "created_at": stored["created_at"].isoformat(),
                   "source": "first_n", "note": "", "active": True, "since": stored["created_at"].isoformat(),
                   "until": None, "ready": True, "built_from": 5, "reference": 5, "outages_left_out": 0,
                   "outage_runs": 0, "identity": stored["data"]["identity"], "configured": True}
    assert "fp_a" in row["identity"]["system_fingerprint"]
    assert "c2 @ t: no baseline yet" in show.stderr  # stdout stays JSON lines
    bad = cli("baseline", "reset", "c1", "-c", str(cfg_path), "--json")
    assert bad.returncode == 2 and "unrecognized arguments: --json (--json is an option of `baseline show`)" in bad.stderr
