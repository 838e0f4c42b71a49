"""Schema versions: Alembic migrations shipped in the package, applied on start-up under a lock.

Alembic is imported only when the database is not already at this build's head: a restart on an up-to-date
schema reads one row and spares the daemon Alembic's ~11 MB of resident memory. A daemon that does have to
migrate does it in a child process (`migrate_in_child`), so the memory Alembic takes goes back when it exits.
Run as ``python -m monitor.store.schema`` with the database URL on stdin, this module is that child.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from monitor.errors import StoreError
from monitor.store.engine import unbounded
from monitor.store.lock_keys import MIGRATION_LOCK_ID, schema_key

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

HEAD = "0013"  # the newest file in migrations/versions; a test checks it against Alembic's own head
VERSION_TABLE = "alembic_version"
log = logging.getLogger(__name__)


def _alembic() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", "monitor.store:migrations")
    return cfg


def head_revision() -> str:
    """Return the newest schema revision this build knows, as Alembic computes it from the migration files."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return _stamped(conn)


def _stamped(conn: Connection) -> str | None:
    """Return the revision recorded in the database, without Alembic."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return rows[0] if len(rows) == 1 else None


def _known(script: ScriptDirectory, revision: str) -> bool:
    from alembic.util.exc import CommandError

    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def migrate(engine: Engine) -> str:
    """Bring the schema to this build's head; refuse a database whose schema is newer."""
    if current_revision(engine) == HEAD:
        return HEAD
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = _alembic()
    script = ScriptDirectory.from_config(cfg)
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":  # Python's sqlite3 opens no transaction before DDL by itself: without
            # one, a start killed between a migration's steps kept the first ones with the schema unstamped, and
            # every later start failed on them; IMMEDIATE also keeps another process's migration waiting its turn
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        unbounded(conn)  # a migration may rightly take long, and waits for another replica's
        migration_lock(conn)
        current = _stamped(conn)
        if current is not None and not _known(script, current):
            raise StoreError(f"the database schema is at revision {current}, newer than this llm-monitor "
                             f"knows (head {script.get_current_head()}): upgrade llm-monitor")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return head_revision()


# The schema's own lock, pg_advisory_xact_lock(MIGRATION_LOCK_ID, <its schema key>), as the leader lock is one per
# schema: deployments in one database but different schemas migrate side by side. Versions before locked the whole
# database, pg_advisory_xact_lock(MIGRATION_LOCK_ID) (the "old key"); during a rolling update one may be migrating any
# schema, this one perhaps. So a migration takes the old key too, shared: migrations of this version share it, and
# one of an older version, which takes it exclusively, waits for them and they for it. Shared key first, then the
# schema's, always in that order: no two migrations wait for each other.
OLD_KEY_SHARED = text("SELECT pg_advisory_xact_lock_shared(CAST(:k AS bigint))")
SCHEMA_KEY = text("SELECT pg_advisory_xact_lock(CAST(:k AS integer), CAST(:k2 AS integer))")


def migration_lock(conn: Connection) -> None:
    """Wait for the schema's migration lock, held until `conn`'s transaction ends (PostgreSQL; SQLite's BEGIN
    IMMEDIATE is its own): replicas of one deployment starting together migrate one at a time."""
    if conn.dialect.name == "postgresql":
        schema = conn.execute(text("SELECT current_schema()")).scalar_one_or_none() or ""
        conn.execute(OLD_KEY_SHARED, {"k": MIGRATION_LOCK_ID})
        conn.execute(SCHEMA_KEY, {"k": MIGRATION_LOCK_ID, "k2": schema_key(schema)})


def require_head(engine: Engine) -> str:
    """For commands that use a store another process runs (the CLI): the schema must be this build's, and is
    never changed. Upgrading it under a running daemon of an older version would stop that version from
    starting again (it refuses a newer schema); the daemon of this version upgrades it when it starts."""
    current = current_revision(engine)
    if current == HEAD:
        return HEAD
    if current is None:
        raise StoreError("the database holds no llm-monitor store yet (llm-monitor run or probe creates it)")
    from alembic.script import ScriptDirectory

    if not _known(ScriptDirectory.from_config(_alembic()), current):
        raise StoreError(f"the database schema is at revision {current}, newer than this llm-monitor "
                         f"knows (head {HEAD}): upgrade llm-monitor")
    raise StoreError(f"the database schema is at revision {current}, older than this llm-monitor's ({HEAD}): "
                     "start this version's daemon (llm-monitor run), or run llm-monitor probe once, to upgrade it; "
                     "this command does not change the schema")


def in_memory(engine: Engine) -> bool:
    """True for a SQLite database that lives in this process only (another process would see another one)."""
    return engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")


_REFUSED = 3  # the child's exit status for a StoreError (1 and 2 are Python's own failures)


def migrate_in_child(engine: Engine) -> str:
    """`migrate` in a child process (Alembic's memory is returned when it exits); in-process where it must be.

    The URL goes through stdin, not the command line, where other users could read a password. The child is
    only a way to save memory: where it cannot run (no usable interpreter, the package not importable by it),
    the migration runs here instead. A refusal (a schema newer than this build) is final either way.
    """
    if in_memory(engine):
        return migrate(engine)
    if current_revision(engine) == HEAD:
        return HEAD
    url = engine.url.render_as_string(hide_password=False)
    try:  # -P: the child imports monitor from where the parent did, never from the working directory
        done = subprocess.run([sys.executable, "-P", "-m", "monitor.store.schema"], input=url, capture_output=True,
                              text=True)
    except OSError as e:
        log.warning("cannot start a process to migrate the schema (%s); migrating in this one", e)
        return migrate(engine)
    if done.returncode == _REFUSED:  # the child's own StoreError, already worded for the user
        raise StoreError((done.stderr.strip().splitlines() or ["the schema migration was refused"])[-1])
    if done.returncode == 0 and current_revision(engine) == HEAD:
        return HEAD
    log.warning("the schema migration in a child process ended with exit status %s; migrating in this one",
                done.returncode)
    return migrate(engine)


def _child() -> int:
    from monitor.store.engine import make_engine

    engine = make_engine(sys.stdin.read().strip())
    try:
        print(migrate(engine))
    except StoreError as e:
        print(e, file=sys.stderr)
        return _REFUSED  # anything else exits 1, and the parent migrates in its own process, which reports it
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(_child())
