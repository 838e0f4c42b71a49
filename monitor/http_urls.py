"""Whether a text is an http:// or https:// URL httpx can send to: the check of a target's `base_url` and of an alert
sink's URL, written in the config or read from a variable or file.

What httpx cannot send failed later, and badly: a line break read with a URL (a Kubernetes Secret or ConfigMap value
ending in a newline, interpolated as `${VAR}`), a port that is no number or an IPv6 host without its `]` passed
`check-config`, then every call raised httpx's InvalidURL (a traceback from `probe`, a delivery loop that logged one
per try while the outbox showed no attempt). Checked with the standard library, and the `idna` package httpx checks
a host with (imported only for a host that needs it): `check-config` loads no HTTP client."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote, urlsplit

from monitor.one_line import one_line_problem

# The paths a provider appends to a target's base_url (OpenAI-compatible, and Anthropic's /messages): a base_url
# ending in one was pasted from a request (config check), a 404's URL ending in one names the base it went to.
API_ENDPOINTS = ("/chat/completions", "/completions", "/responses", "/embeddings", "/messages")
_START = re.compile(r"^https?://[^/\s]+")
_IPV4_STYLE = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$")  # what httpx takes for an IPv4 address
_HTTPX_HOST_SAFE = "!$&'()*+,;=" + '"`{}%|\\'  # what httpx leaves unquoted in an ASCII host (sub-delims, WHATWG's)


def url_problem(url: str) -> str | None:
    """Why `url` is no http:// or https:// URL httpx can send to (None: it is one); never quotes it, as a URL read
    from a variable or file is a secret."""
    if not _START.match(url):
        return "must be an http:// or https:// URL"
    # C1 too: no URL code point (WHATWG's start at U+00A0); a bidi override or zero-width space is one, but httpx sent
    # either percent-encoded: the URL read was not the URL called
    problem = one_line_problem(url, "must be an http:// or https:// URL on one line")
    if problem is not None:
        return problem
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises for a port that is not a number from 0 to 65535
    except ValueError as e:
        return ("the port must be a number from 0 to 65535" if "port" in str(e).lower()
                else "must be an http:// or https:// URL: its host cannot be read")
    return _host_problem(parts.hostname or "")


def _host_problem(host: str) -> str | None:
    """Why httpx refuses `host` (as urlsplit reads it: lower case) as it sends (None: it does not), checked as httpx
    checks it: four dotted numbers must be an IPv4 address; a name in Unicode (`bücher.example`) must be one IDNA
    encodes; and a name that then starts with `xn--` must be one IDNA decodes, every label of it (httpx decodes the
    whole host then, and only then: `api.xn--ls8h.example` is sent, `xn--ls8h.example`, the emoji name of IDNA 2003
    that IDNA 2008 refuses, is not)."""
    if _IPV4_STYLE.match(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return "its host is no IPv4 address: four numbers from 0 to 255, without leading zeros"
        return None
    if host.isascii():
        name = quote(host, safe=_HTTPX_HOST_SAFE)  # as httpx writes an ASCII host
    else:
        import idna  # httpx's IDNA 2008 check; the standard library's `idna` codec is IDNA 2003

        try:
            name = idna.encode(host).decode("ascii")
        except (UnicodeError, ValueError):  # idna.IDNAError is a UnicodeError
            return "its host is no name IDNA can encode (IDNA 2008)"
    if not name.startswith("xn--"):
        return None
    import idna

    try:
        idna.decode(name)
    except (UnicodeError, ValueError):
        return "its host starts with an xn-- label, and is then no valid IDNA (punycode) name"
    return None
