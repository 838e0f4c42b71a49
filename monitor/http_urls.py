"""Whether a text is an http:// or https:// URL httpx can send to: the check of a target's `base_url` and of an alert
sink's URL, written in the config or read from a variable or file.

What httpx cannot send failed later, and badly: a line break read with a URL (a Kubernetes Secret or ConfigMap value
ending in a newline, interpolated as `${VAR}`), a port that is no number or an IPv6 host without its `]` passed
`check-config`, then every call raised httpx's InvalidURL (a traceback from `probe`, a delivery loop that logged one
per try while the outbox showed no attempt). Checked with the standard library only: `check-config` loads no HTTP
client."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from urllib.parse import urlsplit

_START = re.compile(r"^https?://[^/\s]+")
_IPV4_STYLE = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$")  # what httpx takes for an IPv4 address


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
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises for a port that is not a number from 0 to 65535
    except ValueError as e:
        return ("the port must be a number from 0 to 65535" if "port" in str(e).lower()
                else "must be an http:// or https:// URL: its host cannot be read")
    return _host_problem(parts.hostname or "")


def _host_problem(host: str) -> str | None:
    """Why httpx refuses `host` as it sends (None: it does not): four dotted numbers that are no IPv4 address, or an
    `xn--` label that is no IDNA A-label (an IDN name written as itself, `bücher.example`, is encoded by httpx)."""
    if _IPV4_STYLE.match(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return "its host is no IPv4 address: four numbers from 0 to 255, without leading zeros"
        return None
    if any(label.startswith("xn--") and not _a_label(label) for label in host.lower().split(".")):
        return "its host has an xn-- label that is no valid IDNA (punycode) name"
    return None


def _a_label(label: str) -> bool:
    """Whether an `xn--` label decodes to a name httpx's IDNA check could accept: punycode that decodes, to something
    not plain ASCII, without control characters. Looser than IDNA 2008 (what httpx checks), never stricter: the
    standard library's `idna` codec is IDNA 2003, which refuses names 2008 allows (`straße`, xn--strae-oqa)."""
    try:
        name = label[4:].encode("ascii").decode("punycode")
    except (UnicodeError, ValueError):
        return False
    return bool(name) and not name.isascii() and not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name)
