"""One HTTP attempt at a receiver: POST a rendered request, read the start of the reply, say what happened.

The sender decides from the outcome whether to retry a notification, when (a 429's or 503's Retry-After is a
floor), or to disable its sink (410 Gone).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx

from monitor.alerts.backoff import retry_after
from monitor.alerts.sinks import Rendered, Sink

_BODY_SNIPPET = 200
_REPLY_READ = 64 * 1024  # bytes of a reply read at most (a snippet of it goes into the error)


@dataclass(frozen=True)
class Attempt:
    """The outcome of one HTTP attempt; a failing receiver is an outcome, not an exception."""

    ok: bool
    status: int | None = None
    error: str = ""
    retry_after_s: float | None = None
    elapsed_s: float = 0.0

    @property
    def gone(self) -> bool:
        return self.status == 410


def said(e: BaseException) -> str:
    """An exception on one line: its class and message (an attempt's error, before the sink's redaction)."""
    return " ".join(f"{e.__class__.__name__}: {e}".split()) if str(e) else e.__class__.__name__


async def attempt(client: httpx.AsyncClient, sink: Sink, req: Rendered, now: Callable[[], datetime]) -> Attempt:
    """POST one rendered request; return what happened (never raises: a failure to send is an outcome too).

    The status says what the receiver did: a 2xx whose body then breaks off or trickles past the timeout was
    accepted (as Alertmanager counts it), and retrying it would page twice.
    """
    started = asyncio.get_running_loop().time()
    reply: list[httpx.Response] = []  # the response, once its status line and headers are in
    head = bytearray()  # the start of its body, as far as it came
    try:
        # The whole exchange within the sink's timeout (a receiver trickling its reply would otherwise hold
        # the sink's loop for good), and only the start of the reply read (a huge error page is not kept).
        async with asyncio.timeout(sink.timeout):
            await _post(client, req, sink.timeout, reply, head)
    except Exception as e:  # failures as data: whatever the send raised is this attempt's error
        # Not only httpx's HTTPError and timeouts: a URL that passed the config check but httpx refuses as it sends
        # (an emoji name, "xn--ls8h", is an idna error, no HTTPError: the config check, looser than IDNA 2008, lets
        # it pass) or a local OSError raised past every except, a traceback at each try while the outbox showed
        # no attempt. Once the reply's status is in, the receiver answered: what broke its body off does not matter.
        if not reply:
            if isinstance(e, TimeoutError):
                e = httpx.ReadTimeout(f"no complete reply within {sink.timeout:g} s")
            err = sink.redact(said(e))
            return Attempt(False, None, err, None, asyncio.get_running_loop().time() - started)
    elapsed = asyncio.get_running_loop().time() - started
    resp = reply[0]
    if 200 <= resp.status_code < 300:
        return Attempt(True, resp.status_code, "", None, elapsed)
    # Secrets are redacted before the cut: a cut inside an echoed URL or token would leave its start unredacted.
    page = sink.redact(bytes(head).decode(resp.encoding or "utf-8", "replace"))
    snippet = page[:_BODY_SNIPPET].strip().replace("\n", " ")
    err = f"HTTP {resp.status_code}" + (f": {snippet}" if snippet else "")
    if 300 <= resp.status_code < 400 and resp.headers.get("location"):  # where the receiver moved to
        err += (f" (redirected to {sink.redact(resp.headers['location'])[:200]}; alert sinks do not follow "
                "redirects: set the url)")
    ra = retry_after(resp.headers.get("retry-after"), now()) if resp.status_code in (429, 503) else None
    return Attempt(False, resp.status_code, err, ra, elapsed)


async def _post(client: httpx.AsyncClient, req: Rendered, timeout: float, reply: list[httpx.Response],
                head: bytearray) -> None:
    """POST; put the response in `reply` once its headers are in, then read at most the first _REPLY_READ bytes
    of its body into `head` (the rest is not downloaded)."""
    async with client.stream("POST", req.url, content=req.body, headers=req.headers, timeout=timeout) as resp:
        reply.append(resp)
        async for chunk in resp.aiter_bytes():
            head += chunk[:_REPLY_READ - len(head)]
            if len(head) >= _REPLY_READ:
                break
