"""Schema versions: Alembic migrations shipped in the package, applied on start-up under a lock.

Alembic is imported only when the database is not already at this build's head: a restart on an up-to-date
schema reads one row and spares the daemon Alembic's ~11 MB of resident memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from monitor.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

HEAD = "0003"  # the newest file in migrations/versions; a test checks it against Alembic's own head
_LOCK_ID = 7_166_001  # pg_advisory_lock key: replicas starting together migrate one at a time
_VERSION_TABLE = "alembic_version"


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
    if not inspect(conn).has_table(_VERSION_TABLE):
        return None
    rows = conn.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalars().all()
    return rows[0] if len(rows) == 1 else None


def _known(script: ScriptDirectory, revision: str) -> bool:
    from alembic.util.exc import CommandError

    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def migrate(engine: Engine) -> str:
    """Bring the schema to this build's head; refuse a database whose schema is newer."""
    with engine.connect() as conn:
        if _stamped(conn) == HEAD:
            return HEAD
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = _alembic()
    script = ScriptDirectory.from_config(cfg)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
        current = _stamped(conn)
        if current is not None and not _known(script, current):
            raise StoreError(f"the database schema is at revision {current}, newer than this llm-monitor "
                             f"knows (head {script.get_current_head()}): upgrade llm-monitor")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return head_revision()
