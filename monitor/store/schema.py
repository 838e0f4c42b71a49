"""Schema versions: Alembic migrations shipped in the package, applied on start-up under a lock."""

from __future__ import annotations

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, text

from monitor.errors import StoreError

_LOCK_ID = 7_166_001  # pg_advisory_lock key: replicas starting together migrate one at a time


def _alembic() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", "monitor.store:migrations")
    return cfg


def head_revision() -> str:
    """Return the newest schema revision this build knows."""
    head = ScriptDirectory.from_config(_alembic()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def migrate(engine: Engine) -> str:
    """Bring the schema to this build's head; refuse a database whose schema is newer."""
    cfg = _alembic()
    script = ScriptDirectory.from_config(cfg)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
        current = MigrationContext.configure(conn).get_current_revision()
        if current is not None and not _known(script, current):
            raise StoreError(f"the database schema is at revision {current}, newer than this llm-monitor "
                             f"knows (head {script.get_current_head()}): upgrade llm-monitor")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return head_revision()
