"""Shared fixtures: the simulated upstream over real loopback HTTP, stores on SQLite and PostgreSQL, and the alert
sender's clock and signing receiver."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.sim import SimServer, builtin_scenario
from monitor.store import Store
from tests.support.delivery import SECRET, Clock
from tests.support.receiver import Receiver

PG_ADMIN = os.environ.get("LLM_MONITOR_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def steady_sim() -> Iterator[SimServer]:
    with SimServer(builtin_scenario("steady")) as sim:
        yield sim


@pytest.fixture(scope="session")
def faults_sim() -> Iterator[SimServer]:
    with SimServer(builtin_scenario("faults")) as sim:
        yield sim


def _pg_available() -> str | None:
    try:
        import psycopg

        dsn = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, connect_timeout=3):
            return None
    except Exception as e:  # any failure means: no server to test against here
        return f"PostgreSQL not reachable at {PG_ADMIN}: {e.__class__.__name__}: {e}"


@pytest.fixture(scope="session")
def pg_reason() -> str | None:
    return _pg_available()


@pytest.fixture
def pg_url(pg_reason: str | None) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    if pg_reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test PostgreSQL: {pg_reason}")
        pytest.skip(pg_reason)
    import psycopg

    name = f"llm_monitor_t_{uuid.uuid4().hex[:10]}"
    dsn = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    yield url
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store's URL: every test using it runs against a SQLite file and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """The contract-suite store: every test using it runs against SQLite and PostgreSQL."""
    yield from _migrated(store_url)


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    """A migrated PostgreSQL store, for tests of what only PostgreSQL does (the leader lock's sessions)."""
    yield from _migrated(pg_url)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """A migrated SQLite store, for tests that are not about the store itself."""
    yield from _migrated(f"sqlite:///{tmp_path / 'a.db'}")


def _migrated(url: str) -> Iterator[Store]:
    """A store at `url`, migrated, for a fixture to yield; closed afterwards."""
    s = Store(url)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def clock() -> Clock:
    """The alert tests' clock: it stands still until the test moves it."""
    return Clock()


@pytest.fixture
def rx(clock: Clock) -> Iterator[Receiver]:
    """A receiver on loopback that checks Standard Webhooks signatures made with `SECRET`, on the test's clock."""
    with Receiver(secret=SECRET, now=lambda: clock().timestamp()) as r:
        yield r


def write_config(folder: Path, targets: str, probes: str, *, extra: str = "") -> Path:
    """Write monitor.yaml (targets YAML list body) and probes/p.yaml; return the config path."""
    (folder / "probes").mkdir(exist_ok=True)
    (folder / "probes" / "p.yaml").write_text(probes)
    cfg = folder / "monitor.yaml"
    cfg.write_text(f"targets:\n{targets}\nprobes: [./probes]\n"
                   f"storage: {{url: \"sqlite:///{folder / 'm.db'}\"}}\nhttp: {{listen: \"127.0.0.1:0\"}}\n{extra}")
    return cfg
