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


def _loaded(imports: str, names: list[str]) -> list[str]:
    code = f"import sys; import {imports}; print([m for m in {names!r} if sys.modules.get(m) is not None])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - our own subprocess prints a list of names


def test_importing_httpx_does_not_load_its_command_line_client() -> None:
    """httpx's `__init__` imports `httpx._main`, its command-line client, which loads rich's console, pygments'
    lexers and click: 3 MB resident in every daemon process, which never runs that client. The daemon's start path
    (the run command) loads rich for its own console, but neither path loads the client or pygments."""
    assert _loaded("monitor.app, monitor.config", ["httpx._main", "pygments", "rich"]) == []
    assert _loaded("monitor.app, monitor.config, monitor.commands.run, monitor.cli", ["httpx._main", "pygments"]) == []
    assert _loaded("monitor, httpx", ["httpx"]) == ["httpx"]  # httpx itself still imports, its `main` a stub


def test_importing_uvicorn_does_not_load_its_command_line_entry_point() -> None:
    """uvicorn's `__init__` imports `uvicorn.main`, its command line (click, the reloader and worker supervisors):
    1.4 MB resident in every daemon process, which serves with `uvicorn.Server` only. `uvicorn.run` and
    `uvicorn.main` still work, loading the real module when called (or when another of its names is asked for)."""
    unused = ["uvicorn.supervisors", "click"]
    assert _loaded("monitor.app, monitor.config, monitor.commands.run, monitor.cli, monitor.sim.server", unused) == []
    code = ("import sys, monitor, uvicorn, uvicorn.server; from monitor.http import Server; "
            "print(uvicorn.Server is uvicorn.server.Server, issubclass(Server, uvicorn.Server), 'click' in sys.modules); "
            "from uvicorn.main import STARTUP_FAILURE; import uvicorn.main; "
            "print(STARTUP_FAILURE, 'click' in sys.modules, callable(uvicorn.main), callable(uvicorn.run))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-2:] == ["True True False", "3 True True True"]
