"""HTTP basic auth against the web config's `basic_auth_users` (name -> bcrypt hash), as exporter-toolkit does it.

bcrypt is slow on purpose (about 0.1 s of CPU a check at cost 10, four times that at 12), so a scraper that sends the same
credentials every 15 s would pay that each time: a check that succeeded is remembered, keyed by a SHA-256 of the
user, the hash and the password (never the password itself), and a later request with the same three is let
in at once. A changed hash or a removed user no longer matches. Failures are not remembered: each costs a full
bcrypt, one at a time (a burst of wrong guesses takes one core, not all), off the event loop. An unknown user is
checked against a configured hash too, so the time taken does not tell which users exist.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CACHE_SIZE = 100  # exporter-toolkit's
MAX_PASSWORD_BYTES = 72  # what bcrypt reads of a password


def _credentials(scope: Scope) -> tuple[str, bytes] | None:
    """The (user, password) of a request's `Authorization: Basic` header, or None."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, encoded = value.partition(b" ")
            if scheme.lower() != b"basic":
                return None
            try:
                user, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
                return (user.decode(), password) if sep else None
            except (binascii.Error, UnicodeDecodeError):
                return None
    return None


class Checker:
    """Checks user and password against bcrypt hashes, remembering the checks that succeeded."""

    def __init__(self, size: int = CACHE_SIZE):
        self.size = size
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._bcrypt = asyncio.Lock()  # one bcrypt at a time

    @staticmethod
    def _key(user: str, hashed: str, password: bytes) -> bytes:
        return hashlib.sha256(b"\0".join((user.encode(), hashed.encode(), password))).digest()

    async def check(self, users: Mapping[str, str], user: str, password: bytes) -> bool:
        """Tell whether `password` is `user`'s under `users`."""
        hashed = users.get(user)
        if hashed is not None:
            key = self._key(user, hashed, password)
            if key in self._ok:
                self._ok.move_to_end(key)
                return True
        against = hashed if hashed is not None else next(iter(users.values()))
        async with self._bcrypt:
            ok = await asyncio.to_thread(_checkpw, password, against)
        if not ok or hashed is None:
            return False
        self._ok[key] = None
        while len(self._ok) > self.size:
            self._ok.popitem(last=False)
        return True


def _checkpw(password: bytes, hashed: str) -> bool:
    import bcrypt  # only a listener with users needs it (about 0.4 MB resident)

    # bcrypt reads 72 bytes of a password. Go's bcrypt (exporter-toolkit), htpasswd and Python's bcrypt before 5.0
    # ignore the rest; bcrypt 5.0 raises instead, which would lock out a long password whose hash one of them made.
    try:
        return bcrypt.checkpw(password[:MAX_PASSWORD_BYTES], hashed.encode())
    except ValueError:  # a hash bcrypt cannot read
        return False


class BasicAuth:
    """ASGI middleware: with users configured, a request without their credentials gets 401 and
    `WWW-Authenticate: Basic`; every path is protected but `exempt` (paths with credentials of their own)."""

    def __init__(self, app: ASGIApp, users: Callable[[], Mapping[str, str]], exempt: Collection[str] = ()):
        self.app = app
        self.users = users  # read per request: a reload's users apply at once
        self.exempt = frozenset(exempt)
        self.checker = Checker()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        users = self.users()
        if scope["type"] != "http" or not users or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        given = _credentials(scope)
        if given is not None and await self.checker.check(users, *given):
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"www-authenticate", b'Basic realm="llm-monitor"')]})
        await send({"type": "http.response.body", "body": b"Unauthorized\n"})
