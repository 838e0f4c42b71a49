"""One contract suite for the store, run against SQLite and against PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from monitor.domain import CallResult, CheckResult, ErrorType, FinishReason, Observation, Usage
from monitor.errors import StoreError
from monitor.store import ObservationKey, Run, Store
from monitor.store.schema import HEAD, current_revision, head_revision

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def obs(i: int, *, canary: str = "c", target: str = "t", error: ErrorType | None = None,
        cost: float | None = 0.001) -> Observation:
    call = CallResult(text=f"answer {i} — ünïcode ✓", finish_reason=FinishReason.STOP, raw_finish_reason="stop",
                      response_model="m-2025", system_fingerprint="fp_1", request_id=f"req_{i}",
                      usage=Usage(10, 2, 20, 5), latency_s=0.5, ttft_s=0.1, http_status=200,
                      ratelimit={"x-ratelimit-remaining-requests": "99"}, error_type=error,
                      tool_calls=[{"name": "f", "arguments": "{}"}], stream=True)
    return Observation(canary=canary, target=target, provider="openai", request_model="m",
                       started_at=T0 + timedelta(minutes=i), call=call, run_id="r1", sample_index=i % 3,
                       cost_usd=cost, output_tokens_per_s=50.0,
                       checks=[CheckResult("contains", "contains", True, "")], refusal="none", refusal_score=0.1)


def test_schema_is_at_head_and_migrate_is_idempotent(store: Store) -> None:
    assert current_revision(store.engine) == head_revision() == HEAD
    assert store.migrate() == head_revision()


def test_restart_on_an_up_to_date_schema_does_not_load_alembic(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    code = ("import sys; from monitor.store import Store; s = Store(sys.argv[1]); print(s.migrate()); "
            "print('alembic' in sys.modules)")
    first = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, check=True)
    again = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, check=True)
    assert first.stdout.split() == [HEAD, "True"]  # a new database is built by Alembic
    assert again.stdout.split() == [HEAD, "False"]


def test_a_daemon_migrates_in_a_child_and_keeps_none_of_alembic(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    code = ("import sys; from monitor.store import Store; s = Store(sys.argv[1]); print(s.migrate(in_child=True)); "
            "print('alembic' in sys.modules)")
    first = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, check=True)
    assert first.stdout.split() == [HEAD, "False"]  # built by a child process
    assert current_revision(Store(url).engine) == HEAD


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_child_builds_both_stores_and_refuses_a_newer_schema(kind: str, tmp_path, request) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}" if kind == "sqlite" else request.getfixturevalue("pg_url")
    store = Store(url)
    try:
        assert store.migrate(in_child=True) == HEAD  # an empty database: the child builds it
        assert current_revision(store.engine) == HEAD
        store.save_observation(obs(1))
        assert len(store.observations(canary="c")) == 1
        assert store.migrate(in_child=True) == HEAD  # at head: nothing to do
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(StoreError, match="newer than this llm-monitor knows"):
            store.migrate(in_child=True)
    finally:
        store.close()


@pytest.mark.parametrize("python", ["/nonexistent/python", "/bin/true", "/bin/false"])
def test_where_no_child_can_migrate_the_daemon_migrates_in_its_own_process(python: str, tmp_path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """No such interpreter, one that exits 0 having done nothing, one that fails: the schema is built anyway."""
    store = Store(f"sqlite:///{tmp_path / 'f.db'}")
    monkeypatch.setattr(sys, "executable", python)
    try:
        assert store.migrate(in_child=True) == HEAD
        assert current_revision(store.engine) == HEAD
    finally:
        store.close()


def test_the_child_does_not_import_from_the_working_directory(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "monitor").mkdir()
    (tmp_path / "monitor" / "__init__.py").write_text("raise SystemExit('planted')\n")
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'w.db'}"
    code = ("import sys; sys.path.remove('') if '' in sys.path else None; import monitor.store as m; "
            "s = m.Store(sys.argv[1]); print(s.migrate(in_child=True)); print('alembic' in sys.modules)")
    out = subprocess.run([sys.executable, "-P", "-c", code, url], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [HEAD, "False"]  # the child ran the installed package, not the planted one


def test_a_child_migration_that_cannot_connect_is_a_store_error_without_the_password() -> None:
    store = Store("postgresql+psycopg://nobody:s3cret@127.0.0.1:1/none")
    with pytest.raises(StoreError, match="cannot prepare the store") as err:
        store.migrate(in_child=True)
    assert "s3cret" not in str(err.value)


def test_safe_url_hides_a_password_in_userinfo_or_query() -> None:
    store = Store("postgresql+psycopg://nobody:s3cret@127.0.0.1:1/none?password=s3cret2&sslmode=disable")
    assert "s3cret" not in store.safe_url and store.safe_url.startswith("postgresql+psycopg://nobody:***@127.0.0.1:1")
    assert "sslmode=disable" in store.safe_url
    store.close()


def test_round_trip_keeps_everything(store: Store) -> None:
    o = obs(1)
    o.checks.append(CheckResult("fast-start", "ttft", None, "not streamed: no time to first chunk"))
    store.save_observation(o)
    (back,) = store.observations(canary="c")
    assert back.as_json() == o.as_json()
    assert back.as_json()["check_details"]["fast-start"] == "not streamed: no time to first chunk"  # why no verdict


def test_cache_write_counts_round_trip_and_unreported_ones_stay_null(store: Store) -> None:
    written, plain = obs(1, canary="w"), obs(2, canary="p")
    written.call.usage = Usage(100, 20, 5, None, cache_write_input_tokens=50, cache_write_1h_input_tokens=30)
    store.save_observation(written)
    store.save_observation(plain)
    (back,) = store.observations(canary="w")
    assert back.call.usage == written.call.usage
    (back,) = store.observations(canary="p")
    assert (back.call.usage.cache_write_input_tokens, back.call.usage.cache_write_1h_input_tokens) == (None, None)


def test_filters_order_and_limit(store: Store) -> None:
    for i in range(6):
        store.save_observation(obs(i, canary="a" if i % 2 else "b"))
    assert [o.call.request_id for o in store.observations(canary="a")] == ["req_5", "req_3", "req_1"]
    assert [o.call.request_id for o in store.observations(limit=2)] == ["req_5", "req_4"]
    assert [o.call.request_id for o in store.observations(canary="b", oldest_first=True)] == ["req_0", "req_2",
                                                                                                 "req_4"]
    assert len(store.observations(since=T0 + timedelta(minutes=4))) == 2
    assert store.count_observations(canary="a") == 3
    # the range `observations` reads, counted (`baseline pin` names it when it holds too many)
    assert store.count_observations(canary="a", since=T0 + timedelta(minutes=2), before=T0 + timedelta(minutes=5)) == 1


def test_a_time_range_in_another_offset_is_the_same_instants(store: Store) -> None:
    """`--since 2026-11-01T13:02:00+01:00` (12:02 UTC): SQLite compared the stored UTC text with 13:02 and chose
    by the wall clock of the offset; PostgreSQL by the instant."""
    for i in range(6):  # 12:00 ... 12:05 UTC
        store.save_observation(obs(i))
    paris, ny = timezone(timedelta(hours=1)), timezone(timedelta(hours=-5))
    since, before = datetime(2026, 11, 1, 13, 2, tzinfo=paris), datetime(2026, 11, 1, 7, 4, tzinfo=ny)
    assert [o.call.request_id for o in store.observations(since=since, before=before)] == ["req_3", "req_2"]
    assert [o.call.request_id for o in store.iter_observations(since=since, before=before)] == ["req_2", "req_3"]



def tied(n: int, seed: int = 7) -> list[Observation]:
    """`n` observations in runs of 1 to 6 started in the same microsecond (samples of one run, rows from a dump
    with second precision), two canaries, several sample indexes per instant; shuffled, so that no store can
    return them in order by accident of insertion. T0 and earlier."""
    import random

    rng = random.Random(seed)
    made: list[Observation] = []
    second = 0
    while len(made) < n:
        at = T0 - timedelta(seconds=second, microseconds=rng.choice([0, 0, 1, 685457]))
        for k in range(min(n - len(made), rng.randint(1, 6))):
            o = obs(len(made), canary="a" if rng.random() < 0.7 else "b")
            o.started_at, o.sample_index = at, k // 2  # pairs share a sample index too
            made.append(o)
        second += 1
    rng.shuffle(made)
    return made


def newest_first(rows: list[Observation]) -> list[str]:
    return [o.id for o in sorted(rows, key=lambda o: (T0 - o.started_at, o.sample_index, o.id))]


def page_through(store: Store, limit: int, **filters) -> tuple[list[str], int]:
    """Every page from the first to the empty one, each continuing after the last row of the one before."""
    seen: list[str] = []
    after, pages = None, 0
    while page := store.observations(limit=limit, after=after, **filters):
        assert len(page) <= limit
        seen += [o.id for o in page]
        after, pages = ObservationKey.of(page[-1]), pages + 1
    return seen, pages


def test_paging_after_a_key_reads_every_row_once_in_order_through_exact_ties(store: Store) -> None:
    """Keyset paging: whatever the limit, and however many rows share the last row's started_at (and sample
    index) at a page's end, the pages together are every row exactly once, in the order one read gives."""
    rows = tied(61)
    for o in rows:
        store.save_observation(o)
    expected = newest_first(rows)
    assert [o.id for o in store.observations(limit=1000)] == expected  # a total order: time, sample, id
    for limit in (1, 2, 3, 4, 5, 7, 10, 60, 61, 62):
        seen, pages = page_through(store, limit)
        assert seen == expected, limit
        assert pages == -(-61 // limit)
    # with the filters: one canary, from a time on (inclusive), before another (exclusive)
    since, before = T0 - timedelta(seconds=15), T0 - timedelta(seconds=2)
    window = [o for o in rows if o.canary == "a" and since <= o.started_at < before]
    assert len(window) > 10
    for limit in (1, 2, 3, 5):
        assert page_through(store, limit, canary="a", target="t", since=since, before=before)[0] == \
            newest_first(window)


def test_paging_oldest_first_after_a_key(store: Store) -> None:
    rows = tied(23, seed=3)
    for o in rows:
        store.save_observation(o)
    # time ascending, the tie-breakers as newest first has them: the order exports read
    expected = [o.id for o in sorted(rows, key=lambda o: (o.started_at, o.sample_index, o.id))]
    for limit in (1, 2, 3, 4):
        seen: list[str] = []
        after = None
        while page := store.observations(limit=limit, after=after, oldest_first=True):
            seen += [o.id for o in page]
            after = ObservationKey.of(page[-1])
        assert seen == expected == [o.id for o in store.iter_observations(batch=limit)]


def test_iter_observations_reads_oldest_first_in_batches(store: Store) -> None:
    for i in range(7):
        store.save_observation(obs(i, canary="a" if i % 2 else "b"))
    every = list(store.iter_observations(batch=2))  # more rows than a batch: later batches come from the cursor
    assert [o.call.request_id for o in every] == [f"req_{i}" for i in range(7)]
    assert every[0].as_json() == obs(0, canary="b").as_json() | {"id": every[0].id}
    window = store.iter_observations(canary="a", since=T0 + timedelta(minutes=2), before=T0 + timedelta(minutes=5))
    assert [o.call.request_id for o in window] == ["req_3"]

def test_errors_and_ok_only(store: Store) -> None:
    store.save_observation(obs(1))
    store.save_observation(obs(2, error=ErrorType.RATE_LIMITED))
    assert [o.call.error_type for o in store.observations()] == [ErrorType.RATE_LIMITED, None]
    assert len(store.observations(ok_only=True)) == 1
    assert store.last_success([("c", "t")]) == {("c", "t"): T0 + timedelta(minutes=1)}


def test_spend(store: Store) -> None:
    for i in range(4):
        store.save_observation(obs(i, cost=0.25 if i else None))
    store.save_observation(obs(9, target="other", cost=5.0))
    assert store.spend_since("t", T0) == pytest.approx(0.75)
    assert store.spend_since("t", T0 + timedelta(minutes=3)) == pytest.approx(0.25)
    assert store.spend_since("nobody", T0) == 0.0


def test_runs(store: Store) -> None:
    run = Run(id="r1", canary="c", target="t", started_at=T0, samples=3)
    store.save_run(run)
    run.finished_at, run.status, run.failures = T0 + timedelta(seconds=2), "done", 1
    store.save_run(run)
    (back,) = store.runs(canary="c")
    assert back.status == "done" and back.failures == 1 and back.finished_at == T0 + timedelta(seconds=2)


def test_prune(store: Store) -> None:
    for i in range(5):
        store.save_observation(obs(i))
    store.save_run(Run(id="old", canary="c", target="t", started_at=T0))
    assert store.prune(T0 + timedelta(minutes=3)) == 3
    assert [o.call.request_id for o in store.observations()] == ["req_4", "req_3"]
    assert store.runs() == []


def test_signals_saved(store: Store) -> None:
    o = obs(1)
    store.save_observation(o)
    store.save_signals(o.id, {"length_chars": 12, "refused": False})
    with store.engine.connect() as conn:
        raw = conn.execute(text("SELECT signals FROM observations")).scalar_one()
    assert "length_chars" in str(raw)


def test_newer_schema_is_refused(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="newer than this llm-monitor knows"):
        store.migrate()


def test_ping(store: Store) -> None:
    assert store.ping()
    assert not Store("postgresql+psycopg://nobody@127.0.0.1:1/none").ping()


def test_the_newest_calls_of_every_canary_are_read_through_the_time_index(store: Store) -> None:
    """`/api/observations` without a filter, exports and retention read by time alone: an index, not a scan and a
    sort of every row (1.1 s at 180,000 rows without it)."""
    from sqlalchemy import inspect

    assert "ix_obs_time" in {ix["name"] for ix in inspect(store.engine).get_indexes("observations")}
    if store.engine.dialect.name == "sqlite":  # the planner's choice, on an empty table as on a full one
        with store.engine.connect() as conn:
            plan = " ".join(str(row[-1]) for row in conn.execute(text(
                "EXPLAIN QUERY PLAN SELECT * FROM observations ORDER BY started_at DESC, sample_index, id LIMIT 50")))
        assert "ix_obs_time" in plan, plan


def test_a_page_after_a_cursor_walks_the_time_index_from_the_key(store: Store) -> None:
    """The next page of `/api/observations` starts in the time index at the key (a range on started_at), in the
    plan of the statements the store really runs: not every row filtered by the tie-breakers, nor (SQLite) an OR
    of two index searches whose rows are then sorted."""
    from sqlalchemy import event, insert

    from monitor.store.convert import to_values
    from monitor.store.tables import ObservationRow

    rows = [obs(i, canary=f"c{i % 40}") for i in range(4000)]
    with store.engine.begin() as conn:
        conn.execute(insert(ObservationRow.__table__), [to_values(o) for o in rows])  # type: ignore[attr-defined]
        conn.execute(text("ANALYZE"))
    key = ObservationKey.of(store.observations(limit=1, before=T0 + timedelta(minutes=2000))[0])
    statements: list[tuple[str, object]] = []

    def keep(_conn: object, _cursor: object, sql: str, params: object, *_: object) -> None:
        statements.append((sql, params))

    event.listen(store.engine, "before_cursor_execute", keep)
    store.observations(limit=51, after=key)
    event.remove(store.engine, "before_cursor_execute", keep)
    ((sql, params),) = statements
    with store.engine.connect() as conn:
        raw = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        if store.dialect == "sqlite":
            raw.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = " | ".join(str(row[-1]) for row in raw.fetchall())
            assert "SEARCH observations USING INDEX ix_obs_time (started_at<?)" in plan, plan
            assert "MULTI-INDEX OR" not in plan, plan
        else:
            raw.execute(f"EXPLAIN {sql}", params)
            plan = " | ".join(row[0] for row in raw.fetchall())
            assert "Index Scan Backward using ix_obs_time" in plan and "Index Cond: (started_at <=" in plan, plan


def test_a_sqlite_file_that_cannot_be_created_says_what_sqlite_needs(tmp_path) -> None:
    missing = tmp_path / "no-such-folder"
    with pytest.raises(StoreError) as e:
        Store(f"sqlite:///{missing / 'x.db'}").migrate()
    assert "unable to open database file" in str(e.value)
    assert f"does {missing} exist, and can this user write to it?" in str(e.value)


def test_nul_characters_from_an_upstream_are_stored_as_replacement_characters(store: Store) -> None:
    """PostgreSQL text and JSON cannot hold NUL; an upstream can send it ("\\u0000" in JSON). The observation, its
    signals, a drift event's evidence and a baseline holding that text are all stored, NUL shown as U+FFFD."""
    from monitor.store.drift_repo import DriftRepository

    o = obs(1)
    o.call.text = "before\x00after"
    o.call.tool_calls = [{"name": "f", "arguments": '{"a": "x\x00y"}'}]
    o.call.error_message = "nul\x00here"
    store.save_observation(o)
    store.save_signals(o.id, {"response_model": "m\x00"})
    (back,) = store.observations(canary="c")
    assert back.text == "before\ufffdafter" and back.call.tool_calls[0]["arguments"] == '{"a": "x\ufffdy"}'
    assert back.call.error_message == "nul\ufffdhere"
    drift = DriftRepository(store.engine)
    event = {"id": "e1", "canary": "c", "target": "t", "signal": "completion", "kind": "behaviour", "state": "open",
             "opened_at": T0.isoformat(), "evidence": {"current": "before\x00after"}}
    assert drift.save_events([event]) == {"e1"}
    assert drift.event("e1")["evidence"]["current"] == "before\ufffdafter"  # type: ignore[index]
    bid = drift.save_baseline("c", "t", {"texts": ["a\x00b"]}, source="auto")
    assert drift.update_baseline(bid, {"texts": ["c\x00d"]})
