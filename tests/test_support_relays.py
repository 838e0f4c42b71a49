"""The test relays' pump (tests/support/frozen.pump), which the store's hang and partition tests stand on."""

from __future__ import annotations

import socket
import threading

from tests.support.frozen import pump


def test_a_pump_whose_sockets_were_closed_under_it_ends_quietly() -> None:
    """A relay's `close` closes the sockets of its pump threads, one of which may be between two `select`s: its next
    one is on closed sockets. The pump ends there, where it raised in its thread, which pytest reports as an error
    at the test's teardown (CI on dc9db31). Here the sockets are closed before the pump's first `select`."""
    a, a_peer = socket.socketpair()
    b, b_peer = socket.socketpair()
    a.close()
    b.close()
    closed, errors = threading.Event(), []

    def run() -> None:
        try:
            pump(a, b, closed)
        except Exception as e:  # what the thread would have raised
            errors.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    closed.set()
    for s in (a_peer, b_peer):
        s.close()
    assert not thread.is_alive() and errors == [], errors
