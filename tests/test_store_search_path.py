"""A PostgreSQL store URL whose search_path names no schema that exists: every command and `run` say so in one line
naming the config file, `storage.url` and the schema, where `drift` said "the database holds no llm-monitor store
yet" and `run` "InvalidSchemaName: no schema has been selected to create in LINE 2: CREATE TABLE alembic_version"
(after a warning about its migration's child process)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from monitor.errors import StoreError
from monitor.sim import SimServer
from monitor.store import Store
from tests.conftest import write_config
from tests.support.cli_config import ONE, two_targets
from tests.support.inprocess import Cli


def test_a_search_path_naming_no_schema_is_said_naming_file_field_and_schema(
        pg_url: str, tmp_path: Path, steady_sim: SimServer, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "k")
    monkeypatch.setenv("PGPASSWORD", "pg-secret-not-shown")
    cfg = write_config(tmp_path, two_targets(steady_sim), ONE)
    cfg.write_text(cfg.read_text().replace(f"sqlite:///{tmp_path / 'm.db'}",
                                           f"{pg_url}?options=-csearch_path%3Dtenant_typo"))
    cli = Cli(capsys)
    for args in (["drift"], ["probe"], ["baseline", "show"], ["run"]):
        code, out, err = cli(*args, "-c", str(cfg))
        said = f"{cfg}: storage.url: its search_path (tenant_typo) names no schema that exists in database "
        assert code == 2 and said in err and "CREATE SCHEMA tenant_typo" in err, (args, err)
        assert "pg-secret-not-shown" not in out + err and "InvalidSchemaName" not in err and "child" not in err
        assert "holds no llm-monitor store" not in err, (args, err)
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'alembic_version'").fetchone() == (0,)


def test_the_store_itself_names_the_schemas_and_takes_a_path_with_one_that_exists(pg_url: str) -> None:
    store = Store(f"{pg_url}?options=-csearch_path%3Dnope%2Cother")
    try:
        with pytest.raises(StoreError, match=r"its search_path \(nope,other\) names no schema that exists"):
            store.migrate()
    finally:
        store.close()
    store = Store(f"{pg_url}?options=-csearch_path%3Dnope%2Cpublic")  # the first schema that exists is used
    try:
        assert store.migrate()
    finally:
        store.close()
