"""A real webhook receiver on loopback for tests: records requests, verifies Standard Webhooks signatures.

    with Receiver(secret="whsec_...") as rx:
        rx.fail(503, times=2, retry_after="1")   # the next two requests get 503 + Retry-After
        rx.stop(); ...; rx.start()              # down for a while, back on the same port
        rx.wait_for(3)
        rx.hold(); ...; rx.release()          # requests wait (a slow receiver) until released

Signature checking is written here from the spec, independently of monitor.alerts.signing, so a round trip
proves the sender right rather than agreeing with itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOLERANCE_S = 300


def verify(secret: str, headers: dict[str, str], body: bytes, now: float, tolerance: float = TOLERANCE_S) -> str:
    """Return "" if the Standard Webhooks signature is valid, else the reason it is not."""
    msg_id, ts, sigs = headers.get("webhook-id"), headers.get("webhook-timestamp"), headers.get("webhook-signature")
    if not (msg_id and ts and sigs):
        return "missing webhook headers"
    try:
        ts_i = int(ts)
    except ValueError:
        return "bad timestamp"
    if abs(now - ts_i) > tolerance:
        return "timestamp outside tolerance"
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest())
    for part in sigs.split(" "):
        version, _, sig = part.partition(",")
        if version == "v1" and hmac.compare_digest(sig.encode(), expected):
            return ""
    return "no matching signature"


@dataclass
class Received:
    """One request the receiver got and how it answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    verify_error: str | None  # None: no secret configured; "": valid
    at: float = field(default_factory=time.time)

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def message_id(self) -> str | None:
        return self.headers.get("webhook-id")


class Receiver:
    """A threaded HTTP server that records every request and answers as scripted (default 200)."""

    def __init__(self, *, secret: str | None = None, port: int = 0, now: Callable[[], float] = time.time,
                 tolerance: float = TOLERANCE_S):
        self.secret = secret
        self.port = port
        self.now = now
        self.tolerance = tolerance
        self.requests: list[Received] = []
        self._script: deque[tuple[int, dict[str, str]]] = deque()
        self._forever: tuple[int, dict[str, str]] | None = None
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._gate = threading.Event()
        self._gate.set()
        self.arrived = 0  # requests received, answered or still held
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(self, status: int, times: int | None = None, retry_after: str | None = None) -> None:
        """Answer `status` to the next `times` requests (None: until heal())."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        with self._lock:
            if times is None:
                self._forever = (status, headers)
            else:
                self._script.extend([(status, headers)] * times)

    def hold(self) -> None:
        """Keep the next requests waiting for an answer until release() (a slow receiver, without sleeping)."""
        self._gate.clear()

    def release(self) -> None:
        """Answer held requests and stop holding."""
        self._gate.set()

    def wait_arrived(self, n: int, timeout: float = 10.0) -> None:
        """Block until `n` requests arrived (answered or held), or raise TimeoutError."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.arrived >= n, timeout):
                raise TimeoutError(f"{self.arrived} of {n} requests arrived after {timeout}s")

    def heal(self) -> None:
        """Answer 200 again."""
        with self._lock:
            self._forever = None
            self._script.clear()

    def _answer(self, method: str, path: str, headers: dict[str, str],
                body: bytes) -> tuple[int, dict[str, str]]:
        with self._cond:
            status, extra = self._script.popleft() if self._script else (self._forever or (200, {}))
            err = None
            if self.secret is not None:
                err = verify(self.secret, headers, body, self.now(), self.tolerance)
                if err and status == 200:
                    status = 401
            self.requests.append(Received(method, path, headers, body, status, err))
            self._cond.notify_all()
            return status, extra

    def start(self) -> Receiver:
        """Listen (again) on the port; the first start picks a free one."""
        rx = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with rx._cond:
                    rx.arrived += 1
                    rx._cond.notify_all()
                rx._gate.wait()
                status, extra = rx._answer("POST", self.path, headers, body)
                self.send_response(status)
                for k, v in extra.items():
                    try:
                        self.send_header(k, v)
                    except UnicodeEncodeError:  # past Latin-1 (full-width digits): sent as UTF-8, as some servers do
                        self._headers_buffer.append(f"{k}: {v}\r\n".encode())  # type: ignore[attr-defined]
                out = b"ok" if status < 300 else b"nope"
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (connections are refused until start())."""
        self._gate.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, n: int, timeout: float = 10.0, ok_only: bool = True) -> list[Received]:
        """Block until `n` (successful) requests arrived; return them, or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self.requests if r.status < 300 or not ok_only]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(got)} of {n} requests after {timeout}s")
                self._cond.wait(left)

    @property
    def delivered(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.status < 300]

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
