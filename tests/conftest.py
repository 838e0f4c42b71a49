"""Shared fixtures: the simulated upstream over real loopback HTTP, stores on SQLite and PostgreSQL, and the alert
sender's clock and signing receiver."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.sim import SimServer, builtin_scenario
from monitor.store import Store
from tests.support.delivery import SECRET, Clock
from tests.support.pg_databases import Databases
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


# The fixtures whose database is migrated: theirs is made from a migrated template, made once per worker, instead
# of migrating each (Alembic's ten revisions took about as long as the rest of such a test's set-up).
_MIGRATED = {"store", "pg_store", "sqlite_store"}


@pytest.fixture(scope="session")
def pg_template(pg_reason: str | None, pg_databases: Databases | None) -> Iterator[str | None]:
    """A PostgreSQL database migrated to head, the template of the migrated ones (None: no server)."""
    if pg_reason or pg_databases is None:
        yield None
        return
    import psycopg

    name = f"llm_monitor_tpl_{uuid.uuid4().hex[:10]}"
    dsn = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    template = Store(PG_ADMIN.rsplit("/", 1)[0] + "/" + name)
    template.migrate()
    template.close()  # a template must have no session open when it is copied
    yield name
    pg_databases.close()  # the copies made ahead first: a template being copied cannot be dropped
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store migrated to head, copied for each migrated one."""
    path = tmp_path_factory.mktemp("template") / "store.db"
    template = Store(f"sqlite:///{path}")
    template.migrate()
    template.close()
    return path


def _migrated_file(request: pytest.FixtureRequest, path: Path) -> Path:
    """`path`, a copy of the migrated template when the test's store is migrated (else not there yet)."""
    if _MIGRATED & set(request.fixturenames):
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    return path


@pytest.fixture(scope="session")
def pg_databases(pg_reason: str | None) -> Iterator[Databases | None]:
    """The tests' PostgreSQL databases, each made ahead and dropped behind on a thread (None: no server)."""
    if pg_reason:
        yield None
        return
    databases = Databases(PG_ADMIN.replace("postgresql+psycopg://", "postgresql://"))
    yield databases
    databases.close()


@pytest.fixture
def pg_url(pg_reason: str | None, pg_databases: Databases | None, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh PostgreSQL database for one test (dropped afterwards): empty, or migrated when the test's store is."""
    if pg_reason or pg_databases is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test PostgreSQL: {pg_reason}")
        pytest.skip(pg_reason or "no PostgreSQL")
    template = request.getfixturevalue("pg_template") if _MIGRATED & set(request.fixturenames) else None
    name = pg_databases.take(template)
    yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    pg_databases.drop(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store's URL: every test using it runs against a SQLite file and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{_migrated_file(request, tmp_path / 'store.db')}"
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
def sqlite_store(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    """A migrated SQLite store, for tests that are not about the store itself."""
    yield from _migrated(f"sqlite:///{_migrated_file(request, tmp_path / 'a.db')}")


def _migrated(url: str) -> Iterator[Store]:
    """A store at `url`, migrated (a copy of the migrated template is at head already), for a fixture to yield;
    closed afterwards."""
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
