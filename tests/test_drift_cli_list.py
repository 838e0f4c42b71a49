"""`drift` narrowed to canaries and targets, the times the drift and baseline tables print, and `baseline show`'s
pinned range, on a store written directly (no daemon)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.drift.events import DriftEvent
from monitor.store import Store
from monitor.store.drift_repo import DriftRepository
from tests.conftest import write_config
from tests.support.inprocess import Cli
from tests.test_store_contract import obs

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TARGETS = ("  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}\n"
           "  - {id: u, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}")


def canaries(*ids: str) -> str:
    return "canaries:\n" + "".join(f"  - id: {c}\n    messages: [{{role: user, content: hi}}]\n" for c in ids)


def event(canary: str, target: str, signal: str, state: str = "open", opened_at: str | None = None) -> dict:
    return DriftEvent(canary=canary, target=target, signal=signal, kind="behaviour", test="mann_whitney",
                      baseline_value=100.0, current_value=150.0, effect_size=0.5, statistic=None, p_value=1e-6,
                      threshold=None, baseline_n=30, current_n=20, first_obs_id="o1",
                      first_obs_at=T0.isoformat(), opened_at=opened_at or T0.isoformat(), state=state).to_json()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    cfg = write_config(tmp_path, TARGETS, canaries("c1", "c2", "c3"))
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    store.migrate()
    DriftRepository(store.engine).save_events([
        event("c1", "t", "output_chars"), event("c1", "u", "output_chars"), event("c2", "t", "refused"),
        event("c2", "t", "output_chars", state="resolved"),
        event("gone", "t", "output_chars")])  # a canary since removed from the configuration
    store.close()
    return cfg


def listed(out: str) -> list[tuple[str, str, str, str]]:
    return [(e["canary"], e["target"], e["signal"], e["state"]) for e in map(json.loads, out.splitlines())]


def test_drift_lists_only_the_canaries_and_targets_asked_for(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(capsys)
    code, out, _ = cli("drift", "-c", str(config), "--canary", "c1", "--json")
    assert code == 0 and sorted(listed(out)) == [("c1", "t", "output_chars", "open"), ("c1", "u", "output_chars", "open")]
    code, out, _ = cli("drift", "-c", str(config), "--canary", "c1", "--canary", "c2", "--target", "t", "--open",
                       "--json")
    assert code == 0 and sorted(listed(out)) == [("c1", "t", "output_chars", "open"), ("c2", "t", "refused", "open")]
    code, out, _ = cli("drift", "-c", str(config), "--target", "u")
    assert code == 0 and "c1" in out and "c2" not in out and "gone" not in out
    code, out, _ = cli("drift", "-c", str(config), "--canary", "gone", "--json")  # removed, its events still there
    assert code == 0 and listed(out) == [("gone", "t", "output_chars", "open")]
    code, out, _ = cli("drift", "-c", str(config), "--canary", "c3", "--json")  # configured, no event yet
    assert (code, out) == (0, "")
    code, out, _ = cli("drift", "-c", str(config), "--canary", "c3", "--open")
    assert code == 0 and "open drift events" in out and "c1" not in out


def test_a_name_neither_configured_nor_stored_is_an_error_naming_the_flag_value_and_known_names(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(capsys)
    code, out, err = cli("drift", "-c", str(config), "--canary", "c1", "--canary", "c11", "--json")
    assert (code, out) == (2, "")
    assert err.strip() == ("error: --canary: no canary 'c11' in the configuration or in any stored drift event "
                           "(known: c1, c2, c3, gone)")
    code, _, err = cli("drift", "-c", str(config), "--target", "v", "--open")
    assert code == 2 and "--target: no target 'v' in the configuration or in any stored drift event (known: t, u)" \
        in err
    many = write_config(tmp_path, TARGETS, canaries(*(f"k{i:02d}" for i in range(30))))  # the same store
    code, _, err = cli("drift", "-c", str(many), "--canary", "nope")
    assert code == 2 and "(known: c1, c2, gone, k00, k01," in err and "k16 and 13 more)" in err, err


def test_the_drift_table_prints_times_in_utc_with_their_offset_and_json_as_stored(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, TARGETS, canaries("c1"))
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    store.migrate()
    stored = [event("c1", "t", "refused", opened_at="2026-11-30T08:30:00+01:00"),
              event("c1", "u", "refused", opened_at="2026-11-30T09:45:12.123456+00:00")]
    DriftRepository(store.engine).save_events(stored)
    store.close()
    cli = Cli(capsys)
    code, out, _ = cli("drift", "-c", str(cfg))
    rows = [line for line in out.splitlines() if "refused" in line]
    assert code == 0 and [row.split()[1] for row in rows] == ["2026-11-30T09:45:12+00:00",
                                                              "2026-11-30T07:30:00+00:00"], out
    code, out, _ = cli("drift", "-c", str(cfg), "--json")
    assert [e["opened_at"] for e in map(json.loads, out.splitlines())] == [
        "2026-11-30T09:45:12.123456+00:00", "2026-11-30T08:30:00+01:00"]  # as stored: ISO 8601 with its offset


def test_the_drift_table_says_since_when_beside_when_the_event_opened(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Found by QA (an SRE's first day): the table showed only when an event was detected (`opened`), not the
    # estimated start of the change (first_obs_at), which the webhook, Slack and --json all give as "since"; and
    # long ids and values squeezed the time to `2026-12-03T19:20:32+00:…`
    canary = "c1-" + "long-canary-id-" * 4
    cfg = write_config(tmp_path, TARGETS, canaries(canary))
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    store.migrate()
    long = {**event(canary, "t", "check:" + "mentions-a-command-" * 3, opened_at="2026-11-30T09:07:30+00:00"),
            "baseline_value": "sim-gpt-2025-01-15-" + "x" * 50, "current_value": "sim-gpt-2025-03-01-" + "y" * 50}
    DriftRepository(store.engine).save_events([long])
    store.close()
    code, out, _ = Cli(capsys)("drift", "-c", str(cfg))
    header = [w for w in next(line for line in out.splitlines() if "opened" in line).split() if w != "┃"]
    row = [w for w in next(line for line in out.splitlines() if "c1-" in line).split() if w != "│"]
    assert code == 0 and header[:2] == ["opened", "since"], out
    assert row[:2] == ["2026-11-30T09:07:30+00:00", "2026-11-30T09:00:00+00:00"], out

def test_baseline_show_gives_a_pinned_baselines_range_and_the_others_time_made(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, TARGETS, canaries("c1"))
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    store.migrate()
    first = obs(0, canary="c1")  # 2026-11-01 12:00 UTC
    store.save_observation(first)
    repo = DriftRepository(store.engine)

    def saved(target: str, source: str, first_id: str, made: datetime) -> None:
        data = {"version": 1, "count": 30, "ready": True, "first_obs_id": first_id,
                "last_obs_at": (first.started_at + timedelta(days=6, hours=3)).isoformat()}
        repo.save_baseline("c1", target, data, source=source, note=source, now=made)

    saved("t", "first_n", first.id, T0 - timedelta(days=20))
    saved("t", "pinned", first.id, T0)
    saved("u", "pinned", "pruned-long-ago", T0)
    store.close()
    code, out, _ = Cli(capsys)("baseline", "show", "-c", str(cfg))
    rows = [[cell.strip() for cell in line.split("│")[1:5]] for line in out.splitlines() if line.startswith("│")]
    assert code == 0 and sorted(rows) == [  # canary, target, since, source
        ["c1", "t", "2026-11-10T09:00:00+00:00", "first_n"],  # not pinned: when it was made, as before
        ["c1", "t", "pinned range 2026-11-01T12:00:00+00:00 .. 2026-11-07T15:00:00+00:00", "pinned"],
        ["c1", "u", "pinned range (pruned) .. 2026-11-07T15:00:00+00:00", "pinned"]], out


def test_an_open_event_of_a_pair_no_longer_configured_says_so(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A removed canary's events stay open (nothing watches them; they resume if it comes back): they read as
    watched ones did."""
    cli = Cli(capsys)
    code, out, _ = cli("drift", "-c", str(config), "--open", "--json")
    assert code == 0
    assert {(e["canary"], e["target"]): e["configured"] for e in map(json.loads, out.splitlines())} == {
        ("c1", "t"): True, ("c1", "u"): True, ("c2", "t"): True, ("gone", "t"): False}
    code, out, _ = cli("drift", "-c", str(config), "--open")
    rows = [line for line in out.splitlines() if "output_chars" in line or "refused" in line]
    assert [("gone" in r, "open (not configured)" in r) for r in rows].count((True, True)) == 1
    assert all("not configured" not in r for r in rows if "gone" not in r)


def test_every_unknown_name_error_lists_as_drift_does_nearest_first_then_twenty_and_how_many_more(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Found by QA: `probe --canary`, `export --canary`, `diff`, `baseline show --target` and check-config's routes
    # listed every one of ~60 canaries (or cut at 20 with "...", nearest not first), where `drift` stops at 20
    cli = Cli(capsys)
    ids = [f"k{i:02d}" for i in range(30)] + ["kill-python-process"]
    cfg = write_config(tmp_path, TARGETS, canaries(*ids))
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    store.migrate()
    store.close()
    for args in (["probe", "--canary", "kill-pyhton-process"], ["export", "--canary", "kill-pyhton-process"],
                 ["diff", "kill-pyhton-process"], ["baseline", "reset", "kill-pyhton-process"],
                 ["drift", "--canary", "kill-pyhton-process"]):
        _, _, err = cli(*args, "-c", str(cfg))
        [known] = re.findall(r"\((?:known|canaries): ([^;)]*)", err) or [err]
        assert known == "kill-python-process, " + ", ".join(ids[:19]) + " and 11 more", (args, err)
    _, _, err = cli("baseline", "show", "--target", "uu", "-c", str(cfg))
    assert "no target 'uu' in the configuration or in any stored drift event or baseline (known: u, t)" in err, err


def test_baseline_show_lists_the_baselines_of_removed_pairs_marked_so(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # Found by QA: `baseline show` listed the configured pairs only: a removed canary's or target's baselines, which
    # `baseline reset` reaches and a re-added pair resumes from, were out of sight
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       canaries("c1"))
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    store.migrate()
    repo = DriftRepository(store.engine)
    for canary, target in (("c1", "t"), ("c1", "gone-target"), ("gone-canary", "t")):
        repo.save_baseline(canary, target, {"version": 1, "count": 30, "ready": True}, source="first_n", now=T0)
    DriftRepository(store.engine).save_events([event("events-only", "t", "output_chars")])  # no baseline: not listed
    store.close()
    cli = Cli(capsys)
    for args in ([], ["c1"], ["--target", "gone-target"]):
        code, out, err = cli("baseline", "show", *args, "-c", str(cfg), "--json")
        assert code == 0, err
        assert {(b["canary"], b["target"]): b["configured"] for b in map(json.loads, out.splitlines())} == {
            ("c1", "t"): True, ("c1", "gone-target"): False, ("gone-canary", "t"): False,
        } if not args else ({("c1", "t"): True, ("c1", "gone-target"): False} if args == ["c1"]
                            else {("c1", "gone-target"): False}), (args, out)
    code, out, _ = cli("baseline", "show", "-c", str(cfg))
    rows = {tuple(cell.strip() for cell in line.split("│")[1:3]) for line in out.splitlines() if line.startswith("│")}
    assert code == 0 and rows == {("c1", "t"), ("c1", "gone-target (removed)"), ("gone-canary", "t (removed)")}, out
    assert "events-only" not in out and "no baseline yet" not in out
