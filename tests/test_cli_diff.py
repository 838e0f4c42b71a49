"""`llm-monitor diff` from what the store holds: a canary the configuration no longer has (removed, renamed) still
shows its baseline against its latest completions, saying the configuration does not know it."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.sim import scenario_from_dict
from tests.support.drift_app import stored_runs
from tests.support.inprocess import Cli

SCENARIO = scenario_from_dict({"name": "diff", "seed": 5, "defaults": {"ttft": 5, "output_tps": 5000},
                               "models": {"m": {"phases": [{"name": "a"}]}}})


@pytest.fixture
async def stored(tmp_path: Path) -> Path:
    """A store with a formed baseline for canary c1 x target t and completions after it; its config path."""
    cfg, _ = await stored_runs(tmp_path, SCENARIO, 5, "{baseline_size: 5}", 2)
    return cfg


def test_diff_of_a_canary_removed_from_the_config_reads_the_store(stored: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    probes = stored.parent / "probes" / "p.yaml"
    probes.write_text(probes.read_text().replace("id: c1", "id: c2"))  # c1 removed (renamed) from the config
    cli = Cli(capsys)
    for args in (["--target", "t"], []):
        code, out, err = cli("diff", "c1", *args, "-c", str(stored))
        assert code == 0, err
        assert "c1 @ t" in out and "baseline:" in out and "vs latest 3" in out, out
        assert "c1 is not in the configuration" in err and "what the store holds" in err, err
    code, _, err = cli("diff", "c1", "--target", "t2", "-c", str(stored))  # nothing stored for it: an error still
    assert code == 2 and "no target 't2' for canary 'c1'" in err and "known: t" in err, err
    code, _, err = cli("diff", "c9", "-c", str(stored))
    assert code == 2 and "no canary 'c9' in the configuration or the store" in err and "c1" in err, err


def test_diff_after_an_outage_shows_the_latest_completions_and_counts_the_failed_calls_left_out(
        stored: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by QA: `diff -n 3` read the latest 9 observations and showed the completions among them: after an
    outage of 12 failed calls it showed none ("vs latest 0"), and after fewer, fewer than asked, without a word."""
    import dataclasses
    from datetime import timedelta

    from monitor.domain import ErrorType, utcnow
    from monitor.store import Store
    from tests.test_store_contract import obs

    store = Store(f"sqlite:///{stored.parent / 'm.db'}")
    now = utcnow()
    for i in range(12):
        o = obs(i, canary="c1", error=ErrorType.SERVER_ERROR)
        store.save_observation(dataclasses.replace(o, started_at=now + timedelta(seconds=i)))
    store.close()
    code, out, err = Cli(capsys)("diff", "c1", "-n", "3", "-c", str(stored))
    assert code == 0, err
    assert "vs latest 3 completions; 12 failed calls since left out" in out, out
    assert out.count("\n20") == 3, out  # three completions, each under its time
