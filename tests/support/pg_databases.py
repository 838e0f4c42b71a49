"""Fresh PostgreSQL databases for tests, each made before the test that takes it asks and dropped after it, on a
thread of their own: CREATE DATABASE and DROP DATABASE wait on the server's disk (a second each on a busy machine,
most of a short store test's time), which overlaps with the tests running instead of adding to them. Each test
still gets a database no other test used."""

from __future__ import annotations

import concurrent.futures
import contextlib
import uuid
from concurrent.futures import Future


class Databases:
    """Databases on the server of `admin_dsn` (a libpq URL), one made ahead per template asked for (None: empty)."""

    def __init__(self, admin_dsn: str):
        self.admin_dsn = admin_dsn
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pg-databases")
        self._ahead: dict[str | None, Future[str]] = {}

    def _execute(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def _create(self, template: str | None) -> str:
        name = f"llm_monitor_t_{uuid.uuid4().hex[:10]}"
        self._execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    def take(self, template: str | None = None) -> str:
        """Return the name of a new database (a copy of `template`, else empty), and start making the next one."""
        made = self._ahead.pop(template, None) or self._thread.submit(self._create, template)
        name = made.result()
        self._ahead[template] = self._thread.submit(self._create, template)
        return name

    def drop(self, name: str) -> None:
        """Drop `name` (its sessions ended) after the calls already queued."""
        self._thread.submit(self._execute, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        """Drop the databases made ahead, and wait for every drop (again: nothing more)."""
        for made in self._ahead.values():
            with contextlib.suppress(Exception):  # one that could not be made needs no drop
                self.drop(made.result())
        self._ahead.clear()
        self._thread.shutdown(wait=True)
