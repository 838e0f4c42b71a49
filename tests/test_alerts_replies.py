"""Receivers that answer badly: a reply trickled byte by byte, a huge error page. Real sockets on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from monitor.alerts import AlertEvent, AlertsConfig, build_alerting
from monitor.alerts.events import DELIVERED, FAILED
from monitor.store import Store

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    await reader.readexactly(length)


class Raw:
    """A loopback HTTP/1.1 server whose replies the test writes byte by byte."""

    def __init__(self, handler: Handler):
        self.handler = handler
        self.sent = 0  # body bytes the handler got out before the client went away
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Raw:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _read_request(reader)
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def _config(url: str) -> AlertsConfig:
    return AlertsConfig.model_validate({"group_wait": "0s", "retry": {"initial": "10s", "max": "10m", "give_up_after": "1h"},
                                        "sinks": [{"name": "hook", "type": "webhook", "url": url + "/hook",
                                                   "timeout": "1s"}]})


@pytest.fixture
async def delivered(sqlite_store: Store) -> AsyncIterator[Callable[[str], Awaitable[tuple[str, str]]]]:
    built = []

    async def deliver(url: str) -> tuple[str, str]:
        al = build_alerting(_config(url), sqlite_store, environ={})
        built.append(al)
        [n] = await al.publish([AlertEvent(kind="drift.opened", canary="c", target="t", signal="refused",
                                           event_id="e1")])
        await asyncio.wait_for(al.sender.flush(), 60)  # a hang guard, not a measurement
        row = al.outbox.get(n.id)
        assert row is not None
        return row.status, row.last_error or ""

    yield deliver
    for al in built:
        await al.stop()


def _trickle(status: bytes) -> Handler:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 100000\r\n\r\n")
        for _ in range(1000):  # a byte every 0.2 s: each read is within the timeout, the whole never is
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.2)
    return trickle


async def test_an_error_reply_trickled_slower_than_the_timeout_allows_fails_within_it(delivered) -> None:  # type: ignore[no-untyped-def]
    async with Raw(_trickle(b"503 Service Unavailable")) as rx:
        status, error = await delivered(rx.url)
    assert status == FAILED and error.startswith("HTTP 503: x")  # what came of the page within the timeout


async def test_a_2xx_whose_body_trickles_or_breaks_off_is_delivered_once(delivered) -> None:  # type: ignore[no-untyped-def]
    # The status says the receiver accepted it (Alertmanager counts a 2xx so, whatever its body does); counting it
    # failed retried it: the receiver got the same alert twice.
    requests = 0

    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        requests += 1
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"status\": \"acc")
        await writer.drain()  # then the connection closes, 86 bytes short

    async with Raw(cut) as rx:
        status, error = await delivered(rx.url)
    assert (status, error, requests) == (DELIVERED, "", 1)
    async with Raw(_trickle(b"200 OK")) as rx:
        status, error = await delivered(rx.url)
    assert (status, error) == (DELIVERED, "")


async def test_a_huge_error_page_is_not_read_whole_and_its_start_is_the_error(delivered) -> None:  # type: ignore[no-untyped-def]
    size = 256 * 1024 * 1024
    raw: Raw

    async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"HTTP/1.1 500 Internal Server Error\r\ncontent-length: {size}\r\n\r\n".encode())
        chunk = b"<html>oops " + b"x" * (1024 * 1024 - 11)
        for _ in range(size // len(chunk)):
            writer.write(chunk)
            await writer.drain()
            raw.sent += len(chunk)

    async with Raw(huge) as raw:
        status, error = await delivered(raw.url)
        await asyncio.sleep(0.2)
    assert status == FAILED and error.startswith("HTTP 500: <html>oops xxx")
    assert raw.sent < size // 4  # the client hung up after the start of the page


async def test_a_plain_2xx_reply_still_delivers(delivered) -> None:  # type: ignore[no-untyped-def]
    async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()

    async with Raw(ok) as rx:
        status, _ = await delivered(rx.url)
    assert status == DELIVERED


async def test_a_reply_echoing_the_sinks_url_across_the_cut_leaves_no_part_of_it(sqlite_store: Store) -> None:
    # The error keeps the first 200 characters of the page; redacting after that cut missed a URL (a Slack-style
    # token in its path) the cut fell inside, and its start was stored and shown with the notification.
    token = "/hook/T0SECRET/B0SECRET/XXXXXXXXXXXXXXXXXXXXXXXX"
    pad = 0

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        page = ("." * pad + f"no such hook: {rx.url}{token}").encode()
        writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: %d\r\n\r\n%s" % (len(page), page))
        await writer.drain()

    errors = []
    async with Raw(echo) as rx:
        for pad in range(120, 200, 7):  # the cut falls inside the URL for some of these
            config = AlertsConfig.model_validate({
                "group_wait": "0s", "retry": {"initial": "10s", "max": "10m", "give_up_after": "1h"},
                "sinks": [{"name": f"hook{pad}", "type": "webhook", "url_env": "HOOK_URL", "timeout": "1s"}]})
            al = build_alerting(config, sqlite_store, environ={"HOOK_URL": rx.url + token})  # a URL kept secret
            try:
                [n] = await al.publish([AlertEvent(kind="drift.opened", canary="c", target="t", signal="refused",
                                                   event_id=f"e{pad}")])
                await asyncio.wait_for(al.sender.flush(), 60)  # a hang guard, not a measurement
                row = al.outbox.get(n.id)
                assert row is not None
                errors.append(row.last_error or "")
            finally:
                await al.stop()
    assert all(e.startswith("HTTP 404: ") for e in errors), errors
    assert [e for e in errors if "http://127" in e or "SECRET" in e] == []


async def test_a_redirect_is_a_failure_that_says_where_the_receiver_moved(delivered) -> None:  # type: ignore[no-untyped-def]
    async def moved(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 308 Permanent Redirect\r\nlocation: https://hooks.example.com/v2/hook\r\n"
                     b"content-length: 0\r\n\r\n")
        await writer.drain()

    async with Raw(moved) as rx:
        status, error = await delivered(rx.url)
    assert status == FAILED  # not followed: a redirect could send the signed alert anywhere
    assert error.startswith("HTTP 308 (redirected to https://hooks.example.com/v2/hook;")


async def test_a_reply_echoing_pieces_of_a_secret_url_keeps_none_of_them(sqlite_store: Store) -> None:
    # Found by QA: only the whole secret URL was redacted; a receiver that echoes its path ("no route for /hook/..."),
    # one of its id segments ("team T0123ABCD"), or a query value ("token qv-77f0c2a9e1") had those stored in the
    # row's error and logged.
    path = "/hook/T0123ABCD/B0456EFGH/xYz123SecretPart"
    query = "token=qv-77f0c2a9e1&team=acme"

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        page = (f"no route for {path}; team T0123ABCD has no hook B0456EFGH (xYz123SecretPart); "
                "token qv-77f0c2a9e1 unknown; path hook/T0123ABCD/B0456EFGH/xYz123SecretPart").encode()
        writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: %d\r\n\r\n%s" % (len(page), page))
        await writer.drain()

    async with Raw(echo) as rx:
        config = AlertsConfig.model_validate({
            "group_wait": "0s", "retry": {"initial": "10s", "max": "10m", "give_up_after": "1h"},
            "sinks": [{"name": "hook", "type": "webhook", "url_env": "HOOK_URL", "timeout": "1s"}]})
        al = build_alerting(config, sqlite_store, environ={"HOOK_URL": f"{rx.url}{path}?{query}"})
        try:
            [n] = await al.publish([AlertEvent(kind="drift.opened", canary="c", target="t", signal="refused",
                                               event_id="e")])
            await asyncio.wait_for(al.sender.flush(), 60)  # a hang guard, not a measurement
            row = al.outbox.get(n.id)
        finally:
            await al.stop()
    assert row is not None and row.last_error is not None
    error = row.last_error
    assert error.startswith("HTTP 404: no route for /<redacted>; team <redacted> has no hook <redacted>"), error
    assert [s for s in ("T0123ABCD", "B0456EFGH", "xYz123SecretPart", "qv-77f0c2a9e1", "hook/") if s in error] == []


@pytest.mark.parametrize("from_env", [False, True])
async def test_a_url_with_a_user_and_password_sends_basic_auth_whose_value_is_never_stored_or_logged(
        sqlite_store: Store, from_env: bool, caplog: pytest.LogCaptureFixture) -> None:
    # Found by QA: a sink URL's `user:password@` goes out as an `Authorization: Basic <base64>` header, and a
    # receiver refusing it may echo that header back: the base64 credential (the password in other letters) went
    # into the stored error and the log, where only the password as written was redacted.
    import base64
    import logging

    from tests.support.jsonserver import json_server

    seen: list[str] = []

    def refuse(body: dict, headers: dict[str, str]) -> tuple[int, dict]:
        seen.append(headers.get("authorization", ""))
        return 401, {"error": "bad credentials", "authorization": headers.get("authorization")}

    token = base64.b64encode(b"ops:hunter2pass").decode()
    with json_server(refuse) as base, caplog.at_level(logging.DEBUG):
        url = base.replace("http://", "http://ops:hunter2pass@") + "/hook"
        sink = {"name": "hook", "type": "webhook", "timeout": "10s", **({"url_env": "HOOK_URL"} if from_env
                                                                        else {"url": url})}
        config = AlertsConfig.model_validate({"group_wait": "0s", "retry": {"initial": "10s", "max": "10m",
                                                                            "give_up_after": "1h"}, "sinks": [sink]})
        al = build_alerting(config, sqlite_store, environ={"HOOK_URL": url})
        try:
            [n] = await al.publish([AlertEvent(kind="drift.opened", canary="c", target="t", signal="refused",
                                               event_id="e")])
            await asyncio.wait_for(al.sender.flush(), 60)  # a hang guard, not a measurement
            row = al.outbox.get(n.id)
        finally:
            await al.stop()
    # the credential is sent (a loaded machine may see a second attempt: it carries the same header)
    assert seen and set(seen) == {f"Basic {token}"}, seen
    assert row is not None and (row.last_error or "").startswith("HTTP 401: "), row
    assert "<redacted>" in (row.last_error or "")
    for secret in (token, "hunter2pass"):
        assert secret not in (row.last_error or "")
        assert secret not in caplog.text


async def test_a_reply_echoing_pieces_of_a_secret_url_percent_decoded_or_encoded_keeps_none_of_them(
        sqlite_store: Store, caplog: pytest.LogCaptureFixture) -> None:
    # Found by QA: the pieces of a secret URL were redacted only as written in the URL; a receiver echoing its path
    # decoded ("no route for /hook/T0+123ABCD/zz9 Secret/part"), an id segment or a query value percent-encoded
    # (`xYz%3ASecret%40part`, `a%2Fb%3Dsig-77f0c2`), had them stored in the row's error and logged.
    path = "/hook/T0%2B123ABCD/zz9%20Secret%2Fpart/xYz:Secret@part9"
    query = "token=a/b=sig-77f0c2&team=acme"
    echoes = ("hook/T0+123ABCD/zz9 Secret/part/xYz:Secret@part9", "T0+123ABCD", "zz9 Secret/part",
              "xYz%3ASecret%40part9",
              "hook%2FT0%252B123ABCD%2Fzz9%2520Secret%252Fpart%2FxYz%3ASecret%40part9", "a%2Fb%3Dsig-77f0c2")

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        page = "; ".join(f"echo {e}" for e in echoes).encode()
        writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: %d\r\n\r\n%s" % (len(page), page))
        await writer.drain()

    caplog.set_level(logging.DEBUG)
    async with Raw(echo) as rx:
        config = AlertsConfig.model_validate({
            "group_wait": "0s", "retry": {"initial": "10s", "max": "10m", "give_up_after": "1h"},
            "sinks": [{"name": "hook", "type": "webhook", "url_env": "HOOK_URL", "timeout": "1s"}]})
        al = build_alerting(config, sqlite_store, environ={"HOOK_URL": f"{rx.url}{path}?{query}"})
        try:
            [n] = await al.publish([AlertEvent(kind="drift.opened", canary="c", target="t", signal="refused",
                                               event_id="e")])
            await asyncio.wait_for(al.sender.flush(), 60)  # a hang guard, not a measurement
            row = al.outbox.get(n.id)
        finally:
            await al.stop()
    assert row is not None and row.last_error is not None
    assert row.last_error.count("echo <redacted>") == len(echoes), row.last_error
    logged = " ".join(str(r.__dict__) for r in caplog.records)
    assert [e for e in (*echoes, "123ABCD", "Secret") if e in row.last_error or e in logged] == []


async def test_a_json_reply_echoing_a_secret_url_with_its_slashes_escaped_keeps_none_of_it(
        sqlite_store: Store) -> None:
    # Found by QA: a receiver answering JSON with `/` escaped as `\/` (PHP's json_encode does by default) echoed the
    # secret URL and its path in a spelling nothing redacted: only the segments holding a digit went, the token
    # segment without one (`abcdefSECRETtoken`) stayed in the stored error.
    import json as json_

    path = "/hooks/T0123ABCD/abcdefSECRETtoken"

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        page = json_.dumps({"error": f"no route for {url}", "path": path.strip("/")}).replace("/", "\\/").encode()
        writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: %d\r\n\r\n%s" % (len(page), page))
        await writer.drain()

    async with Raw(echo) as rx:
        url = f"{rx.url}{path}"
        config = AlertsConfig.model_validate({
            "group_wait": "0s", "retry": {"initial": "10s", "max": "10m", "give_up_after": "1h"},
            "sinks": [{"name": "hook", "type": "webhook", "url_env": "HOOK_URL", "timeout": "1s"}]})
        al = build_alerting(config, sqlite_store, environ={"HOOK_URL": url})
        try:
            [n] = await al.publish([AlertEvent(kind="drift.opened", canary="c", target="t", signal="refused",
                                               event_id="e")])
            await asyncio.wait_for(al.sender.flush(), 60)  # a hang guard, not a measurement
            row = al.outbox.get(n.id)
        finally:
            await al.stop()
    assert row is not None and row.last_error is not None
    assert "SECRETtoken" not in row.last_error and row.last_error.count("<redacted>") == 2, row.last_error
