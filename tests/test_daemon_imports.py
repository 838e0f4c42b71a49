"""What the daemon's modules load as they are imported: the resident memory the README's budget counts (150 MB with
1,000 pairs, `benchmarks/measurement.py --rss-only`) starts with the imports, and a module that pulls in what only
some set-ups use costs every process."""

from __future__ import annotations

import subprocess
import sys

# Loaded only where used: PostgreSQL's dialect (2.5 MB) with a PostgreSQL store, socksio with a SOCKS proxy.
NOT_AT_IMPORT = ["sqlalchemy.dialects.postgresql", "socksio"]


def test_importing_the_daemon_loads_no_dialect_or_proxy_library_it_may_not_use() -> None:
    """A partial index declared on the outbox table with `postgresql_where` and `sqlite_where` loaded both dialects
    at import, 3.3 MB in every process, which took the 1,000-pair daemon past its 150 MB budget."""
    code = ("import sys; import monitor.app, monitor.config, monitor.cli; "
            f"print([m for m in {NOT_AT_IMPORT!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
