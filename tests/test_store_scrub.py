"""`llm-monitor store scrub`: a target's key and a sink's secrets, stored by a release before the providers scrubbed
them (whole, or the start a cut-short message kept), are taken out of every table and column they reach, on SQLite
and PostgreSQL, through the real command; nothing else changes, JSON stays JSON, and a rerun rewrites nothing. A
sink's URL is a secret only when read from url_env or url_file, and is found by its host, never its scheme."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, MetaData, Text, cast, event, insert, null, select, text

from monitor.domain import new_id
from monitor.providers.base import CUT, short
from monitor.providers.scrub import MIN_CUT, REDACTED, scrub_text
from monitor.store import Store
from monitor.store.drift_tables import BaselineRow, DriftEventRow
from monitor.store.outbox_table import NotificationRow
from monitor.store.schema import VERSION_TABLE
from monitor.store.scrub import COLUMNS, scrub_tables
from monitor.store.tables import ObservationRow
from tests.support.delivery import SECRET as HOOK_SECRET
from tests.support.inprocess import CliRun

KEY = "sk-live-Zq81RmT0aXc44bLkPWe9uVn3"
HOOK_URL = "https://hooks.example.com/services/T000/B000/XyZsecretPath"
ENV = {"TARGET_KEY": KEY, "HOOK_URL": HOOK_URL, "HOOK_SECRET": HOOK_SECRET}
SECRETS = (KEY, HOOK_URL, HOOK_SECRET)
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
ECHO = f"Error code: 401 - Received API Key = {KEY}, Key Hash (Token) = abc"
CUT_SHORT = short(f"litellm.AuthenticationError: ... Received API Key = {KEY}", 70)  # the key's start, then CUT
AT_MIN = f"key {KEY[:MIN_CUT]}{CUT}"  # the shortest start scrubbed


def config(folder: Path, url: str) -> Path:
    cfg = folder / "monitor.yaml"
    (folder / "probes").mkdir()
    (folder / "probes" / "p.yaml").write_text("canaries:\n  - id: c\n    messages: [{role: user, content: hi}]\n")
    cfg.write_text("targets:\n  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m, "
                   "api_key_env: TARGET_KEY}\nprobes: [./probes]\n"
                   f"storage: {{url: \"{url}\"}}\n"
                   "alerts:\n  sinks:\n    - {name: hook, type: webhook, url_env: HOOK_URL, secret_env: HOOK_SECRET}\n")
    return cfg


def observation(id: str, **values: Any) -> dict[str, Any]:
    return {"id": id, "canary": "c", "target": "t", "provider": "openai", "request_model": "m", "started_at": NOW,
            "text": "", "tool_calls": [], "ratelimit": {}, "checks": [], **values}


def seed(store: Store) -> None:
    """Rows holding the secrets in every column `store scrub` cleans, as an older release stored them, and rows that
    only look like them (the key's start without a cut; its letters in capitals, which SQLite's LIKE matches)."""
    rows: dict[Any, list[dict[str, Any]]] = {
        ObservationRow: [
            observation("o1", text=f"the key is {KEY}.", error_message=ECHO, refusal_text=CUT_SHORT,
                        response_model=f"m-{KEY}", system_fingerprint=AT_MIN, request_id=KEY, raw_finish_reason=KEY,
                        tool_calls=[{"id": "c1", "arguments": json.dumps({"auth": KEY, "u": "é"})}],
                        ratelimit={"x-echo": ECHO, KEY: "as a key"},
                        checks=[{"name": "ok", "passed": False, "detail": CUT_SHORT}],
                        signals={"text": {"evidence": [AT_MIN, f"called {HOOK_URL}"]}, "n": 3}),
            observation("o2", text=f"a cut reply {KEY[:9]}{CUT}", signals=null()),
            observation("o3", text="ask-live tasks: sk-l is no key without its cut", error_message=KEY.upper()),
            observation("o4", text="nothing to see", ratelimit={"x-ratelimit-remaining-requests": "9"}),
        ],
        DriftEventRow: [
            {"id": "e1", "canary": "c", "target": "t", "signal": "error", "kind": "rate", "state": "open",
             "opened_at": NOW, "data": {"evidence": {"baseline": ["fine"], "current": [ECHO, CUT_SHORT]},
                                       "detail": {"message": AT_MIN, "n": [1, None, 2.5]}}},
            {"id": "e2", "canary": "c", "target": "t", "signal": "latency", "kind": "cusum", "state": "resolved",
             "opened_at": NOW, "data": {"evidence": {"current": ["sk-l plain"]}}},
        ],
        BaselineRow: [
            {"id": "b1", "canary": "c", "target": "t", "created_at": NOW, "source": "first_n",
             "note": f"accepted after {KEY} leaked", "data": {"texts": ["a", ECHO], "refusal_texts": [CUT_SHORT]}},
            {"id": "b2", "canary": "c", "target": "t", "created_at": NOW, "source": "pinned", "note": "",
             "data": {"texts": ["b"]}},
        ],
        NotificationRow: [
            {"id": "n1", "message_id": new_id(), "sink": "hook", "kind": "drift.opened", "group_key": "g",
             "payload": {"summary": ECHO, "evidence": [CUT_SHORT], "whsec": HOOK_SECRET}, "status": "failed",
             "attempts": 2, "next_attempt_at": NOW, "created_at": NOW,
             "last_error": f"ConnectError: {HOOK_URL} refused"},
            {"id": "n2", "message_id": new_id(), "sink": "hook", "kind": "drift.opened", "group_key": "g",
             "payload": {"summary": "fine"}, "status": "delivered", "attempts": 1, "next_attempt_at": NOW,
             "created_at": NOW, "last_error": None},
        ],
    }
    with store.engine.begin() as conn:
        for model, values in rows.items():
            for row in values:
                conn.execute(insert(model.__table__).values(**row))  # type: ignore[attr-defined]


def dump(store: Store) -> dict[str, dict[str, dict[str, Any]]]:
    """Every column of every table as the text stored (JSON columns as stored, not parsed), by table and id."""
    schema = MetaData()
    schema.reflect(store.engine)
    out = {}
    with store.engine.connect() as conn:
        for t in schema.sorted_tables:
            if t.name == VERSION_TABLE:
                continue
            columns = [cast(c, Text).label(c.name) if isinstance(c.type, JSON) else c for c in t.c]
            out[t.name] = {r["id"]: dict(r) for r in conn.execute(select(*columns)).mappings()}
    return out


def leaks(everything: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Where a secret, or a start of one at least MIN_CUT long followed by a cut, is still stored."""
    found = []
    for table, rows in everything.items():
        for id, row in rows.items():
            for column, value in row.items():
                if not isinstance(value, str):
                    continue
                for secret in SECRETS:
                    starts = "|".join(re.escape(secret[:n]) for n in range(len(secret) - 1, MIN_CUT - 1, -1))
                    if secret in value or re.search(rf"(?:{starts})(?:{CUT}|\\u2026)", value):
                        found.append(f"{table}.{column} of {id}")
    return found


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> CliRun:
    return CliRun(capsys)


def test_every_secret_goes_from_every_table_and_nothing_else_changes(store: Store, tmp_path: Path,
                                                                     run: CliRun) -> None:
    seed(store)
    before = dump(store)
    assert len(leaks(before)) >= 18, leaks(before)  # the seed holds them where the scrub must look
    cfg = config(tmp_path, store.url)

    out = run("store", "scrub", "-c", str(cfg), "--batch", "1", env=ENV)  # a batch a row: every page boundary
    assert out.returncode == 0, out.stderr
    assert not any(s in out.stdout + out.stderr for s in SECRETS)
    assert "target t's API key" in out.stdout and "sink hook's URL" in out.stdout
    lines = [line for line in out.stdout.splitlines() if " rewritten" in line]
    assert lines == ["observations: 2 rows rewritten", "drift_events: 1 row rewritten", "baselines: 1 row rewritten",
                     "notifications: 1 row rewritten"]

    after = dump(store)
    assert leaks(after) == []
    changed = {(t, id) for t, rows in after.items() for id in rows if rows[id] != before[t][id]}
    assert changed == {("observations", "o1"), ("observations", "o2"), ("drift_events", "e1"), ("baselines", "b1"),
                       ("notifications", "n1")}
    o1 = after["observations"]["o1"]
    assert o1["error_message"] == f"Error code: 401 - Received API Key = {REDACTED}, Key Hash (Token) = abc"
    assert o1["refusal_text"].endswith(f"Received API Key = {REDACTED}{CUT}")
    assert o1["system_fingerprint"] == f"key {REDACTED}{CUT}"
    assert (o1["provider"], o1["canary"], o1["started_at"]) == (before["observations"]["o1"]["provider"], "c",
                                                                 before["observations"]["o1"]["started_at"])
    for t, rows in after.items():  # JSON columns hold JSON still, the other strings in them as they were
        for column in COLUMNS.get(t, ()):
            for row in rows.values():
                if isinstance(row[column], str) and column in ("tool_calls", "ratelimit", "checks", "signals",
                                                                "data", "payload"):
                    json.loads(row[column])
    assert json.loads(o1["tool_calls"])[0]["id"] == "c1" and json.loads(o1["ratelimit"]) == {
        "x-echo": f"Error code: 401 - Received API Key = {REDACTED}, Key Hash (Token) = abc", REDACTED: "as a key"}
    assert json.loads(after["drift_events"]["e1"]["data"])["detail"]["n"] == [1, None, 2.5]
    assert after["observations"]["o2"]["signals"] is None  # SQL NULL stays NULL
    assert after["notifications"]["n1"]["last_error"] == f"ConnectError: {REDACTED} refused"
    assert after["notifications"]["n1"]["status"] == "failed" and after["notifications"]["n1"]["attempts"] == 2

    again = run("store", "scrub", "-c", str(cfg), env=ENV)
    assert again.returncode == 0, again.stderr
    assert [line for line in again.stdout.splitlines() if " rewritten" in line] == [
        f"{t}: 0 rows rewritten" for t in ("observations", "drift_events", "baselines", "notifications")]
    assert dump(store) == after


@pytest.mark.postgres
def test_json_columns_stay_json_the_server_reads(pg_store: Store, tmp_path: Path, run: CliRun) -> None:
    seed(pg_store)
    assert run("store", "scrub", "-c", str(config(tmp_path, pg_store.url)), env=ENV).returncode == 0
    with pg_store.engine.connect() as conn:  # jsonb parses the stored text: invalid JSON would fail here
        assert conn.execute(text("SELECT count(*) FROM drift_events WHERE data::jsonb ? 'evidence'")).scalar() == 2
        assert conn.execute(text("SELECT count(*) FROM observations WHERE ratelimit::jsonb ? 'x-echo'")).scalar() == 1


def test_without_a_secret_it_says_so_and_changes_nothing(store: Store, tmp_path: Path, run: CliRun) -> None:
    seed(store)
    before = dump(store)
    out = run("store", "scrub", "-c", str(config(tmp_path, store.url)), env={"TARGET_KEY": "", "HOOK_URL": ""})
    assert out.returncode == 0, out.stderr
    assert "no secret found in the config" in out.stdout and "the store is unchanged" in out.stdout
    assert "TARGET_KEY" in out.stderr and "HOOK_URL" in out.stderr  # what could not be read, named
    assert dump(store) == before


def test_a_store_failing_midway_is_one_line_exit_1_and_no_secret(store: Store, tmp_path: Path, run: CliRun) -> None:
    seed(store)
    with store.engine.begin() as conn:  # the outbox refuses every update: the tables before it are done
        if store.dialect == "sqlite":
            conn.execute(text("CREATE TRIGGER no_update BEFORE UPDATE ON notifications "
                              "BEGIN SELECT RAISE(ABORT, 'outbox is read-only'); END"))
        else:
            conn.execute(text("CREATE FUNCTION no_update() RETURNS trigger AS $$ BEGIN "
                              "RAISE EXCEPTION 'outbox is read-only'; END $$ LANGUAGE plpgsql"))
            conn.execute(text("CREATE TRIGGER no_update BEFORE UPDATE ON notifications "
                              "FOR EACH ROW EXECUTE FUNCTION no_update()"))
    out = run("store", "scrub", "-c", str(config(tmp_path, store.url)), env=ENV)
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the store failed" in errors[0] and "outbox is read-only" in errors[0], out.stderr
    assert "baselines: 1 row rewritten" in out.stdout and "notifications:" not in out.stdout
    assert not any(s in out.stdout + out.stderr for s in SECRETS)
    assert [w for w in leaks(dump(store)) if not w.startswith("notifications.")] == []


def test_a_row_written_meanwhile_keeps_that_write_and_is_left_for_a_rerun(store: Store) -> None:
    seed(store)
    wrote = []

    def clean(value: str) -> str:  # a daemon writes the row between the scrub's read and its update
        if value.startswith("ConnectError") and not wrote:
            wrote.append(True)
            with store.engine.begin() as conn:
                conn.execute(text("UPDATE notifications SET last_error = 'HTTP 500: later' WHERE id = 'n1'"))
        return scrub_text(value, SECRETS)

    def only_outbox(engine: Any, needles: Any, clean: Any, **kw: Any) -> Any:
        return [s for s in scrub_tables(engine, needles, clean, **kw) if s.table == "notifications"]

    (first,) = only_outbox(store.engine, sorted({s[:MIN_CUT] for s in SECRETS}), clean)
    assert (first.rows, first.busy) == (0, 1)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT last_error FROM notifications WHERE id = 'n1'")).scalar() == "HTTP 500: later"
    (second,) = only_outbox(store.engine, sorted({s[:MIN_CUT] for s in SECRETS}), clean)
    assert (second.rows, second.busy) == (1, 0)
    assert [w for w in leaks(dump(store)) if w.startswith("notifications.")] == []


SLACK_URL = "https://hooks.slack.com/services/T0AAAA/B0BBBB/xYz123SecretPart"
AM_URL = "http://alertmanager:9093"  # written in the config: no secret
PD_URL = "https://events.pagerduty.com/v2/enqueue"  # PagerDuty's default, in the config too


def sinks_config(folder: Path, url: str) -> Path:
    """A config whose only secrets are a Slack URL (from url_env) and a PagerDuty routing key; its Alertmanager URL
    and PagerDuty's are written in the config."""
    cfg = config(folder, url)
    cfg.write_text(cfg.read_text().replace("api_key_env: TARGET_KEY", "api_key_env: UNSET_KEY").split("alerts:")[0]
                   + "alerts:\n  sinks:\n"
                   f"    - {{name: am, type: alertmanager, url: '{AM_URL}'}}\n"
                   "    - {name: chat, type: slack, url_env: SLACK_URL}\n"
                   "    - {name: pd, type: pagerduty, routing_key_env: PD_KEY}\n")
    return cfg


@contextmanager
def selects(engine: Any, table: str) -> Iterator[list[str]]:
    """The SELECTs of `table`'s rows by a LIKE (the scrub's reads) run meanwhile by any engine of `engine`'s kind (the
    command opens its own)."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and f"FROM {table}" in statement and "LIKE" in statement:
            seen.append(statement)

    event.listen(type(engine), "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(type(engine), "before_cursor_execute", count)


def test_a_sink_url_is_a_secret_only_when_read_from_a_variable_or_file(store: Store, tmp_path: Path,
                                                                       run: CliRun) -> None:
    """A plain `url:` (an Alertmanager's, PagerDuty's) stays in the completions that name it; a Slack URL from
    url_env goes, whole or cut past its host; and only the rows holding the Slack URL's host are read: the others,
    full of ordinary `https://` links, are neither read nor rewritten."""
    texts = {
        "plain": f"push to {AM_URL}/api/v2/alerts, page via {PD_URL}",
        "links": "see https://docs.example.com/a and http://127.0.0.1:9/v1, https://hooks.example.org/x",
        "host-cut": f"a link {SLACK_URL[:12]}{CUT}",  # cut inside the host: no part of the secret path
        "whole": f"posted to {SLACK_URL}, not to {SLACK_URL[:16]}{CUT}",  # a read row: its host's start stays
        "past-host": f"posted to {SLACK_URL[:40]}{CUT}",
    }
    with store.engine.begin() as conn:
        for id, body in texts.items():
            conn.execute(insert(ObservationRow.__table__).values(**observation(id, text=body)))
    before = dump(store)
    with selects(store.engine, "observations") as reads:
        out = run("store", "scrub", "-c", str(sinks_config(tmp_path, store.url)), "--batch", "1",
                  env={"SLACK_URL": SLACK_URL, "PD_KEY": "R0UTINGKEY0"})
    assert out.returncode == 0, out.stderr
    assert "sink chat's URL" in out.stdout and "sink am" not in out.stdout and "sink pd's URL" not in out.stdout
    assert "observations: 2 rows rewritten" in out.stdout, out.stdout
    after = {id: row["text"] for id, row in dump(store)["observations"].items()}
    assert after == {**texts, "whole": f"posted to {REDACTED}, not to {SLACK_URL[:16]}{CUT}",
                     "past-host": f"posted to {REDACTED}{CUT}"}
    assert {t: rows for t, rows in dump(store).items() if t != "observations"} == \
        {t: rows for t, rows in before.items() if t != "observations"}
    # a batch is a row: one SELECT per row read, and one finding no more; the 3 rows without it are not read
    assert len(reads) == 3, reads


def test_a_sink_secret_shorter_than_min_secret_stays_as_the_daemon_leaves_it(store: Store, tmp_path: Path,
                                                                             run: CliRun) -> None:
    """One rule for every secret, a sink's as a target's key: from MIN_SECRET (8) characters on. The running sink
    leaves a 7-character routing key in its errors, and the scrub leaves it in the store, saying so."""
    from monitor.alerts.sinks import build_sink
    from monitor.config.loader import load_config

    short_key = "rk-1234"
    env = {"SLACK_URL": SLACK_URL, "PD_KEY": short_key}
    with store.engine.begin() as conn:
        conn.execute(insert(ObservationRow.__table__).values(**observation("o", text=f"rk {short_key} {SLACK_URL}")))
    cfg = sinks_config(tmp_path, store.url)
    alerts = load_config(cfg).alerts
    assert build_sink(alerts.sink("pd"), alerts, env).redact(f"HTTP 400: bad key {short_key}") == \
        f"HTTP 400: bad key {short_key}"
    out = run("store", "scrub", "-c", str(cfg), env=env)
    assert out.returncode == 0, out.stderr
    assert "sink pd: 1 secret shorter than 8 characters: not scrubbed" in " ".join(out.stderr.split()), out.stderr
    assert dump(store)["observations"]["o"]["text"] == f"rk {short_key} {REDACTED}"


def test_a_sink_url_written_with_a_variable_is_a_secret(store: Store, tmp_path: Path, run: CliRun) -> None:
    """Found in review: a webhook's `url: ${HOOK_URL}` (its token in the path, taken from the environment as url_env
    would) counted as written in the config once plain URLs stopped being secrets: the running sink left it in its
    errors and the scrub in the store. A ${VAR} in `url` makes it the sink's secret again, as url_env does."""
    from monitor.alerts.sinks import build_sink
    from monitor.config.loader import load_config

    hook = "https://hooks.example.com/in/T0AAAA/zz9SecretPath"
    with store.engine.begin() as conn:
        conn.execute(insert(ObservationRow.__table__).values(**observation("o", text=f"sent to {hook} and {AM_URL}")))
    cfg = sinks_config(tmp_path, store.url)
    cfg.write_text(cfg.read_text() + "    - {name: hook, type: webhook, url: '${HOOK_URL}'}\n")
    env = {"SLACK_URL": SLACK_URL, "PD_KEY": "R0UTINGKEY0", "HOOK_URL": hook}
    alerts = load_config(cfg, environ=env).alerts
    assert build_sink(alerts.sink("hook"), alerts, env).redact(f"HTTP 404 from {hook}") == "HTTP 404 from <redacted>"
    assert build_sink(alerts.sink("am"), alerts, env).redact(f"HTTP 404 from {AM_URL}") == f"HTTP 404 from {AM_URL}"
    out = run("store", "scrub", "-c", str(cfg), env=env)
    assert out.returncode == 0, out.stderr
    assert "sink hook's URL" in out.stdout, out.stdout
    assert dump(store)["observations"]["o"]["text"] == f"sent to {REDACTED} and {AM_URL}"


def test_the_pieces_of_a_secret_url_a_receiver_echoed_go_too(store: Store, tmp_path: Path, run: CliRun) -> None:
    """Found by QA: the running sink now keeps its secret URL's path, the segments of it holding a digit and its
    query values out of what it stores (a receiver's error page echoes them alone); the scrub takes the same out of
    rows stored before, whole (a cut start of a path is ordinary text: `serv…`), and names them, never the values."""
    piece_url = "https://hooks.slack.com/services/T0AAAA/B0BBBB/xYz123SecretPart?sig=q9Zk2mW4pL8xv"
    texts = {
        "path": "HTTP 404: no_team for /services/T0AAAA/B0BBBB/xYz123SecretPart",
        "segment": "HTTP 403: invalid_token xYz123SecretPart",
        "query": "HTTP 403: bad sig q9Zk2mW4pL8xv",
        "words": f"the services of T0AAAA are fine, the serv{CUT}",  # words and short ids: no secret alone
    }
    with store.engine.begin() as conn:
        for id, body in texts.items():
            conn.execute(insert(ObservationRow.__table__).values(**observation(id, text=body)))
    out = run("store", "scrub", "-c", str(sinks_config(tmp_path, store.url)),
              env={"SLACK_URL": piece_url, "PD_KEY": "R0UTINGKEY0"})
    assert out.returncode == 0, out.stderr
    assert "sink chat's URL path" in out.stdout and "xYz123" not in out.stdout and "q9Zk" not in out.stdout
    after = {id: row["text"] for id, row in dump(store)["observations"].items()}
    assert after == {**texts, "path": f"HTTP 404: no_team for /{REDACTED}",
                     "segment": f"HTTP 403: invalid_token {REDACTED}", "query": f"HTTP 403: bad sig {REDACTED}"}


def test_a_basic_auth_credential_a_receiver_echoed_goes_too(store: Store, tmp_path: Path, run: CliRun) -> None:
    """The running sink keeps the `Authorization: Basic` value its URL's `user:password@` sends out of what it
    stores (a receiver's 401 may echo it); the scrub takes the same out of rows stored before."""
    import base64

    token = base64.b64encode(b"ops:hunter2pass").decode()
    echoed = f'HTTP 401: {{"authorization": "Basic {token}"}}'
    with store.engine.begin() as conn:
        conn.execute(insert(ObservationRow.__table__).values(**observation("o", text=echoed)))
    cfg = sinks_config(tmp_path, store.url)
    cfg.write_text(cfg.read_text().replace(AM_URL, "http://ops:hunter2pass@alertmanager:9093"))
    out = run("store", "scrub", "-c", str(cfg), env={"SLACK_URL": SLACK_URL, "PD_KEY": "R0UTINGKEY0"})
    assert out.returncode == 0, out.stderr
    assert token not in out.stdout + out.stderr and "hunter2pass" not in out.stdout + out.stderr
    assert dump(store)["observations"]["o"]["text"] == f'HTTP 401: {{"authorization": "Basic {REDACTED}"}}'


def test_the_pieces_of_a_secret_url_echoed_percent_decoded_or_encoded_go_too(store: Store, tmp_path: Path,
                                                                             run: CliRun) -> None:
    """Found by QA: a receiver's error page echoing a secret URL's path decoded (`zz9 Secret/part`), or a segment or
    query value percent-encoded (`xYz%3ASecret%40part9`), kept it in rows stored before the sink redacted those
    spellings; the scrub takes them out as the running sink does."""
    piece_url = "https://hooks.slack.com/services/T0%2B12AAAA/xYz:Secret@part9?sig=a/b=q9Zk2mW4"
    texts = {
        "decoded": "HTTP 404: no_team for services/T0+12AAAA/xYz:Secret@part9",
        "segment": "HTTP 403: invalid_token T0+12AAAA",
        "encoded": "HTTP 403: invalid_token xYz%3ASecret%40part9",
        "query": "HTTP 403: bad sig a%2Fb%3Dq9Zk2mW4",
        "json": '{"url": "' + piece_url.replace("/", "\\/") + '"}',  # a JSON reply's `\/` (PHP's json_encode)
    }
    with store.engine.begin() as conn:
        for id, body in texts.items():
            conn.execute(insert(ObservationRow.__table__).values(**observation(id, text=body)))
    out = run("store", "scrub", "-c", str(sinks_config(tmp_path, store.url)),
              env={"SLACK_URL": piece_url, "PD_KEY": "R0UTINGKEY0"})
    assert out.returncode == 0, out.stderr
    assert "12AAAA" not in out.stdout and "Secret" not in out.stdout and "q9Zk" not in out.stdout
    # each named once, however many spellings of it are scrubbed
    assert [out.stdout.count(f"sink chat's {what}") for what in ("URL path (", "URL path segment (",
                                                                 "URL query value (", "JSON-escaped URL")] \
        == [1, 1, 1, 1], out.stdout
    after = {id: row["text"] for id, row in dump(store)["observations"].items()}
    assert after == {"decoded": f"HTTP 404: no_team for {REDACTED}", "segment": f"HTTP 403: invalid_token {REDACTED}",
                     "encoded": f"HTTP 403: invalid_token {REDACTED}", "query": f"HTTP 403: bad sig {REDACTED}",
                     "json": f'{{"url": "{REDACTED}"}}'}
