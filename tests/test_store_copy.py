"""`llm-monitor store copy`: a store moves between SQLite and PostgreSQL with every row of every table, ids and
values as stored, and a daemon on the copy carries on from it. Real SQLite files, the real PostgreSQL, the real
command in a subprocess; the source is filled through the daemon's own code (repository, drift analysis, outbox)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    cast,
    inspect,
    select,
    text,
)

from monitor.alerts import AlertsConfig
from monitor.alerts.events import Notification
from monitor.alerts.outbox import Outbox
from monitor.alerts.service import Alerting
from monitor.analysis import Analysis
from monitor.config.models import DriftConfig
from monitor.domain import (
    CallResult,
    CheckResult,
    ErrorType,
    FinishReason,
    Observation,
    Usage,
    new_id,
    utcnow,
)
from monitor.store import Run, Store
from monitor.store.copy import copy_tables, store_tables
from monitor.store.drift_repo import DriftRepository
from monitor.store.engine import make_engine
from monitor.store.leader import Leadership
from monitor.store.schema import HEAD, VERSION_TABLE, current_revision
from monitor.telemetry.metrics import Metrics
from tests.conftest import PG_ADMIN, write_config
from tests.support.daemon import cli
from tests.support.inprocess import Cli
from tests.support.schema import upgrade_to

TARGET = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}"
PROBES = "canaries:\n  - id: c\n    messages: [{role: user, content: hi}]\n"
PASSWORD = "Sekr3t-pw"  # the local server trusts 127.0.0.1: a password in the URL is accepted and ignored


def observation(i: int, start: datetime, model: str) -> Observation:
    return Observation(
        canary="c", target="t", provider="openai", request_model="m", started_at=start + timedelta(seconds=i),
        call=CallResult(text=f"answer {i} \x00 é ✓", finish_reason=FinishReason.STOP, response_model=model,
                        usage=Usage(3, None, 2, None, False), latency_s=0.5 + i / 100, ttft_s=0.1,
                        ratelimit={"x-ratelimit-remaining-requests": str(99 - i)},
                        tool_calls=[{"id": "call_1", "name": "f", "arguments": '{"x": 1, "q": "\\u00e9"}'}]),
        run_id=f"r{i}", checks=[CheckResult("ok", "contains", True, ""), CheckResult("j", "json", None, "skipped")])


def fill(store: Store) -> None:
    """Write a bit of everything a daemon writes: runs, observations (analysed, and a failed one not analysed),
    a baseline and its history, an open model-change event with its notification, a resolved event, and
    notifications pending, failed, delivered and dead."""
    alerts = AlertsConfig.model_validate({"sinks": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/x"}]})
    outbox = Outbox(store.engine)
    analysis = Analysis(store, Metrics(CollectorRegistry()), DriftConfig(baseline_size=5).settings(),
                        alerting=Alerting(alerts, outbox, None, utcnow))  # type: ignore[arg-type]
    start = utcnow() - timedelta(hours=1)
    for i in range(10):  # five form the baseline, the served model changes at the ninth: an event opens
        obs = observation(i, start, "m-1" if i < 8 else "m-2")
        store.save_run(Run(id=f"r{i}", canary="c", target="t", started_at=obs.started_at, samples=1, status="done",
                           finished_at=obs.started_at + timedelta(seconds=2)))
        store.save_observation(obs)
        analysis._analyse(obs)
    analysis.close()
    store.save_run(Run(id="r-running", canary="c", target="t", started_at=utcnow(), trigger="manual"))
    store.save_observation(Observation(  # failed: no text, tokens or signals (SQL NULLs)
        canary="c", target="t", provider="openai", request_model="m", started_at=utcnow(), run_id="r-running",
        call=CallResult(text="", error_type=ErrorType.SERVER_ERROR, error_message="HTTP 503", http_status=503,
                        retry_after_s=2.5)))
    repo = DriftRepository(store.engine)
    (opened,) = repo.events(state="open")
    repo.save_events([{**opened, "id": new_id(), "signal": "system_fingerprint", "state": "resolved",
                       "resolved_at": utcnow().isoformat()}])
    (learned,) = repo.baselines()
    for source, note in (("first_n", ""), ("accepted", "upgrade, intended ü")):  # a history: one active
        repo.save_baseline("c2", "t", {**learned["data"], "canary": "c2", "source": source}, source=source, note=note)
    now = utcnow()
    ids = outbox.add([Notification(id=new_id(), message_id=new_id(), sink="hook", kind="drift.opened",
                                   group_key=f"g{i}", signal="refused", payload={"n": i, "nested": {"a": [1, None]}},
                                   created_at=now, next_attempt_at=now) for i in range(3)])
    outbox.mark_delivered(ids[0], now)
    outbox.mark_retry(ids[1], now + timedelta(minutes=5), "HTTP 500: boom")
    outbox.mark_dead(ids[2], "HTTP 410: gone")


def every_row(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows by primary key, column by column: JSON as the text stored, datetimes as UTC. The tables
    are the database's own (reflected), not the table models the copy takes its list from."""
    engine = make_engine(url)
    schema = MetaData()
    schema.reflect(engine)
    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        for t in schema.sorted_tables:
            if t.name == VERSION_TABLE:
                continue
            columns = [cast(c, Text).label(c.name) if isinstance(c.type, JSON) else c for c in t.c]
            rows = conn.execute(select(*columns).order_by(*t.primary_key.columns)).mappings().all()
            out[t.name] = [{k: _utc(v) for k, v in row.items()} for row in rows]
    engine.dispose()
    return out


def _utc(v: Any) -> Any:
    if not isinstance(v, datetime):
        return v
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """`llm-monitor ARGS` in this process: (exit code, standard output and error)."""
    code, out, err = Cli(capsys)(*args)
    return code, out + err


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A config whose SQLite store holds a bit of everything."""
    cfg = write_config(tmp_path, TARGET, PROBES)
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    store.migrate()
    fill(store)
    store.close()
    return cfg


def test_the_copy_takes_every_table_of_the_schema(tmp_path: Path) -> None:
    # The tables come from the table models: one a migration creates without a model there would be left behind.
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    store.migrate()
    assert {t.name for t in store_tables()} == set(inspect(store.engine).get_table_names()) - {VERSION_TABLE}
    store.close()


@pytest.mark.postgres
def test_sqlite_to_postgresql_and_back_keeps_every_row_and_a_daemon_carries_on(source: Path, pg_url: str,
                                                                               tmp_path: Path) -> None:
    before = every_row(f"sqlite:///{tmp_path / 'm.db'}")
    empty = sorted(name for name, rows in before.items() if not rows)
    assert not empty, f"fill() writes no row into {empty}: add some, so the copy of every table is tested"
    # a session time zone far from UTC: a datetime written without its zone would move by 12:45
    _admin(f"ALTER DATABASE \"{pg_url.rsplit('/', 1)[1]}\" SET timezone = 'Pacific/Chatham'")
    out = cli("store", "copy", "-c", str(source), "--to", pg_url, "--batch", "3")
    assert out.returncode == 0, out.stderr
    for name, rows in before.items():
        assert f"│ {name} " in out.stdout and f" {len(rows)} │" in out.stdout, out.stdout
    assert every_row(pg_url) == before
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://")) as conn:  # SQL NULL stays NULL
        assert conn.execute("SELECT count(*) FROM observations WHERE signals IS NULL").fetchone() == (1,)

    copy = Store(pg_url)
    assert copy.migrate(create=False) == HEAD
    analysis = Analysis(copy, Metrics(CollectorRegistry()), DriftConfig(baseline_size=5).settings())
    analysis.restore([("c", "t"), ("c2", "t")])
    assert analysis.engine.baseline("c", "t").ready and analysis.engine.baseline("c2", "t").source == "accepted"
    assert [(e.signal, e.kind) for e in analysis.engine.events(state="open")] == [("response_model", "model")]
    analysis.close()
    assert sorted(n.status for n in Outbox(copy.engine).list_pending()) == ["failed", "pending"]
    copy.save_observation(observation(20, utcnow(), "m-2"))  # the daemon's next writes go in
    copy.save_run(Run(id="r-next", canary="c", target="t", started_at=utcnow()))
    assert copy.count_observations() == len(before["observations"]) + 1
    copy.close()

    back = f"sqlite:///{tmp_path / 'back.db'}"
    out = cli("store", "copy", "--from", pg_url, "--to", back)
    assert out.returncode == 0, out.stderr
    assert every_row(back) == every_row(pg_url)


@pytest.mark.postgres
def test_a_destination_holding_a_row_is_refused_and_left_as_it_is(source: Path, pg_url: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    older = make_engine(pg_url)  # an older store, with one notification: neither upgraded nor written to
    upgrade_to(older, "0002", then="INSERT INTO notifications VALUES ('n1', 'm1', 'hook', 'k', 'g', '', '{}', "
                                   "'pending', 0, now(), NULL, now(), NULL)")
    url = pg_url.replace("postgres@", f"postgres:{PASSWORD}@")
    code, out = run(capsys, "store", "copy", "-c", str(source), "--to", url)
    assert code == 2, out
    name = pg_url.rsplit("/", 1)[1]
    assert f"error: the destination store postgresql+psycopg://postgres:<redacted>@127.0.0.1:5432/{name} is not " \
           "empty (table notifications holds rows)" in out, out
    assert PASSWORD not in out
    assert current_revision(older) == "0002"
    with older.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM notifications")).scalar_one() == 1
        assert not inspect(conn).has_table("drift_events")
    older.dispose()


@pytest.mark.postgres
def test_a_password_in_a_url_is_never_printed(source: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = pg_url.replace("postgres@", f"postgres:{PASSWORD}@")
    outs = [run(capsys, "store", "copy", "-c", str(source), "--to", url),  # copied: the output names the store
            run(capsys, "store", "copy", "-c", str(source), "--to", f"postgresql://u:{PASSWORD}@127.0.0.1:48299/db"),
            run(capsys, "store", "copy", "--from", url, "--to", f"postgresql://u:{PASSWORD}@127.0.0.1:5432/nosuch_db"),
            run(capsys, "store", "copy", "--from", url, "--to", f"postgresql://u:{PASSWORD}@@:x/db")]
    assert [code for code, _ in outs] == [0, 2, 2, 2], outs
    for _, out in outs:
        assert PASSWORD not in out, out
    assert "postgresql+psycopg://postgres:<redacted>@127.0.0.1:5432/" in outs[0][1]
    assert "cannot open the destination store postgresql+psycopg://u:<redacted>@127.0.0.1:48299/db" in outs[1][1]


@pytest.mark.parametrize(("source", "destination", "error"), [
    ("sqlite:///m.db", "sqlite:///./m.db", "--from and --to name the same store"),
    ("postgresql://u@h/db", "postgresql+psycopg://u:pw@h:5432/db", "--from and --to name the same store"),
    ("sqlite:///m.db", "sqlite://", "--to: an in-memory SQLite database lives only in the process that opens it: "
                                    "give a file (sqlite:///path/to/llm-monitor.db)"),
    ("mysql://u@h/db", "sqlite:///m.db", "--from: mysql is not a store llm-monitor supports (sqlite or postgresql)"),
    ("sqlite:///m.db", "m.db", "--to: not a database URL: 'm.db' (e.g. sqlite:///llm-monitor.db or "
                               "postgresql+psycopg://user@host/db)"),
    # SQLAlchemy's int() raised out of the command (a traceback); libpq failed the connection past 65535
    ("sqlite:///m.db", "postgresql+psycopg://u@h:abc/db",
     "--to: the port must be a number from 1 to 65535, not 'abc' ('postgresql+psycopg://u@h:abc/db')"),
    ("postgresql+psycopg://u:pw@h:99999/db", "sqlite:///m.db",
     "--from: the port must be a number from 1 to 65535, not '99999' ('postgresql+psycopg://u:<redacted>@h:99999/db')"),
])
def test_urls_that_cannot_be_a_copy_are_refused_before_anything_is_opened(source: str, destination: str, error: str,
                                                                          tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = run(capsys, "store", "copy", "--from", source, "--to", destination)
    assert (code, out.strip()) == (2, f"error: {error}")
    assert list(tmp_path.iterdir()) == []


def test_a_source_of_an_older_schema_is_refused_and_left_as_it_is(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, TARGET, PROBES)
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade_to(engine, "0003")
    code, out = run(capsys, "store", "copy", "-c", str(cfg), "--to", f"sqlite:///{tmp_path / 'new.db'}")
    assert code == 2, out
    assert "schema is at revision 0003, older than this llm-monitor's" in out
    assert "llm-monitor probe" in out  # how to upgrade it
    assert current_revision(engine) == "0003"
    assert not (tmp_path / "new.db").exists()
    engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_store_a_daemon_leads_is_not_copied(kind: str, tmp_path: Path, request: pytest.FixtureRequest,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}" if kind == "sqlite" else request.getfixturevalue("pg_url")
    store = Store(url)
    store.migrate()
    store.save_run(Run(id="r1", canary="c", target="t", started_at=utcnow()))
    daemon = Leadership(store.engine)  # the lock a running daemon holds
    assert daemon.try_acquire()
    code, out = run(capsys, "store", "copy", "--from", url, "--to", f"sqlite:///{tmp_path / 'new.db'}")
    daemon.release()
    store.close()
    assert code == 2, out
    assert "a daemon is running on the source store" in out and "stop every llm-monitor daemon" in out
    assert not (tmp_path / "new.db").exists()


def test_rows_written_to_the_source_during_the_copy_fail_it(source: Path, tmp_path: Path) -> None:
    # `probe` (or a daemon of another host on a shared file) takes no leader lock: the counts tell
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    stop = threading.Event()

    def write() -> None:
        i = 100
        while not stop.is_set():
            store.save_observation(observation(i, utcnow(), "m-2"))
            i += 1
            stop.wait(0.005)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        out = cli("store", "copy", "-c", str(source), "--to", f"sqlite:///{tmp_path / 'new.db'}", "--batch", "1")
    finally:
        stop.set()
        writer.join()
        store.close()
    assert out.returncode == 1, out.stderr
    assert "error: table observations: the source holds" in out.stderr and "wrote to a store during the copy" \
        in out.stderr, out.stderr


@pytest.mark.postgres
def test_a_copy_that_fails_leaves_the_destination_empty(source: Path, pg_url: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # SQLite keeps a value longer than its column; PostgreSQL refuses it, after some batches are in
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE runs SET canary = '{'x' * 81}' WHERE id = 'r9'"))
    engine.dispose()
    code, out = run(capsys, "store", "copy", "-c", str(source), "--to", pg_url, "--batch", "2")
    assert code == 1, out
    name = pg_url.rsplit("/", 1)[1]
    assert f"error: writing table runs into postgresql+psycopg://postgres@127.0.0.1:5432/{name} failed: " \
           "StringDataRightTruncation" in out, out
    assert "nothing was kept" in out
    assert all(not rows for rows in every_row(pg_url).values())
    assert current_revision(make_engine(pg_url)) == HEAD  # an empty store at this schema: copy again once fixed


@pytest.mark.postgres
def test_sequences_are_moved_past_the_copied_ids(tmp_path: Path, pg_url: str) -> None:
    # No table has an integer key yet; one that does must not collide with its copied ids at the next insert
    meta = MetaData()
    t = Table("counted", meta, Column("id", Integer, primary_key=True), Column("name", String(20)),
              Column("at", DateTime(timezone=True)))
    source, destination = Store(f"sqlite:///{tmp_path / 's.db'}"), Store(pg_url)
    for s in (source, destination):
        meta.create_all(s.engine)
    with source.engine.begin() as conn:
        conn.execute(t.insert(), [{"id": i, "name": f"n{i}", "at": utcnow()} for i in (1, 2, 7)])
    (copied,) = copy_tables(source, destination, [t], batch=2)
    assert copied.rows == 3
    with destination.engine.begin() as conn:
        assert conn.execute(t.insert().values(name="next").returning(t.c.id)).scalar_one() == 8
    source.close()
    destination.close()
