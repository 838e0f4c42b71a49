"""`alerts test` and `alerts pending` (the functions the CLI calls)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from monitor.alerts import AlertEvent, AlertsConfig, Outbox, Policy
from monitor.alerts.commands import alerts_pending, alerts_test
from monitor.store import Store
from tests.support.jsonserver import json_server
from tests.support.receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200, highlight=False, color_system=None), buf


def test_alerts_test_sends_a_signed_message_now() -> None:
    with Receiver(secret=SECRET) as rx:
        cfg = SimpleNamespace(alerts={"sinks": [{"name": "hook", "type": "webhook", "url": rx.url,
                                                 "secret_env": "HOOK_SECRET"}]})
        con, buf = console()
        assert alerts_test(cfg, "hook", environ={"HOOK_SECRET": SECRET}, console=con) == 0
        [got] = rx.delivered
        assert got.json["type"] == "test" and got.verify_error == ""
        assert "delivered test message msg_" in buf.getvalue() and "HTTP 200" in buf.getvalue()
        rx.fail(503)
        con, buf = console()
        assert alerts_test(cfg, "hook", environ={"HOOK_SECRET": SECRET}, console=con) == 1
        assert f"failed to deliver to hook (webhook, {rx.url}): HTTP 503" in buf.getvalue()
        rx.fail(410)
        con, buf = console()
        assert alerts_test(cfg, "hook", environ={"HOOK_SECRET": SECRET}, console=con) == 1
        assert "HTTP 410: nope (410 Gone: the daemon disables a sink that answers so, until the config is " \
            "reloaded)" in buf.getvalue()


def test_alerts_test_names_the_problem() -> None:
    cfg = AlertsConfig.model_validate({"sinks": [{"name": "chat", "type": "slack", "url_env": "SLACK_URL"}]})
    con, buf = console()
    assert alerts_test(cfg, "nope", environ={}, console=con) == 2
    assert "no sink named 'nope' (configured: chat)" in buf.getvalue()
    con, buf = console()
    assert alerts_test(cfg, "chat", environ={}, console=con) == 2
    assert "environment variable SLACK_URL (named by url_env) is not set" in buf.getvalue()


def test_alerts_test_needs_only_the_secrets_of_the_sink_it_tests() -> None:
    # Found by QA: `alerts test --sink am` refused to send ("environment variable ... is not set") because another
    # sink's secret was unset in the operator's shell
    with Receiver() as rx:
        cfg = AlertsConfig.model_validate({"sinks": [
            {"name": "chat", "type": "slack", "url_env": "SLACK_URL"},
            {"name": "am", "type": "alertmanager", "url": rx.url}]})
        con, buf = console()
        assert alerts_test(cfg, "am", environ={}, console=con) == 0, buf.getvalue()
        assert len(rx.delivered) == 1
    con, buf = console()
    assert alerts_test(cfg, "chat", environ={}, console=con) == 2
    assert "environment variable SLACK_URL (named by url_env) is not set" in buf.getvalue()


def test_alerts_test_leads_a_sink_secret_error_with_the_file_and_line_of_the_sink(tmp_path: Path) -> None:
    # Found by a newcomer walk-through: `alerts test --sink chat` with url_env unset printed the error without the
    # `monitor.yaml:7:` that run and check-config lead it with (the README says sink secret errors begin with it)
    from monitor.config import load_config
    from tests.conftest import write_config

    cfg_path = write_config(
        tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m, api_key_env: K}",
        "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    schedule: {every: 5m}\n",
        extra="alerts:\n  sinks:\n    - {name: chat, type: slack, url_env: SLACK_UNSET_XYZ}\n")
    line = next(n for n, text in enumerate(cfg_path.read_text().splitlines(), 1) if "name: chat" in text)
    con, buf = console()
    assert alerts_test(load_config(str(cfg_path)), "chat", environ={}, console=con) == 2
    assert f"error: {cfg_path}:{line}: alert sink chat: environment variable SLACK_UNSET_XYZ (named by url_env) " \
        "is not set" in " ".join(buf.getvalue().split()), buf.getvalue()


def test_alerts_test_piped_prints_its_outcome_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    # Found by QA: piped (a CI job's log, `| grep`), the outcome was cut at 80 columns, "HTTP 200" on a line of its own
    name = "alertmanager-eu-west-production"
    with Receiver() as rx:
        cfg = AlertsConfig.model_validate({"sinks": [{"name": name, "type": "alertmanager", "url": rx.url}]})
        assert alerts_test(cfg, name, environ={}) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1 and f"to {name} (alertmanager, {rx.url}): HTTP 200 in" in out, out


def test_alerts_test_failures_go_to_stderr_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    # Found by the README walk-through: failures went to standard output (a script reading the outcome from stdout
    # took them for it), and square brackets in them were read as rich markup and dropped
    with json_server(lambda body, headers: (503, {"error": "[bold]quota[/bold] exceeded"})) as url:
        cfg = AlertsConfig.model_validate({"sinks": [{"name": "am", "type": "alertmanager", "url": url},
                                                     {"name": "chat", "type": "slack", "url_env": "SLACK_URL"}]})
        assert alerts_test(cfg, "am", environ={}) == 1
        assert alerts_test(cfg, "chat", environ={}) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f'failed to deliver to am (alertmanager, {url}): HTTP 503: {{"error": "[bold]quota[/bold] exceeded"}}' in err, err
    assert "environment variable SLACK_URL (named by url_env) is not set" in err, err


def _outbox(tmp_path: Path, sink: str, kind: str, *events: AlertEvent, dead: str = "",
            delivered: bool = False) -> SimpleNamespace:
    """Queue the notifications of `events` for one sink (the first one dead with reason `dead`, if given; the
    last one delivered, if asked) in a new SQLite store; return a config naming it."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    store = Store(url)
    store.migrate()
    policy = Policy(AlertsConfig.model_validate({"sinks": [{"name": sink, "type": kind, "url": "http://x"}]}))
    rows = [n for e in events for n in policy.notifications(e, datetime(2025, 3, 1, tzinfo=UTC))]
    ob = Outbox(store.engine)
    ob.add(rows)
    if dead:
        ob.mark_dead(rows[0].id, dead)
    if delivered:
        ob.mark_delivered(rows[-1].id, datetime(2025, 3, 1, 0, 5, tzinfo=UTC))
    store.close()
    return SimpleNamespace(storage=SimpleNamespace(url=url))


def test_alerts_pending_lists_the_outbox(tmp_path: Path) -> None:
    config = _outbox(tmp_path, "am", "alertmanager", AlertEvent(kind="drift.opened", canary="c1", target="t1",
                                                                signal="refusal_rate", event_id="e1"))
    con, buf = console()
    assert alerts_pending(config, console=con) == 0
    out = buf.getvalue()
    assert "outbox: 1 pending" in out and "drift.opened" in out and "c1/t1" in out and "refusal_rate" in out


def test_alerts_pending_piped_keeps_each_message_id_on_one_line(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # Found by QA: piped (`alerts pending --all | less`), the table was cut at 80 columns into ten slivers, a
    # message id folded over eight lines.
    config = _outbox(tmp_path, "hook", "webhook",
                     AlertEvent(kind="canary.down", canary="some-long-canary-name", target="t1", signal="health"))
    capsys.readouterr()
    assert alerts_pending(config, every=True) == 0
    out = capsys.readouterr().out
    assert "some-long-canary-name/t1" in out and "canary.down" in out
    assert any(line.count("msg_") == 1 and len(line.split("msg_")[1].split()[0]) == 32 for line in out.splitlines())


def test_alerts_pending_all_and_json_show_dead_rows(tmp_path: Path) -> None:
    config = _outbox(tmp_path, "hook", "webhook",
                     AlertEvent(kind="drift.opened", canary="c1", target="t1", signal="refusal_rate", event_id="e1"),
                     AlertEvent(kind="canary.down", canary="c2", target="t1", signal="health"), dead="HTTP 410: gone")
    con, buf = console()
    assert alerts_pending(config, console=con) == 0
    assert "outbox: 1 pending" in buf.getvalue() and "c1/t1" not in buf.getvalue()
    con, buf = console()
    assert alerts_pending(config, every=True, console=con) == 0
    out = buf.getvalue()
    assert "outbox: 1 pending, 1 dead, 0 delivered" in out and "c1/t1" in out and "HTTP 410: gone" in out
    lines = io.StringIO()
    assert alerts_pending(config, every=True, as_json=True, stdout=lines) == 0
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert {(r["group"], r["status"], r["last_error"]) for r in records} == {
        ("c1/t1", "dead", "HTTP 410: gone"), ("c2/t1", "pending", None)}
    assert set(records[0]) >= {"message_id", "sink", "kind", "signal", "attempts", "next_attempt_at", "created_at"}


def test_alerts_pending_json_says_on_stderr_when_it_shows_fewer_than_the_outbox_holds(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the table's title says "(showing 1)"; JSON lines ended silently at --limit, as if nothing more waited
    config = _outbox(tmp_path, "hook", "webhook", *(AlertEvent(kind="canary.down", canary=f"c{i}", target="t1",
                                                               signal="health") for i in range(3)))
    capsys.readouterr()
    assert alerts_pending(config, limit=1, as_json=True) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 1
    assert "note: showing 1 of 3 notifications (-n/--limit)" in " ".join(err.split()), err
    assert alerts_pending(config, limit=3, as_json=True) == 0
    assert capsys.readouterr().err == ""


def test_alerts_pending_all_shows_when_rows_were_delivered_and_no_next_attempt_for_finished_ones(tmp_path: Path) -> None:
    config = _outbox(tmp_path, "hook", "webhook",
                     AlertEvent(kind="drift.opened", canary="c1", target="t1", signal="refusal_rate", event_id="e1"),
                     AlertEvent(kind="canary.down", canary="c2", target="t1", signal="health"),
                     AlertEvent(kind="canary.down", canary="c3", target="t1", signal="health"),
                     dead="HTTP 410: gone", delivered=True)
    con, buf = console()
    assert alerts_pending(config, every=True, console=con) == 0
    lines = buf.getvalue().splitlines()
    assert any("delivered" in line and "next attempt" in line for line in lines)  # the header
    row = {g: next(line for line in lines if g in line) for g in ("c1/t1", "c2/t1", "c3/t1")}
    stamps = {g: line.count("2025-03-01T") for g, line in row.items()}
    assert stamps == {"c1/t1": 1, "c2/t1": 2, "c3/t1": 2}  # dead: created only; waiting: next attempt too
    assert "2025-03-01T00:05:00" in row["c3/t1"]  # delivered: when


def test_alerts_pending_says_which_earlier_message_a_due_row_waits_behind(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # Found by a newcomer: a row with "attempts 0" and a next attempt in the past sat there with nothing saying why:
    # an alert's messages go out in order, and the canary.down ahead of its recovery was failing.
    config = _outbox(tmp_path, "hook", "webhook",
                     AlertEvent(kind="canary.down", canary="c1", target="t1", signal="health"),
                     AlertEvent(kind="canary.recovered", canary="c1", target="t1", signal="health"),
                     AlertEvent(kind="canary.down", canary="c2", target="t1", signal="health"))
    store = Store(config.storage.url)
    ob = Outbox(store.engine)
    down, recovered, other = sorted(ob.query(), key=lambda n: n.group_key + str(n.kind != "canary.down"))
    ob.mark_retry(down.id, datetime(2025, 3, 1, 1, 0, tzinfo=UTC), "HTTP 503")  # failing: tried again later
    store.close()
    lines = io.StringIO()
    assert alerts_pending(config, as_json=True, stdout=lines) == 0
    records = {r["message_id"]: r for r in map(json.loads, lines.getvalue().splitlines())}
    assert {k: r["waits_behind"] for k, r in records.items()} == {
        down.message_id: None, recovered.message_id: down.message_id, other.message_id: None}
    capsys.readouterr()
    assert alerts_pending(config) == 0  # piped: one line a row
    out = capsys.readouterr().out
    assert f"{recovered.message_id} waits behind {down.message_id} (an alert's messages" in out, out
    assert f"{other.message_id} waits" not in out


def test_alerts_subcommands_have_their_own_help(capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import parser

    with pytest.raises(SystemExit):
        parser().parse_args(["alerts", "test", "--help"])
    text = capsys.readouterr().out
    assert "--sink NAME" in text and "the sink to test" in text and "5 minutes" in text
    with pytest.raises(SystemExit):
        parser().parse_args(["alerts", "pending", "--help"])
    text = capsys.readouterr().out
    assert "--all" in text and "--json" in text
    with pytest.raises(SystemExit):
        parser().parse_args(["alerts", "test"])  # --sink is required
    assert "--sink" in capsys.readouterr().err
    args = parser().parse_args(["alerts", "pending", "--all", "--json", "-c", "m.yaml"])
    assert (args.all, args.json, args.config, args.limit) == (True, True, "m.yaml", 100)


def test_alerts_test_to_alertmanager_ends_by_itself() -> None:
    t0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    with Receiver() as rx:
        cfg = AlertsConfig.model_validate({"sinks": [{"name": "am", "type": "alertmanager", "url": rx.url}]})
        assert alerts_test(cfg, "am", environ={}, now=lambda: t0, console=console()[0]) == 0
        [a] = rx.delivered[0].json
    assert a["labels"]["alertname"] == "LLMMonitorTest"
    assert datetime.fromisoformat(a["endsAt"]) - datetime.fromisoformat(a["startsAt"]) == timedelta(minutes=5)


@pytest.mark.slow
def test_alerts_test_leaves_no_active_alert_in_a_real_alertmanager(tmp_path: Path) -> None:
    from tests.support.prom import BLACKHOLE, active_alerts, start_alertmanager

    with start_alertmanager(tmp_path, BLACKHOLE) as am:
        cfg = AlertsConfig.model_validate({"sinks": [{"name": "am", "type": "alertmanager", "url": am.url}]})
        six_minutes_ago = datetime.now(UTC) - timedelta(minutes=6)  # the test alert's 5 minutes are over
        assert alerts_test(cfg, "am", environ={}, now=lambda: six_minutes_ago, console=console()[0]) == 0
        assert active_alerts(am.url) == []


def test_alerts_test_names_the_sink_and_its_url_without_its_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    """Which endpoint refused is what an operator needs first; the URL is shown without a password, the values of its
    query, or (a URL from a variable or file, Slack's: its token is the path) its path."""
    with json_server(lambda body, headers: (503, {"error": "busy"})) as url:
        base = url.removeprefix("http://")
        cfg = AlertsConfig.model_validate({"sinks": [
            {"name": "am", "type": "webhook", "url": f"http://ops:hunter2pass@{base}/hook?token=tok3nSecret&x=1"},
            {"name": "chat", "type": "slack", "url_env": "SLACK_URL"}]})
        assert alerts_test(cfg, "am", environ={}) == 1
        assert alerts_test(cfg, "chat", environ={"SLACK_URL": f"{url}/services/T0AAAA/B0BBBB/xYz123SecretPart"}) == 1
    out, err = capsys.readouterr()
    err = " ".join(err.split())
    assert out == ""
    assert f"failed to deliver to am (webhook, http://<redacted>@{base}/hook?token=<redacted>&x=<redacted>): " \
        "HTTP 503" in err, err
    assert f"failed to deliver to chat (slack, http://{base}/<redacted>, url_env SLACK_URL): HTTP 503" in err, err
    for secret in ("hunter2pass", "tok3nSecret", "xYz123SecretPart", "T0AAAA", "ops:"):
        assert secret not in err, (secret, err)


def test_alerts_test_names_the_sink_when_its_message_cannot_be_rendered(monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A render that raises (a build whose renderer breaks on the message) is a failed test with one line naming the
    sink, exit 1, never a traceback; the secret URL the error quotes is redacted."""
    from monitor.alerts.sinks.slack import Slack

    url = "https://hooks.slack.example/services/T0AAAA/B0BBBB/xYz123SecretPart"

    def broken(self: Slack, n: object, now: object) -> None:
        raise ValueError(f"cannot lay out the blocks for {url}")

    monkeypatch.setattr(Slack, "render", broken)
    cfg = AlertsConfig.model_validate({"sinks": [{"name": "chat", "type": "slack", "url_env": "SLACK_URL"}]})
    assert alerts_test(cfg, "chat", environ={"SLACK_URL": url}) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert "failed to deliver to chat (slack, https://hooks.slack.example/<redacted>, url_env SLACK_URL): cannot " \
        "render the message: ValueError: cannot lay out the blocks for <redacted>" in err, err
    assert "xYz123SecretPart" not in err and "Traceback" not in err
