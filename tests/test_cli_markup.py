"""Text the CLI prints that comes from users, receivers or stores (notes, error messages, paths, signals) is shown
as written: never read as rich markup, where `[bold]` vanished and a closing tag (`[/x]`) ended the command with a
MarkupError (found by review23)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from monitor.alerts.commands import alerts_pending
from monitor.alerts.events import AlertEvent
from monitor.sim import scenario_from_dict
from tests.support.drift_app import stored_runs
from tests.test_alerts_commands import _outbox, console

MARKUP = "[/x] and [bold]y[/bold]"


async def test_baseline_show_and_pin_show_a_note_as_written(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.commands import baseline as command

    scenario = scenario_from_dict({"name": "note", "seed": 5, "defaults": {"ttft": 5, "output_tps": 5000},
                                   "models": {"m": {"phases": [{"name": "a"}]}}})
    cfg_path, _ = await stored_runs(tmp_path, scenario, 6, "{baseline_size: 5}", runs=1)
    assert command.baseline(str(cfg_path), "pin", "c1", None, MARKUP, since="2026-01-01T00:00:00Z") == 0
    capsys.readouterr()
    assert command.baseline(str(cfg_path), "show", None, None, "") == 0
    out = capsys.readouterr().out
    assert MARKUP in out, out


def test_alerts_pending_shows_a_receivers_error_as_written(tmp_path: Path) -> None:
    config = _outbox(tmp_path, "hook", "webhook", AlertEvent(kind="canary.down", canary="c2", target="t1",
                                                             signal="health"), dead=f"HTTP 400: {MARKUP}")
    con, buf = console()
    assert alerts_pending(config, every=True, console=con) == 0
    assert f"HTTP 400: {MARKUP}" in buf.getvalue(), buf.getvalue()


def test_demo_drift_lines_and_the_kept_folder_are_shown_as_written(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.commands import demo
    from monitor.drift import EventUpdate
    from monitor.drift.events import DriftEvent, evidence

    e = DriftEvent(canary="c", target="t", signal=f"check:{MARKUP}", kind="behaviour", test="t",
                   baseline_value=0.0, current_value=1.0, effect_size=None, statistic=None, p_value=0.001,
                   threshold=None, baseline_n=12, current_n=3, first_obs_id="o1", first_obs_at="2026-11-29T13:14:00",
                   opened_at="2026-11-29T13:14:41", evidence=evidence("a", "b"))
    con = Console(record=True, width=400, color_system=None)
    demo.drift_printer(con, {})(EventUpdate("opened", e))
    assert f"in check:{MARKUP} of c @ t" in con.export_text(), con.export_text()
    kept = tmp_path / "[/x]"
    con = Console(record=True, width=400, color_system=None)
    monkeypatch.setattr(demo, "table_console", lambda: con)
    demo.summary([e], kept)
    out = con.export_text()
    assert f"Evidence of check:{MARKUP} on c @ t" in out and f"Store kept in {kept}." in out, out


def test_demo_keep_refused_names_the_folder_as_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.commands import demo

    folder = tmp_path / "a[" / "x]"  # a path holding `[/x]`
    folder.mkdir(parents=True)
    (folder / "monitor.yaml").write_text("# the user's own\n")
    assert demo.main(0, "5s", "1s", str(folder)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"--keep {folder}: {folder / 'monitor.yaml'} exists" in err, err


def test_probe_cannot_start_shows_the_error_as_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.commands import probe
    from tests.conftest import write_config

    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m, "
                                 "api_key_env: K}",
                       "canaries:\n  - id: c\n    messages: [{role: user, content: hi}]\n")
    missing = tmp_path / "no[/x]dir"
    cfg.write_text(cfg.read_text().replace(f"sqlite:///{tmp_path / 'm.db'}", f"sqlite:///{missing / 'm.db'}"))
    monkeypatch.setenv("K", "k")
    assert probe.main(str(cfg), None, None, False) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot start: cannot prepare the store" in err and f"does {missing} exist" in err, err



def test_sim_cannot_listen_names_the_host_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.commands import sim

    assert sim.main("no[/x]host", 0, None) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "error: cannot listen on no[/x]host:0:" in err, err
