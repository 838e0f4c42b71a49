"""A canary with two or more checks of one type left unnamed (or given one name) is warned of by `check-config`, at
the daemon's start and by a reload that makes such a group: their result names (`contains`, `contains#2`) come from
their order, so removing or reordering one hands its stored history, baselines and drift events (`check:contains`)
to another check. Not refused: the names work, only an edit to a neighbour renames them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import Canary, load_config, load_probe_files
from monitor.config.check_order import order_named
from tests.conftest import write_config
from tests.support.inprocess import CliRun

PROBES = Path(__file__).resolve().parents[1] / "probes"
TARGET = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}"
TWO = ("canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    checks:\n"
       "      - {type: contains, value: [a]}\n"
       "      - {type: length, max: 99}\n"
       "      - {type: contains, value: [b]}\n")
WHY = ("name them (`name: ...`): their names come from their order, and removing or reordering one hands its history "
       "and drift events to another")


def canary(*checks: dict[str, object]) -> Canary:
    return Canary.model_validate({"id": "c1", "messages": [{"role": "user", "content": "hi"}], "checks": list(checks)})


def test_two_unnamed_checks_of_one_type_are_warned_of_naming_the_checks_and_their_names() -> None:
    [warning] = order_named([canary({"type": "contains", "value": ["a"]}, {"type": "length", "max": 9},
                                    {"type": "contains", "value": ["b"]})])
    assert warning == ("canary c1: checks[0] and checks[2] (unnamed contains checks) are named by their order "
                       f"(contains, contains#2): {WHY}")


@pytest.mark.parametrize("checks", [
    [{"type": "contains", "value": ["a"]}, {"type": "not_contains", "value": ["b"]}],
    [{"type": "contains", "value": ["a"]}, {"type": "contains", "value": ["b"], "name": "has-b"}],
    [{"type": "contains", "value": ["a"]}, {"type": "contains", "value": ["b"], "name": "contains#2"}],
])
def test_checks_named_apart_or_of_different_types_are_not_warned_of(checks: list[dict[str, object]]) -> None:
    assert order_named([canary(*checks)]) == []


def test_checks_given_one_name_are_warned_of_as_named_by_their_order() -> None:
    """Two checks written with one `name` are told apart the same way: `fmt`, `fmt#2`."""
    [warning] = order_named([canary({"type": "contains", "value": ["a"], "name": "fmt"},
                                    {"type": "regex", "pattern": "x", "name": "fmt"})])
    assert warning.startswith("canary c1: checks[0] and checks[1] (checks named fmt) are named by their order "
                              "(fmt, fmt#2): give them names of their own (`name: ...`): their names come from "), warning


def test_check_config_warns_at_the_first_checks_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, TARGET, TWO)
    out = CliRun(capsys)("check-config", "-c", str(cfg))
    assert out.returncode == 0 and "configuration OK" in out.stdout, out.stderr
    p = tmp_path / "probes" / "p.yaml"
    assert [line for line in out.stdout.splitlines() if "by their order" in line] == [
        f"warning: {p}:5: canary c1: checks[0] and checks[2] (unnamed contains checks) are named by their order "
        f"(contains, contains#2): {WHY}"], out.stdout


async def test_the_daemon_warns_of_it_at_its_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = write_config(tmp_path, TARGET, TWO)
    caplog.set_level(logging.WARNING, logger="monitor.app")
    app = App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={})
    await app.start(schedule=False)
    try:
        warned = [r.getMessage() for r in caplog.records if "by their order" in r.getMessage()]
        assert [w.split(" (unnamed")[0] for w in warned] == [
            f"{tmp_path / 'probes' / 'p.yaml'}:5: canary c1: checks[0] and checks[2]"]
    finally:
        await app.stop()


async def test_a_reload_that_makes_such_checks_warns_of_them_once(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Said by the reload that makes the group or changes it (a check of it removed or moved), not by every reload."""
    probes = tmp_path / "probes" / "p.yaml"
    cfg = write_config(tmp_path, TARGET, TWO.replace("[b]}", "[b], name: has-b}"))
    app = App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={})
    await app.start(schedule=False)
    try:
        caplog.set_level(logging.WARNING, logger="monitor.app")
        probes.write_text(TWO)
        ok, message = await app.reload()
        assert ok, message
        assert [r.getMessage().split(" (unnamed")[0] for r in caplog.records if "by their order" in r.getMessage()] \
            == [f"{probes}:5: canary c1: checks[0] and checks[2]"]
        caplog.clear()
        probes.write_text(TWO.replace("max: 99", "max: 98"))  # another check edited: the group is as it was
        ok, _ = await app.reload()
        assert ok and not [r for r in caplog.records if "by their order" in r.getMessage()]
        probes.write_text(TWO + "      - {type: contains, value: [c]}\n")  # a third: a changed group, said again
        ok, _ = await app.reload()
        assert ok and [r.getMessage().split(" (unnamed")[0] for r in caplog.records
                       if "by their order" in r.getMessage()] == [f"{probes}:5: canary c1: checks[0], checks[2] and checks[3]"]
    finally:
        await app.stop()


def test_the_shipped_canaries_name_their_checks_apart() -> None:
    assert order_named(load_probe_files(sorted(PROBES.glob("*.yaml")))) == []


def test_a_check_renamed_by_its_neighbours_edit_is_warned_of() -> None:
    """The moment of harm: the edit that renames a check named by its order (the first of two unnamed `contains`
    removed: the second, `contains#2`, becomes `contains`) hands it another check's history and open events.
    The group is gone then, so the group's warning says nothing; this one names what moved where."""
    a, b = {"type": "contains", "value": ["a"]}, {"type": "contains", "value": ["b"]}
    length = {"type": "length", "max": 9}
    from monitor.config.check_order import renamed_by_order

    [warning] = renamed_by_order([canary(length, b)], [canary(a, length, b)])
    assert warning == ("canary c1: checks[1] (contains) is now called contains, where it was contains#2 (a check "
                       "before it was removed or moved): its results now meet the stored history, baseline and drift "
                       "events of check:contains, another check's until now; name checks that share a type "
                       "(`name: ...`)"), warning
    [swapped, _] = renamed_by_order([canary(b, a)], [canary(a, b)])
    assert swapped.startswith("canary c1: checks[0] (contains) is now called contains, where it was contains#2 ")
    assert renamed_by_order([canary(a, b)], [canary(a, length, b)]) == []  # the names stay
    assert renamed_by_order([canary(b)], [canary(a, {**b, "name": "has-b"})]) == []  # named: renamed by hand
    [gone] = renamed_by_order([canary(length, b)], [canary(a, b)])  # `contains` was another check's, too
    assert gone.startswith("canary c1: checks[1] (contains) is now called contains, where it was contains#2 "), gone


async def test_a_reload_that_renames_a_check_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    probes = tmp_path / "probes" / "p.yaml"
    cfg = write_config(tmp_path, TARGET, TWO)
    app = App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={})
    await app.start(schedule=False)
    try:
        caplog.set_level(logging.WARNING, logger="monitor.app")
        probes.write_text(TWO.replace("      - {type: contains, value: [a]}\n", ""))
        ok, message = await app.reload()
        assert ok, message
        assert [r.getMessage().split(" (a check")[0] for r in caplog.records if "is now called" in r.getMessage()] \
            == [f"{probes}:6: canary c1: checks[1] (contains) is now called contains, where it was contains#2"]
    finally:
        await app.stop()
