"""Times users write (`monitor.timeinput`): a dump line's `started_at`, `--since`/`--until`, the API's `since`/`until`.

Python 3.11's `datetime.fromisoformat`, which read them all, takes far more than a person means by a time:
`"1" * 50_000` (the year 1111, and the rest as digits of the time), `20261130`, week dates, an hour alone.
They are refused naming the file, line, field and value; the forms of RFC 3339 people write are read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from monitor.commands.common import when
from monitor.drift.dump import row_to_observation
from monitor.store import Store
from monitor.timeinput import TimeInputError, parse_time
from tests.support.inprocess import Cli
from tests.test_store_contract import obs

ROW = {"canary": "c", "target": "t", "text": "The capital of France is Paris."}
IST = timezone(timedelta(hours=5, minutes=30))


@pytest.mark.parametrize(("text", "want"), [
    ("2026-11-30T07:50:00Z", datetime(2026, 11, 30, 7, 50, tzinfo=UTC)),
    ("2026-11-30T07:50:00+00:00", datetime(2026, 11, 30, 7, 50, tzinfo=UTC)),
    ("2026-11-30t07:50:00z", datetime(2026, 11, 30, 7, 50, tzinfo=UTC)),  # RFC 3339 allows lower case
    ("2026-11-30 07:50:00Z", datetime(2026, 11, 30, 7, 50, tzinfo=UTC)),  # ... and a space (str(datetime))
    ("2026-11-30T13:20:00+05:30", datetime(2026, 11, 30, 13, 20, tzinfo=IST)),
    ("2026-11-30T13:20:00+0530", datetime(2026, 11, 30, 13, 20, tzinfo=IST)),  # strftime("%z")
    ("2026-11-30T07:50:00-00:00", datetime(2026, 11, 30, 7, 50, tzinfo=UTC)),
    ("2026-11-30T07:50:00.5Z", datetime(2026, 11, 30, 7, 50, 0, 500_000, tzinfo=UTC)),
    ("2026-11-30T07:50:00.123456789Z", datetime(2026, 11, 30, 7, 50, 0, 123_456, tzinfo=UTC)),  # Go's nanoseconds
    ("2026-11-30T07:50:00", datetime(2026, 11, 30, 7, 50, tzinfo=UTC)),  # no offset: UTC, as before
    ("2026-11-30T07:50", datetime(2026, 11, 30, 7, 50, tzinfo=UTC)),
    ("2026-11-30", datetime(2026, 11, 30, tzinfo=UTC)),  # a date alone: its start, UTC
    ("0001-01-01T14:00:00+14:00", datetime(1, 1, 1, 14, tzinfo=timezone(timedelta(hours=14)))),
    ("9999-12-31T23:59:59.999999Z", datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
    ("2026-11-30T07:50:00.685457+00:00", datetime(2026, 11, 30, 7, 50, 0, 685457, tzinfo=UTC)),  # isoformat()
])
def test_the_times_people_write_are_read(text: str, want: datetime) -> None:
    got = parse_time(text)
    assert got == want and got.utcoffset() == want.utcoffset()


@pytest.mark.parametrize(("text", "why"), [
    ("1" * 50_000, "not an RFC 3339 time"),  # fromisoformat: 1111-11-11 11:11:11.111111
    ("20261130", "not an RFC 3339 time"),  # basic format
    ("2026-11-30T075000Z", "not an RFC 3339 time"),
    ("2026-W48-1", "not an RFC 3339 time"),  # a week date: 2026-11-23
    ("2026W481", "not an RFC 3339 time"),
    ("2026-11-30T07", "not an RFC 3339 time"),  # an hour alone
    ("2026-11-30T07:50:00,5Z", "not an RFC 3339 time"),  # a decimal comma
    ("2026-11-30T07:50:00+05", "not an RFC 3339 time"),  # an offset of hours only
    ("2026-11-30T07:50:00+05:30:15", "not an RFC 3339 time"),  # an offset with seconds
    ("2026-11-30T07:50:00.1234567891Z", "not an RFC 3339 time"),  # past nanoseconds
    ("2026-11-30Z", "not an RFC 3339 time"),
    (" 2026-11-30", "not an RFC 3339 time"),
    ("\u0662\u0660\u0662\u0666-11-30", "not an RFC 3339 time"),  # Arabic-Indic digits
    ("yesterday", "not an RFC 3339 time"),
    ("", "not an RFC 3339 time"),
    ("2026-13-01", "not a valid time (month must be in 1..12)"),
    ("2026-02-29", "not a valid time (day is out of range for month)"),
    ("2026-11-30T24:00:00Z", "not a valid time (hour must be in 0..23)"),
    ("2016-12-31T23:59:60Z", "not a valid time (second must be in 0..59)"),  # a leap second
    ("2026-11-30T07:50:00+24:00", "not a valid time (offset +24:00 past 23:59)"),
    ("0001-01-01T00:00:00+14:00", "not a valid time (before 0001-01-01 or after 9999-12-31 in UTC)"),
    ("9999-12-31T23:59:59-12:00", "not a valid time (before 0001-01-01 or after 9999-12-31 in UTC)"),
])
def test_anything_else_is_refused_saying_why(text: str, why: str) -> None:
    with pytest.raises(TimeInputError) as e:
        parse_time(text)
    assert str(e.value) == why


def lines(path: Path, *rows: object) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("value", ["20261130", "2026-W48-1", "1" * 50_000, "2026-11-30T07"])
def test_a_dump_line_with_such_a_started_at_is_refused_naming_file_line_field_and_value(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    cli = Cli(capsys)
    a = lines(tmp_path / "a.jsonl", *[{**ROW, "started_at": "2026-11-30T07:50:00Z"}] * 3)
    b = lines(tmp_path / "b.jsonl", ROW, {**ROW, "started_at": value})
    code, _, err = cli("replay", "--baseline", str(a), "--current", str(b))
    assert code == 2, err
    flat = " ".join(err.split())  # the console wraps long lines
    assert f"{b}:2: field 'started_at': not an RFC 3339 time: '{value[:20]}" in flat, err[:400]
    assert "(e.g. 2026-11-30T07:50:00Z)" in flat and len(err) < 400, err[:500]


def test_a_dump_started_at_without_an_offset_is_utc_and_a_space_may_stand_for_the_t(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(capsys)
    a = lines(tmp_path / "a.jsonl", *[{**ROW, "started_at": f"2026-11-30 07:5{i}"} for i in range(6)])
    b = lines(tmp_path / "b.jsonl", *[{**ROW, "started_at": f"2026-12-01T08:00:0{i}.5+01:00"} for i in range(6)])
    code, _, err = cli("replay", "--baseline", str(a), "--current", str(b))
    assert code == 0, err
    at = row_to_observation({**ROW, "started_at": "2026-11-30 07:50"}, "a.jsonl", 1).started_at
    assert at == datetime(2026, 11, 30, 7, 50, tzinfo=UTC) and at.utcoffset() == timedelta(0)


def test_since_and_until_take_the_same_times_and_name_the_flag_and_value() -> None:
    now = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert when("2026-11-30 07:50", "--since", now) == datetime(2026, 11, 30, 7, 50, tzinfo=UTC)
    assert when("2026-11-02", "--until", now) == datetime(2026, 11, 2, tzinfo=UTC)
    assert when("7d", "--since", now) == now - timedelta(days=7)
    with pytest.raises(ValueError) as e:
        when("2026-W48-1", "--since", now)
    assert str(e.value) == ("--since: not an RFC 3339 time or a duration: '2026-W48-1' "
                            "(e.g. 2026-11-30T07:50:00Z, or 7d for seven days ago)")
    with pytest.raises(ValueError) as e:
        when("2026-11-31", "--until", now)
    assert str(e.value).startswith("--until: not a valid time (day is out of range for month): '2026-11-31'")
    with pytest.raises(ValueError) as e:
        when("9" * 100_000, "--until", now)
    assert "(100,000 characters)" in str(e.value) and len(str(e.value)) < 400


def test_the_api_reads_the_same_times_and_a_space_before_the_time_is_not_an_offset(sqlite_store: Store) -> None:
    """`?until=2026-11-01 12:03` (a space for the T, no seconds): the '+' an unencoded offset loses in a URL was
    put back after the date, `2026-11-01+12:03`, which no parser reads."""
    from types import SimpleNamespace

    from monitor.http import build_http_app

    for i in range(6):
        sqlite_store.save_observation(obs(i))  # T0 + i minutes: 12:00 ... 12:05 UTC
    daemon = SimpleNamespace(store=sqlite_store, registry=CollectorRegistry(),
                             config=SimpleNamespace(web=SimpleNamespace(basic_auth_users={})))
    with TestClient(build_http_app(daemon)) as api:  # type: ignore[arg-type]
        def minutes(query: str) -> list[int]:
            r = api.get("/api/observations?" + query)
            assert r.status_code == 200, r.text
            return sorted(datetime.fromisoformat(o["started_at"]).minute for o in r.json())

        assert minutes("since=2026-11-01 12:03") == [3, 4, 5]
        assert minutes("until=2026-11-01T13:02:00 01:00") == [0, 1]  # "+01:00" as a URL decodes it
        assert minutes("until=2026-11-01T12:02:00.000001Z") == [0, 1, 2]
        r = api.get("/api/observations?since=20261101")
        assert (r.status_code, r.json()) == (400, {"error": "since: not an RFC 3339 time: '20261101' "
                                                            "(e.g. 2026-11-30T07:50:00Z)"})
