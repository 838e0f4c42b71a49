"""Whether a store URL's port is one: checked where the URL is given (storage.url, `store copy --from/--to`).

SQLAlchemy reads the port with int() when it parses the URL, and PostgreSQL's driver takes what that gives: a port
that is no number (`:abc`, two hosts `h1:5432,h2:5433`) was a ValueError traceback out of `run` and `store copy`,
one past 65535 or of 0 passed `check-config` and failed each connection deep in libpq. Read as SQLAlchemy's URL
grammar reads it (a password may hold `/` or `:`), without importing SQLAlchemy: `check-config` loads no store."""

from __future__ import annotations

import re

# SQLAlchemy's URL pattern (sqlalchemy.engine.url._parse_url), up to the port
_URL = re.compile(r"[\w+]+://(?:[^:/]*(?::[^@]*)?@)?(?:\[[^/?]+\]|[^/:?]+)?(?::(?P<port>[^/?]*))?")
MAX_SHOWN_PORT = 20  # characters of a refused port shown


def port_problem(url: str) -> str | None:
    """Why the port of the database URL `url` is no TCP port (None: it has none, or a number from 1 to 65535)."""
    m = _URL.match(url)
    port = m.group("port") if m else None
    if not port:  # none (`postgresql://u@h/db`, a SQLite file), or `h:/db`: libpq's default
        return None
    if len(port) <= 5 and port.isascii() and port.isdigit() and 1 <= int(port) <= 65535:
        return None
    shown = port if len(port) <= MAX_SHOWN_PORT else port[:MAX_SHOWN_PORT] + "..."
    return f"the port must be a number from 1 to 65535, not {shown!r}"
