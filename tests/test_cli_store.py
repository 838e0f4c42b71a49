"""The commands that work on a daemon's store (drift, diff, baseline, export, alerts): they never change its schema,
and a store that fails under them is a one-line error, not a traceback. Real SQLite files; the failure is a
trigger that makes a write fail as a full disk would."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import text

from monitor.domain import CallResult, FinishReason, Observation, Usage, utcnow
from monitor.store import Store
from monitor.store.engine import make_engine
from monitor.store.schema import HEAD, current_revision
from tests.conftest import write_config
from tests.support.daemon import cli
from tests.support.schema import upgrade_to

TARGET = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}"
PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n"
COMMANDS = (["drift"], ["drift", "--open", "--json"], ["diff", "c1"], ["baseline", "show", "c1"],
            ["baseline", "reset", "c1"], ["export"], ["alerts", "pending"])


def test_commands_on_a_store_of_an_older_schema_leave_it_as_it_is(tmp_path: Path) -> None:
    # A newer CLI run against the store of an older daemon still running: upgrading the schema under it would
    # keep that daemon from ever starting again (it refuses a schema newer than it knows).
    cfg = write_config(tmp_path, TARGET, PROBES)
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade_to(engine, "0001")
    for args in COMMANDS:
        out = cli(*args, "-c", str(cfg))
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert "schema is at revision 0001, older than this llm-monitor's" in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr
    assert current_revision(engine) == "0001"
    engine.dispose()


def test_a_store_that_fails_during_a_command_is_a_one_line_error(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, TARGET, PROBES)
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    assert store.migrate() == HEAD
    start = utcnow() - timedelta(minutes=10)
    for i in range(6):
        store.save_observation(Observation(
            canary="c1", target="t", provider="openai", request_model="m", started_at=start + timedelta(seconds=i),
            call=CallResult(text=f"hello {i}", finish_reason=FinishReason.STOP, usage=Usage(3, None, 2, None, False)),
            run_id=f"r{i}"))
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER full BEFORE INSERT ON baselines "
                          "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"))
    store.close()
    out = cli("baseline", "accept", "c1", "-c", str(cfg))
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert out.stderr.strip() == "error: the store failed: IntegrityError: database or disk is full", out.stderr


def test_a_store_error_holding_control_characters_is_told_escaped(tmp_path: Path) -> None:
    # The driver's message is text the store wrote: a trigger's (or a PostgreSQL error echoing a schema or database
    # name) holding an ESC or a bidi override must not recolour or reorder the terminal that shows it.
    cfg = write_config(tmp_path, TARGET, PROBES)
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    assert store.migrate() == HEAD
    start = utcnow() - timedelta(minutes=10)
    for i in range(6):
        store.save_observation(Observation(
            canary="c1", target="t", provider="openai", request_model="m", started_at=start + timedelta(seconds=i),
            call=CallResult(text=f"hello {i}", finish_reason=FinishReason.STOP, usage=Usage(3, None, 2, None, False)),
            run_id=f"r{i}"))
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER full BEFORE INSERT ON baselines BEGIN SELECT RAISE(ABORT, "
                          "'disk \x1b[2J\x1b]0;owned\x07 \u202efull\x9b at postgresql://u:s3cret@h/db'); END"))
    store.close()
    out = cli("baseline", "accept", "c1", "-c", str(cfg))
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert out.stderr.strip() == ("error: the store failed: IntegrityError: disk \\x1b[2J\\x1b]0;owned\\x07 "
                                  "\\u202efull\\x9b at postgresql://u:<redacted>@h/db"), out.stderr
