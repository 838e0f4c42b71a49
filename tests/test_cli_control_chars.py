"""Stored text (completions, notes, receivers' errors) holding control characters reaches neither a terminal raw nor
a JSON line as a raw C1 character: an ESC or CSI in a completion must not recolour, clear or retitle the terminal."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from pathlib import Path

import pytest

from monitor.alerts.commands import alerts_pending
from monitor.alerts.events import AlertEvent
from monitor.console import Console
from monitor.domain import utcnow
from monitor.drift.events import DriftEvent
from monitor.sim import scenario_from_dict
from monitor.store import Store
from monitor.store.drift_repo import DriftRepository
from tests.support.drift_app import stored_runs
from tests.support.inprocess import Cli
from tests.test_alerts_commands import _outbox
from tests.test_http_paging import app as api_app
from tests.test_store_contract import obs

HOSTILE = "a\x1b[2J\x1b]0;owned\x07b\rc\x9b31md\x85e\x7ff\x08g"  # ESC CSI, OSC title + BEL, CR, C1 CSI, NEL, DEL, BS
RAW = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # what must not be written: controls but newline and tab
SCENARIO = scenario_from_dict({"name": "ctl", "seed": 4, "defaults": {"ttft": 5, "output_tps": 5000},
                               "models": {"m": {"phases": [{"name": "a"}]}}})


def test_printable_escapes_controls_as_python_does_and_keeps_newlines_tabs_and_letters() -> None:
    from monitor.escapes import printable
    from monitor.jsonl import line as json_line

    assert printable("x\x1b[31m\ty\n\r\x07\x9b\x7fé漢") == "x\\x1b[31m\ty\n\\r\\x07\\x9b\\x7fé漢"
    line = json_line({"text": HOSTILE, "é": "\x80\x9f\xa0"})
    assert not RAW.search(line) and "\\u009b" in line and "\\u0085" in line and "\xa0" in line
    assert json.loads(line) == {"text": HOSTILE, "é": "\x80\x9f\xa0"}


@pytest.mark.parametrize("no_color", [False, True])
def test_on_a_terminal_an_escape_is_shown_apart_from_the_same_characters_written(no_color: bool) -> None:
    """Found by review: the terminal form writes a backslash as it is (a regex, a Windows path, code read as
    written), so a completion holding the four characters `\\x1b` read the same as one holding an ESC. On a terminal
    (colours or not: NO_COLOR keeps reverse video) the escapes the console writes are in reverse video; the text
    written around them, backslashes included, is unchanged, and so is what a pipe gets."""

    def shown(text: str, terminal: bool) -> str:
        buf = io.StringIO()
        con = Console(file=buf, width=80, highlight=False, force_terminal=terminal, no_color=no_color,
                      color_system="standard" if terminal else None)
        con.print(text)
        return buf.getvalue()

    escaped, written = shown("re \\d+ a\x1bb", True), shown("re \\d+ a\\x1bb", True)
    assert escaped != written
    assert "\x1b[7m\\x1b" in escaped and "\x1b[7m" not in written and "re \\d+ a\\x1bb" in written
    assert shown("re \\d+ a\x1bb", False) == shown("re \\d+ a\\x1bb", False) == "re \\d+ a\\x1bb\n"


@pytest.mark.parametrize("cell", ["str", "Text"])
def test_a_table_is_sized_by_its_cells_as_shown(cell: str) -> None:
    """Found by review: the escapes were written as the table went out, after rich had sized its columns by the raw
    characters (an ESC takes no cell, a right-to-left override none), so a cell holding one overran its column by
    the escape's length and the table's lines no longer lined up. A str cell (console markup) and a Text cell (data,
    as the commands' tables of stored text make them) are both sized as shown, styles around the escape kept."""
    from rich.table import Table

    from monitor.console import cell

    buf = io.StringIO()
    con = Console(file=buf, width=80, highlight=False)
    table = Table("a", "b")
    for text in ("x\x1by\u202ez", "plain"):
        table.add_row(text if cell == "str" else cell(text), "z")
    if cell == "str":
        table.add_row("[bold]q\x9b[/]", "z")
    con.print(table)
    lines = buf.getvalue().splitlines()
    assert len({len(line) for line in lines}) == 1, lines  # every line as wide: the borders line up
    assert any("x\\x1by\\u202ez" in line for line in lines), lines
    assert not RAW.search(buf.getvalue())


@pytest.fixture
async def stored(tmp_path: Path) -> Path:
    """A store with a baseline for c1 x t, its latest completion and an event's note holding HOSTILE."""
    cfg, observed = await stored_runs(tmp_path, SCENARIO, 5, "{baseline_size: 5}", 2)
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    last = observed[-1]
    store.save_observation(dataclasses.replace(obs(0, canary="c1"), started_at=utcnow(),
                                               call=dataclasses.replace(last.call, text=HOSTILE)))
    DriftRepository(store.engine).save_events([DriftEvent(
        canary="c1", target="t", signal="output_chars", kind="behaviour", test="mann_whitney", baseline_value=1.0,
        current_value=2.0, effect_size=None, statistic=None, p_value=1e-6, threshold=None, baseline_n=5,
        current_n=5, first_obs_id=None, first_obs_at=None, opened_at=utcnow().isoformat(), note=HOSTILE,
        evidence={"current_completion": HOSTILE}).to_json()])
    store.close()
    return cfg


def test_diff_export_and_drift_json_write_no_raw_control_character(stored: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(capsys)
    code, out, err = cli("diff", "c1", "-c", str(stored))
    assert code == 0 and "\\x1b[2J" in out and "\\x9b31md" in out, out + err
    assert not RAW.search(out), [m.group() for m in RAW.finditer(out)]
    for args in (["drift", "--json"], ["export"], ["baseline", "show", "--json"]):
        code, out, _ = cli(*args, "-c", str(stored))
        assert code == 0 and not RAW.search(out), (args, [m.group() for m in RAW.finditer(out)])
    code, out, _ = cli("drift", "--json", "-c", str(stored))
    assert json.loads(out.splitlines()[0])["note"] == HOSTILE  # escaped, not lost


def test_diff_shows_the_cr_bel_and_backspace_of_a_completion_escaped(stored: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """rich's Text drops CR, BEL, backspace, vertical tab and form feed: `diff` showed a completion's `b\\rc` as `bc`,
    the escape rule's other characters escaped beside them."""
    code, out, err = Cli(capsys)("diff", "c1", "-c", str(stored))
    assert code == 0 and "owned\\x07b\\rc\\x9b31md\\x85e\\x7ff\\x08g" in out, out + err


@pytest.mark.parametrize("terminal", [False, True])
def test_text_rich_drops_is_shown_escaped_in_markup_plain_text_rules_and_diffs(terminal: bool) -> None:
    """What a command prints as console markup (an error naming a value), as plain text (markup=False), as a rule's
    title or as a coloured word diff showed CR, BEL, BS, VT and FF as nothing: each is escaped, in reverse video on a
    terminal, the markup around it still read."""
    from monitor.commands.drift import colour_diff

    buf = io.StringIO()
    con = Console(file=buf, width=200, highlight=False, force_terminal=terminal,
                  color_system="standard" if terminal else None)
    con.print("[bold]error:[/] a\rb\x07c\x08d\x0be\x0cf \\[x] [red]g\rh[/]")
    con.print("plain a\rb [x]", markup=False)
    con.rule("title a\rb")
    con.print(colour_diff("w\rx [-y\x07z-] {+u\x08v+}"))
    out = buf.getvalue()
    assert not RAW.search(out.replace("\x1b[", "")), [m.group() for m in RAW.finditer(out)]
    plain = re.sub("\x1b\\[[0-9;]*m", "", out)
    for shown in ("error: a\\rb\\x07c\\x08d\\x0be\\x0cf [x] g\\rh", "plain a\\rb [x]", "title a\\rb",
                  "w\\rx y\\x07z u\\x08v"):
        assert shown in plain, (shown, plain)
    assert not terminal or "\x1b[7m\\r" in out


def test_alerts_pending_escapes_a_receivers_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _outbox(tmp_path, "hook", "webhook", AlertEvent(kind="canary.down", canary="c2", target="t1",
                                                             signal="health"), dead=f"HTTP 400: {HOSTILE}")
    capsys.readouterr()
    for as_json in (False, True):
        assert alerts_pending(config, every=True, as_json=as_json) == 0
        out = capsys.readouterr().out
        assert "HTTP 400:" in out and not RAW.search(out), [m.group() for m in RAW.finditer(out)]
        assert as_json or "a\\x1b[2J\\x1b]0;owned\\x07b\\rc\\x9b31md" in out  # CR and BEL too, not dropped (the cell folds after)


def test_config_problems_reach_the_terminal_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The config's problems (their `file:line`) and the missing file's hint were written with print(): a file
    name holding an ESC or a C1 CSI reached the terminal raw."""
    cli = Cli(capsys)
    bad = tmp_path / "c\x1b[2J\x9b31m.yaml"
    bad.write_text("targets: []\nnope: 1\n")
    for path in (bad, tmp_path / "gone\x1b]0;owned\x07.yaml"):
        for command in ("check-config", "run", "drift"):
            code, out, err = cli(command, "-c", str(path))
            assert code == 2 and "invalid configuration" in err, (command, err)
            assert not RAW.search(out + err), (command, [m.group() for m in RAW.finditer(out + err)])
            assert "\\x1b" in err, err
    code, _, err = cli("check-config", "-c", str(tmp_path / "gone\x1b]0;owned\x07.yaml"))
    assert "no config file at " in err and "gone\\x1b]0;owned\\x07.yaml" in err, err


def test_text_logs_write_control_characters_escaped() -> None:
    """`run --log-format text` wrote a start-up error's message and its fields raw (the JSON format escapes them)."""
    import logging

    from monitor.logs import TextFormatter

    record = logging.LogRecord("monitor.run", logging.ERROR, __file__, 1, "cannot start: %s", (HOSTILE,), None)
    record.value = HOSTILE
    text = TextFormatter().format(record)
    assert not RAW.search(text) and "cannot start: a\\x1b[2J" in text and "\\x9b31md" in text, text


def test_text_logs_escape_a_traceback_and_stack_holding_control_characters() -> None:
    """`log.exception` with `--log-format text` escaped the message but wrote the traceback after it raw: an upstream
    error's text in the exception (or a stack) recoloured the terminal."""
    import logging
    import sys

    from monitor.logs import TextFormatter

    try:
        raise RuntimeError(HOSTILE)
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("monitor.run", logging.ERROR, __file__, 1, "failed", (), exc_info)
    record.stack_info = f"Stack (most recent call last):\n  {HOSTILE}"
    text = TextFormatter().format(record)
    assert not RAW.search(text) and "RuntimeError: a\\x1b[2J" in text and text.count("\\x9b31md") == 2, text



# bidi embeddings, overrides and isolates (Trojan Source), marks, zero-width and invisible characters, a tag ("ASCII
# smuggling": text a terminal does not show)
DISGUISED = "pay\u202eusd\u202c\u2066x\u2069\u200e\u200f\u061c\u200b\u2060\ufeff\u00ad\u180e\U000e0041d"
JOINED = "👩\u200d💻 \u0645\u06cc\u200c\u0634\u0648\u062f"  # ZWJ (an emoji sequence), ZWNJ (Persian): text, kept
FORMAT = re.compile("[\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
                    "\U000e0001\U000e0020-\U000e007f]")


def test_bidi_and_invisible_format_characters_are_escaped_everywhere_text_is_shown(sqlite_store: Store) -> None:
    """A completion's U+202E (right-to-left override) reordered what a terminal showed after it, and zero-width or
    tag characters hid text: the terminal, the JSON lines and the HTTP API escape them as they escape controls."""
    from monitor.escapes import printable
    from monitor.jsonl import line as json_line

    assert printable(DISGUISED + JOINED) == (
        "pay\\u202eusd\\u202c\\u2066x\\u2069\\u200e\\u200f\\u061c\\u200b\\u2060\\ufeff\\xad\\u180e\\U000e0041d" + JOINED)
    console = Console(file=io.StringIO(), highlight=False, soft_wrap=True)
    console.print(DISGUISED, markup=False)
    assert console.file.getvalue() == printable(DISGUISED) + "\n"  # type: ignore[attr-defined]
    o = obs(0)
    sqlite_store.save_observation(dataclasses.replace(o, call=dataclasses.replace(o.call, text=DISGUISED + JOINED)))
    with api_app(sqlite_store) as client:
        answer = client.get("/api/observations").text
    for text in (json_line({"text": DISGUISED + JOINED}), answer):
        assert not FORMAT.search(text) and JOINED in text and "\\u202e" in text and "\\udb40\\udc41" in text, text
        assert DISGUISED + JOINED in json.dumps(json.loads(text), ensure_ascii=False)  # escaped, not lost


def test_emoji_codes_are_shown_as_written(stored: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """rich replaced `:fire:` in a string it printed with 🔥: an error naming a value, a note, a warning showed
    other text than was written."""
    code, _, err = Cli(capsys)("diff", ":fire:", "-c", str(stored))
    assert code == 2 and "no canary ':fire:'" in err and "🔥" not in err, err
    console = Console(file=io.StringIO(), highlight=False)
    console.print("note :thumbs_up:", markup=False)
    assert console.file.getvalue() == "note :thumbs_up:\n"  # type: ignore[attr-defined]


def test_a_usage_error_echoing_an_argument_escapes_its_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse's `unrecognized arguments:` (and any usage error naming what was typed) wrote the argument raw: one
    a script took from a file or another tool's output recoloured the terminal."""
    code, out, err = Cli(capsys)("drift", HOSTILE, "x\u202ey")
    assert code == 2 and not out, (out, err)
    assert not RAW.search(err) and not FORMAT.search(err) and "a\\x1b[2J" in err and "x\\u202ey" in err, err
