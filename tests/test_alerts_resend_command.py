"""`llm-monitor alerts resend` and `alerts pending --dead`: an operator sends again what was given up on."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from monitor.alerts import AlertEvent, AlertsConfig, Outbox, Policy, Sender, build_sinks
from monitor.alerts.commands import alerts_pending, alerts_resend
from monitor.alerts.events import DEAD, DELIVERED, PENDING
from monitor.cli import main
from monitor.config.loader import load_config
from monitor.store import Store
from tests.conftest import write_config
from tests.support.receiver import Receiver

T0 = datetime(2025, 3, 1, tzinfo=UTC)
NOW = datetime(2025, 3, 2, tzinfo=UTC)
SINKS = [{"name": "hook", "type": "webhook", "url": "http://x"}, {"name": "chat", "type": "webhook", "url": "http://y"}]


def _store(tmp_path: Path, *events: tuple[str, AlertEvent]) -> tuple[SimpleNamespace, list[str]]:
    """One notification per (sink, event), each given up on; return a config naming the store and the ids."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    store = Store(url)
    store.migrate()
    cfg = AlertsConfig.model_validate({"sinks": SINKS})
    rows = [n for sink, e in events for n in Policy(cfg).notifications(e, T0) if n.sink == sink]
    ob = Outbox(store.engine)
    ob.add(rows)
    ob.mark_dead([n.id for n in rows], "gave up after 9 attempts: HTTP 503")
    store.close()
    return SimpleNamespace(storage=SimpleNamespace(url=url), alerts=cfg), [n.message_id for n in rows]


def _changed(c: str) -> AlertEvent:
    return AlertEvent(kind="budget.exceeded", canary=c, target="t1", signal="spend")


def _statuses(config: Any) -> dict[str, str]:
    store = Store(config.storage.url)
    try:
        return {n.message_id: n.status for n in Outbox(store.engine).query()}
    finally:
        store.close()


def test_named_messages_given_up_on_wait_again_and_it_says_so(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    config, (a, b) = _store(tmp_path, ("hook", _changed("c1")), ("hook", _changed("c2")))
    assert alerts_resend(config, [a], now=lambda: NOW) == 0
    out = capsys.readouterr().out
    assert f"re-sent {a} (hook, budget.exceeded, c1/t1 spend): waits for delivery again" in out, out
    assert "1 notification given up on waits for delivery again" in " ".join(out.split()), out
    assert _statuses(config) == {a: PENDING, b: DEAD}


def test_messages_a_410_gave_up_on_are_said_to_wait_for_the_daemons_reload(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # A running daemon disables a sink that answered 410 until its configuration is reloaded: what is re-sent to it
    # meanwhile waits (pending) for that reload, which the operator is told to do, not only that it waits for delivery.
    config, (a, b, c) = _store(tmp_path, ("hook", _changed("c1")), ("hook", _changed("c2")), ("chat", _changed("c3")))
    store = Store(config.storage.url)
    ob = Outbox(store.engine)
    rows = {n.message_id: n.id for n in ob.query()}
    ob.mark_dead(rows[a], "HTTP 410: endpoint deleted")
    ob.mark_dead(rows[b], "sink disabled: the endpoint answered 410 Gone (HTTP 410: endpoint deleted)")
    store.close()
    assert alerts_resend(config, [], sink="hook", now=lambda: NOW) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert ("note: sink hook answered 410 Gone: a running daemon disables it until its configuration is reloaded, and "
            "keeps the 2 notifications re-sent there waiting (pending, `alerts pending` says why) until then: reload it "
            "(SIGHUP or POST /-/reload) once its URL is fixed") in out, out
    assert alerts_resend(config, [c], now=lambda: NOW) == 0  # given up on for another reason: no such note
    assert "410" not in capsys.readouterr().out


def test_a_sink_s_messages_given_up_on_all_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, (a, b, c) = _store(tmp_path, ("hook", _changed("c1")), ("hook", _changed("c2")),
                               ("chat", _changed("c3")))
    assert alerts_resend(config, [], sink="hook", now=lambda: NOW) == 0
    assert _statuses(config) == {a: PENDING, b: PENDING, c: DEAD}
    capsys.readouterr()
    assert alerts_resend(config, [], sink="hook", now=lambda: NOW) == 0
    assert "nothing given up on at sink hook" in capsys.readouterr().out


def test_usage_errors_exit_2_and_change_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, (a,) = _store(tmp_path, ("hook", _changed("c1")))
    assert alerts_resend(config, [], now=lambda: NOW) == 2
    assert "name the notifications to send again" in capsys.readouterr().err
    assert alerts_resend(config, [a], sink="nope", now=lambda: NOW) == 2
    assert "no sink named 'nope' (configured: hook, chat)" in capsys.readouterr().err
    assert _statuses(config) == {a: DEAD}


def test_an_id_not_found_or_not_re_sent_exits_1_naming_why(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    config, (a, b) = _store(tmp_path, ("hook", _changed("c1")), ("hook", _changed("c2")))
    assert alerts_resend(config, [a], now=lambda: NOW) == 0
    capsys.readouterr()
    assert alerts_resend(config, [a, "msg_nope", b], now=lambda: NOW) == 1
    out, err = capsys.readouterr()
    assert f"not re-sent {a} (hook, budget.exceeded, c1/t1 spend): not given up on (pending)" in err, err
    assert "no notification msg_nope in the outbox" in err, err
    assert f"re-sent {b}" in out
    assert _statuses(config) == {a: PENDING, b: PENDING}


def test_a_row_of_a_sink_no_longer_configured_is_not_re_sent(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    config, (a,) = _store(tmp_path, ("chat", _changed("c1")))
    config.alerts = AlertsConfig.model_validate({"sinks": SINKS[:1]})
    assert alerts_resend(config, [a], now=lambda: NOW) == 1
    assert "its sink 'chat' is not configured" in capsys.readouterr().err
    assert _statuses(config) == {a: DEAD}


def test_pending_dead_lists_only_the_rows_given_up_on(tmp_path: Path) -> None:
    config, (a, b) = _store(tmp_path, ("hook", _changed("c1")), ("hook", _changed("c2")))
    assert alerts_resend(config, [a], now=lambda: NOW) == 0
    lines = io.StringIO()
    assert alerts_pending(config, dead=True, as_json=True, stdout=lines) == 0
    assert [json.loads(line)["message_id"] for line in lines.getvalue().splitlines()] == [b]


def test_pending_json_shows_when_a_row_was_re_sent_and_the_message_it_went_out_in(tmp_path: Path) -> None:
    """`asked_at` (schema 0011) and `sent_as` (schema 0012) were in the store but not in `alerts pending --json`:
    an operator could not see that a row was already re-sent, or which grouped message (`webhook-id`) it was in."""
    config, (a, b, c) = _store(tmp_path, ("hook", _changed("c1")), ("hook", _changed("c2")), ("hook", _changed("c3")))
    store = Store(config.storage.url)
    try:
        ob = Outbox(store.engine)
        ids = {n.message_id: n.id for n in ob.query()}
        ob.mark_dead([ids[b], ids[c]], "gave up after 9 attempts: HTTP 503", sent_as=b)  # b and c went out as one
    finally:
        store.close()
    assert alerts_resend(config, [a], now=lambda: NOW) == 0
    lines = io.StringIO()
    assert alerts_pending(config, every=True, as_json=True, stdout=lines) == 0
    got = {r["message_id"]: (r["asked_at"], r["sent_as"]) for r in map(json.loads, lines.getvalue().splitlines())}
    assert got == {a: (NOW.isoformat(), None), b: (None, b), c: (None, b)}


def test_the_cli_re_sends_and_the_sender_delivers_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Receiver() as rx:
        cfg_file = write_config(tmp_path, "  - {id: t1, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                                "canaries: [{id: c1, messages: [{role: user, content: hi}]}]\n",
                                extra=f"alerts: {{sinks: [{{name: hook, type: webhook, url: '{rx.url}'}}]}}\n")
        config = load_config(str(cfg_file))
        store = Store(config.storage.url)
        store.migrate()
        [n] = Policy(config.alerts).notifications(_changed("c1"), T0)
        Outbox(store.engine).add([n])
        Outbox(store.engine).mark_dead(n.id, "gave up after 9 attempts: HTTP 503")
        with pytest.raises(SystemExit) as usage:  # neither ids nor --sink
            main(["alerts", "resend", "-c", str(cfg_file)])
        assert usage.value.code == 2 and "name the notifications to send again" in capsys.readouterr().err
        assert main(["alerts", "pending", "-c", str(cfg_file), "--dead", "--json"]) == 0
        assert json.loads(capsys.readouterr().out.splitlines()[0])["message_id"] == n.message_id
        assert main(["alerts", "resend", "-c", str(cfg_file), n.message_id]) == 0

        async def deliver() -> int:
            sender = Sender(Outbox(store.engine), build_sinks(config.alerts), config.alerts)
            try:
                return (await sender.flush()).delivered
            finally:
                await sender.stop()

        assert asyncio.run(deliver()) == 1
        store.close()
    assert [r.message_id for r in rx.requests] == [n.message_id]  # the receiver's idempotency key, as first sent
    assert _statuses(config) == {n.message_id: DELIVERED}


def test_a_group_with_control_characters_is_written_escaped(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A stored notification's group key and signal were written raw to stdout by `alerts resend`: an ESC in one
    recoloured or cleared the terminal, a U+202E reordered the line."""
    config, (a,) = _store(tmp_path, ("hook", _changed("c1")))
    store = Store(config.storage.url)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE notifications SET group_key = 'g\u202ek', signal = 's\x1b[2J'")
    store.close()
    assert alerts_resend(config, [a], now=lambda: NOW) == 0
    out = capsys.readouterr().out
    assert f"re-sent {a} (hook, budget.exceeded, g\\u202ek s\\x1b[2J)" in out, out
    assert "\x1b" not in out and "\u202e" not in out, out


def test_a_re_sent_message_that_fails_again_is_retried_within_a_fresh_give_up_after(tmp_path: Path) -> None:
    # Written a day before the re-send, past `retry.give_up_after` (1h): its window counts from the re-send, so one
    # more failure is retried, not given up on at once; its created time is kept for the record.
    with Receiver() as rx:
        rx.fail(503)
        url = f"sqlite:///{tmp_path / 'p.db'}"
        cfg = AlertsConfig.model_validate({"sinks": [{"name": "hook", "type": "webhook", "url": rx.url}],
                                           "retry": {"give_up_after": "1h"}})
        config = SimpleNamespace(storage=SimpleNamespace(url=url), alerts=cfg)
        store = Store(url)
        store.migrate()
        [n] = Policy(cfg).notifications(_changed("c1"), T0)
        Outbox(store.engine).add([n])
        Outbox(store.engine).mark_dead(n.id, "gave up after 9 attempts: HTTP 503")
        assert alerts_resend(config, [n.message_id], now=lambda: NOW, store=store) == 0

        async def attempt() -> None:
            sender = Sender(Outbox(store.engine), build_sinks(cfg), cfg, now=lambda: NOW)
            try:
                await sender.flush()
            finally:
                await sender.stop()

        asyncio.run(attempt())
        got = Outbox(store.engine).get(n.id)
        store.close()
    assert len(rx.requests) == 1
    assert got is not None and got.status == "failed", got
    assert got.created_at == T0 and got.next_attempt_at > NOW



@pytest.mark.parametrize("named", ["message id", "row id", "webhook-id"])
def test_one_id_of_a_grouped_message_re_sends_the_whole_message_under_its_webhook_id(
        named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Three drift rows of one canary and target went out as one message (webhook-id over their row ids) and were given
    # up on together: naming one of them (its message id or row id), or the message's webhook-id, re-sends the whole
    # message under that webhook-id, not one row alone under another.
    def opened(signal: str) -> AlertEvent:
        return AlertEvent(kind="drift.opened", canary="c1", target="t1", signal=signal, event_id=f"c1-{signal}")

    with Receiver() as rx:
        rx.fail(503, times=1)
        url = f"sqlite:///{tmp_path / 'p.db'}"
        cfg = AlertsConfig.model_validate({"sinks": [{"name": "hook", "type": "webhook", "url": rx.url}],
                                           "retry": {"give_up_after": "1h"}})
        config = SimpleNamespace(storage=SimpleNamespace(url=url), alerts=cfg)
        store = Store(url)
        store.migrate()
        rows = [n for s in ("refused", "output_chars", "similarity") for n in Policy(cfg).notifications(opened(s), T0)]
        Outbox(store.engine).add(rows)

        async def flush() -> None:
            sender = Sender(Outbox(store.engine), build_sinks(cfg), cfg, now=lambda: NOW)
            try:
                await sender.flush()
            finally:
                await sender.stop()

        asyncio.run(flush())  # a day late: the one message fails and is given up on at once
        assert {n.status for n in Outbox(store.engine).query()} == {DEAD}
        first = rx.requests[0].message_id
        assert first is not None and first not in {n.message_id for n in rows}  # a grouped message's own id
        name = {"message id": rows[1].message_id, "row id": rows[2].id, "webhook-id": first}[named]
        assert alerts_resend(config, [name], now=lambda: NOW, store=store) == 0
        out = capsys.readouterr().out
        assert "3 notifications given up on wait for delivery again" in " ".join(out.split()), out
        asyncio.run(flush())
        store.close()
    assert [(r.status, r.message_id) for r in rx.requests] == [(503, first), (200, first)]
    assert len(rx.requests[1].json["data"]["events"]) == 3
    assert _statuses(config) == {n.message_id: DELIVERED for n in rows}


def test_a_grouped_message_one_row_of_which_is_not_re_sent_goes_under_the_id_of_the_rows_it_carries(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Checked for review: one row of a message given up on cannot go again (an end of its alert was written since), so
    # the re-send carries the others, under the webhook-id their row ids make, not the first message's. A receiver
    # de-duplicating on it never drops a message that tells it something it lacks: an id stands for its rows; one
    # that had the first message is shown rows it had again (at least once), never told less.
    from monitor.alerts.policy import group_message_id

    def drift(kind: str, signal: str) -> AlertEvent:
        return AlertEvent(kind=kind, canary="c1", target="t1", signal=signal, event_id=f"c1-{signal}")

    with Receiver() as rx:
        rx.fail(503, times=1)
        url = f"sqlite:///{tmp_path / 'p.db'}"
        cfg = AlertsConfig.model_validate({"sinks": [{"name": "hook", "type": "webhook", "url": rx.url}],
                                           "retry": {"give_up_after": "1h"}})
        config = SimpleNamespace(storage=SimpleNamespace(url=url), alerts=cfg)
        store = Store(url)
        store.migrate()
        ob = Outbox(store.engine)
        rows = [n for s in ("refused", "output_chars", "similarity")
                for n in Policy(cfg).notifications(drift("drift.opened", s), T0)]
        ob.add(rows)

        async def flush() -> None:
            sender = Sender(Outbox(store.engine), build_sinks(cfg), cfg, now=lambda: NOW)
            try:
                await sender.flush()
            finally:
                await sender.stop()

        asyncio.run(flush())  # given up on at once, the three rows in one message
        first = rx.requests[0].message_id
        [end] = Policy(cfg).notifications(drift("drift.resolved", "similarity"), NOW)
        ob.add([end])
        ob.mark_delivered(end.id, NOW)
        assert alerts_resend(config, [first], now=lambda: NOW, store=store) == 1  # one of them not re-sent
        assert "a later message of its alert was written" in capsys.readouterr().err
        asyncio.run(flush())
        store.close()
    again = rx.requests[1]
    assert again.status == 200 and [e["signal"] for e in again.json["data"]["events"]] == ["refused", "output_chars"]
    assert again.message_id == group_message_id([rows[0].id, rows[1].id]) != first
