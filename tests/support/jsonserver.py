"""A local HTTP server whose POSTs a test answers with JSON: an upstream it scripts itself (a judge, embeddings)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[dict[str, Any], dict[str, str]], tuple[int, Any]]


RawAnswer = Callable[[dict[str, Any], dict[str, str]], tuple[int, str, bytes]]
WireAnswer = Callable[[dict[str, Any], Callable[[bytes], object]], None]


@contextlib.contextmanager
def json_server(answer: Answer) -> Iterator[str]:
    """Serve `answer(body, headers) -> (status, payload)` for every POST (one thread per request); yield the
    base URL. An answer may take its time; a client that gave up meanwhile is not an error."""

    def raw(body: dict[str, Any], headers: dict[str, str]) -> tuple[int, str, bytes]:
        status, payload = answer(body, headers)
        return status, "application/json", json.dumps(payload).encode()

    with raw_server(raw) as url:
        yield url


@contextlib.contextmanager
def raw_server(answer: RawAnswer) -> Iterator[str]:
    """`json_server` whose answers are (status, content type, body bytes): bodies that are not JSON, or not the
    JSON the request deserved."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
            status, ctype, out = answer(body, {k.lower(): v for k, v in self.headers.items()})
            with contextlib.suppress(OSError):
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        do_GET = do_POST  # a client that followed a 302 or 303 asks with GET (its body {})

        def log_message(self, *args: object) -> None:
            pass

    with _serving(Handler) as url:
        yield url


@contextlib.contextmanager
def wire_server(answer: WireAnswer) -> Iterator[str]:
    """A server whose answers are written byte for byte: `answer(body, send)` sends the status line, headers and
    body itself, and the connection closes when it returns. For answers whose body does not match their headers:
    shorter than their Content-Length, endless, compressed. `send` raises OSError once the client has gone (the
    server stops there). Requests in absolute form are answered too: the server can stand for a proxy."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
            with contextlib.suppress(OSError):
                answer(body, self.wfile.write)

        def log_message(self, *args: object) -> None:
            pass

    with _serving(Handler) as url:
        yield url


class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: a burst of calls (the daemon makes one per target at once) overflows
    # it, and the kernel drops, or now and then resets, the connections past it
    request_queue_size = 128


@contextlib.contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = _Server(("127.0.0.1", 0), handler)
    # shutdown() waits for the serving loop to look at its flag, which it does every poll_interval (0.5 s by default:
    # half a second at the end of every test using one)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
