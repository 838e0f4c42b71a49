"""Whether a text is an http:// or https:// URL httpx can send to: the check of a target's `base_url` and of an alert
sink's URL, written in the config or read from a variable or file.

What httpx cannot send failed later, and badly: a line break read with a URL (a Kubernetes Secret or ConfigMap value
ending in a newline, interpolated as `${VAR}`), a port that is no number or an IPv6 host without its `]` passed
`check-config`, then every call raised httpx's InvalidURL (a traceback from `probe`, a delivery loop that logged one
per try while the outbox showed no attempt). Checked with the standard library only: `check-config` loads no HTTP
client."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_START = re.compile(r"^https?://[^/\s]+")


def url_problem(url: str) -> str | None:
    """Why `url` is no http:// or https:// URL httpx can send to (None: it is one); never quotes it, as a URL read
    from a variable or file is a secret."""
    if not _START.match(url):
        return "must be an http:// or https:// URL"
    bad = next((n for n, ch in enumerate(url, 1) if ch < " " or ch == "\x7f"), None)
    if bad is not None:
        return f"must be an http:// or https:// URL on one line: it holds a control character (character {bad} of " \
               f"{len(url)})"
    try:
        urlsplit(url).port  # noqa: B018  # raises for a port that is not a number from 0 to 65535
    except ValueError as e:
        return ("the port must be a number from 0 to 65535" if "port" in str(e).lower()
                else "must be an http:// or https:// URL: its host cannot be read")
    return None
