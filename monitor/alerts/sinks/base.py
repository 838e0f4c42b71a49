"""What every sink is: turn a stored notification into one HTTP request at send time.

A sink holds its secrets (resolved from the environment or a file when the sink is built) and uses them only
while rendering a request; :meth:`Sink.redact` scrubs them from any text that may reach a log or the store. Its
URL is one of them when it was read from `url_env`, `url_file` or a ${VAR} in `url` (Slack's always: its token is
the path); a `url` written out in the config is not (`http://alertmanager:9093`, PagerDuty's Events API), only the
credentials it carries.
"""

from __future__ import annotations

import base64
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote, unquote, unquote_plus, urlsplit

from monitor.alerts import redact
from monitor.alerts.config import http_url
from monitor.alerts.events import Notification
from monitor.errors import SecretError, SecretMissing
from monitor.keylike import shown_path
from monitor.literal_secrets import credential_header
from monitor.min_secret import MIN_SECRET
from monitor.secret_file import NotASecretFile, read_secret_file

USER_AGENT = "llm-monitor-alerts"


@dataclass(frozen=True)
class Rendered:
    """One request to make: where, what bytes, which headers."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def to_json(data: Any) -> bytes:
    """Serialise compactly; the exact bytes are what gets signed."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def read_secret(sink: str, what: str, env_name: str | None, file: str | None,
                environ: Mapping[str, str] | None) -> str | None:
    """Return a secret from the named environment variable or file; SecretMissing when named but unset or empty."""
    env = os.environ if environ is None else environ
    if env_name:
        value = env.get(env_name, "").strip()
        if not value:
            raise SecretMissing(f"alert sink {sink}: environment variable {env_name} (named by {what}_env) "
                              "is not set or empty")
        return value
    if file:
        try:
            value = read_secret_file(file).strip()
        except NotASecretFile as e:
            raise SecretError(f"alert sink {sink}: {what}_file {shown_path(file)} {e}") from None
        except OSError as e:
            # a secret given for the file's name (url_file: ${SLACK_WEBHOOK_URL}, meant for url_env) is not shown
            raise SecretMissing(f"alert sink {sink}: cannot read {what}_file {shown_path(file)}: "
                                f"{e.strerror or e}") from None
        except UnicodeDecodeError:  # the bytes are not echoed: they are the secret
            raise SecretError(f"alert sink {sink}: {what}_file {file} is not UTF-8 text") from None
        except ValueError:  # open() refuses a NUL in a path
            raise SecretError(f"alert sink {sink}: cannot read {what}_file {file!r}: the path holds a NUL "
                              "character") from None
        if not value:
            raise SecretMissing(f"alert sink {sink}: {what}_file {file} is empty")
        return value
    return None


def read_url(sink: str, env_name: str | None, file: str | None, environ: Mapping[str, str] | None) -> str | None:
    """Return a sink's URL from its `url_env` or `url_file` (None: neither named); SecretMissing when unset or empty,
    SecretError when it is not an http:// or https:// URL, the check a `url` written in the config gets. The
    message names the variable or file, never the value: such a URL is a secret (Slack's carries its token)."""
    url = read_secret(sink, "url", env_name, file, environ)
    if url is None:
        return None
    try:
        http_url(url)
    except ValueError as e:
        source = f"url_env {env_name}" if env_name else f"url_file {shown_path(file or '')}"
        raise SecretError(f"alert sink {sink}: {source}: {e} (the value read is not shown: a URL from a variable "
                          "or file is kept secret)") from None
    return url


def shown_url(url: str, *, secret: bool) -> str:
    """`url` as a message may show it: its user and password (`<redacted>@`) and each query value (`?token=<redacted>`)
    hidden; with `secret` (a URL read from a variable or file, Slack's: its token is the path) only its scheme, host
    and port, the rest `/<redacted>`."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:  # not a URL urlsplit reads: nothing of it is shown
        return "<redacted>"
    shown = f"{parts.scheme}://{'<redacted>@' if '@' in parts.netloc else ''}{host}"
    if secret:
        return shown + ("/<redacted>" if parts.path.strip("/") or parts.query or parts.fragment else "")
    query = "&".join(f"{pair.partition('=')[0]}=<redacted>" for pair in parts.query.split("&") if pair)
    return shown + parts.path + (f"?{query}" if query else "") + ("#<redacted>" if parts.fragment else "")


def url_credentials(url: str) -> tuple[str, ...]:
    """The credentials a URL carries: the password of its `user:password@` (as written and decoded), the Basic-auth
    credential the HTTP client sends for it (`Authorization: Basic <base64 of user:password>`, which a receiver may
    echo), and the value of each query parameter whose name says it holds one (`?token=...`; the credential headers'
    rule, by the name)."""
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:  # not a URL urlsplit reads (the config check refuses one): nothing of it is known
        return ()
    basic: tuple[str, ...] = ()
    if user or password:  # as httpx builds the header: the decoded user and password, UTF-8
        decoded = f"{unquote(user or '')}:{unquote(password or '')}"
        basic = (unquote(password or ""), base64.b64encode(decoded.encode()).decode())
    pairs = (pair.partition("=") for pair in parts.query.split("&"))
    return tuple(dict.fromkeys(s for s in (password, *basic, *(value for name, _, value in pairs
                                                              if credential_header(name))) if s))


def _spellings(value: str, *, plus: bool = False) -> tuple[str, ...]:
    """`value` (a piece of a URL as written) and the other ways a receiver may echo it: percent-decoded (a `+` a space
    too, with `plus`: a query value), and that percent-encoded, each character but letters, digits and `_.-~` (a path
    echoed as one parameter: `hook%2FT0...`) and but `/` (as a path goes out), and as written percent-encoded once more
    (`%2B` as `%252B`); each also with its `/` escaped as a JSON reply may (`_json_slashes`); the different ones."""
    decoded = unquote_plus(value) if plus else unquote(value)
    spelt = (value, decoded, quote(decoded, safe=""), quote(decoded, safe="/"), quote(value, safe=""),
             quote(value, safe="/"))
    return tuple(dict.fromkeys((*spelt, *map(_json_slashes, spelt))))


def _json_slashes(text: str) -> str:
    """`text` with each `/` as `\\/`, as a JSON reply may spell it (PHP's json_encode does by default)."""
    return text.replace("/", "\\/")


def url_pieces(url: str) -> tuple[tuple[str, str], ...]:
    """The pieces of a secret URL a receiver may echo on their own, each as (what it is, value): its path (without
    its slashes at either end), each path segment holding a digit (an id or token: `T0123ABCD`, not `services`),
    and each query value; each as written, and percent-decoded and percent-encoded where those differ
    (`_spellings`: a receiver may echo a path decoded, or a value encoded), with each `/` escaped as a JSON reply
    may (`\\/`); and the whole URL so escaped. The caller keeps those of MIN_SECRET characters or more, as every
    secret."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL urlsplit reads: the whole of it is the secret
        return ()
    path = parts.path.strip("/")
    out = [("JSON-escaped URL", _json_slashes(url))]
    out += [("URL path", v) for v in _spellings(path)] if path else []
    out += [("URL path segment", v) for seg in path.split("/") if any(c.isdigit() for c in seg)
            for v in _spellings(seg)]
    for pair in parts.query.split("&"):
        value = pair.partition("=")[2]
        out += [("URL query value", v) for v in _spellings(value, plus=True)] if value else []
    return tuple(out)


class Sink(ABC):
    """A destination for notifications (one module per type, listed in :data:`monitor.alerts.sinks.SINKS`).

    ``render`` is pure: notification + send time -> request. Stateful receivers (Alertmanager) also get
    ``refresh`` to re-assert everything still firing.
    """

    type: ClassVar[str]

    def __init__(self, name: str, url: str, timeout: float, secrets: tuple[str, ...] = (), *,
                 url_secret: bool = True):
        self.name = name
        self.url = url
        self.timeout = timeout
        self.url_secret = url_secret  # read from url_env, url_file or a ${VAR}, not written in the config text
        # a secret URL's pieces too: a receiver's error page may echo its path, an id in it or a query value alone
        # and the credentials it carries either way (a Basic-auth header's value is no piece of the URL's text)
        own = (url, *(v for _, v in url_pieces(url)), *url_credentials(url)) if url_secret else url_credentials(url)
        # From MIN_SECRET characters on, as a target's key: the rule `store scrub` applies to the same values
        self._secrets = tuple(sorted(dict.fromkeys(s for s in (*own, *secrets) if len(s) >= MIN_SECRET), key=len,
                                     reverse=True))
        self.too_short = len({s for s in (*own, *secrets) if 0 < len(s) < MIN_SECRET})  # left as they are
        redact.register(*self._secrets)

    @property
    def secrets(self) -> tuple[str, ...]:
        """What this sink redacts, the longest first: its URL and its pieces (`url_pieces`) when that was read from a
        variable or file (else the credentials the URL carries), and the secrets it was built with; `store scrub`
        takes the same out of the store."""
        return self._secrets

    @classmethod
    def problems(cls, cfg: Any, alerts: Any, environ: Mapping[str, str] | None) -> list[SecretError]:
        """What `build` (each sink's classmethod) would refuse for `cfg`: its first problem; a sink with more than one
        secret lists each one's."""
        try:
            cls.build(cfg, alerts, environ)  # type: ignore[attr-defined]
        except SecretError as e:
            return [e]
        return []

    @abstractmethod
    def render(self, n: Notification, now: datetime) -> Rendered:
        """Return the request that delivers `n` at `now`."""

    def refresh(self, firing: list[Notification], now: datetime) -> Rendered | None:
        """Return a request re-asserting the alerts still firing (None: this sink needs none)."""
        return None

    def redact(self, text: str) -> str:
        """Replace this sink's secrets (`secrets`: its URL when that is one) in `text`."""
        for s in self._secrets:  # the longest first (`_secrets` is sorted so): a piece would cut a longer one short
            text = text.replace(s, "<redacted>")
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"  # never the URL or a secret
