"""Times read back from PostgreSQL are UTC whatever the session's TimeZone: a server, database or role default of
'America/New_York' made psycopg hand back -05:00 times, which `export` and `baseline show --json` wrote as such."""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from monitor.alerts.config import AlertsConfig
from monitor.alerts.events import AlertEvent
from monitor.alerts.outbox import Outbox
from monitor.alerts.policy import Policy
from monitor.store import Run, Store
from monitor.store.drift_repo import DriftRepository
from tests.conftest import PG_ADMIN
from tests.support.inprocess import Cli
from tests.test_store_contract import T0, obs


def utc(at: object) -> bool:
    return getattr(at, "tzinfo", None) is UTC


def test_times_read_from_a_new_york_session_are_utc(pg_url: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    setup = Store(pg_url)
    setup.migrate()
    setup.close()
    with psycopg.connect(PG_ADMIN.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{make_url(pg_url).database}" SET timezone = \'America/New_York\'')
    store = Store(pg_url)
    with store.engine.connect() as c:
        assert c.exec_driver_sql("SHOW timezone").scalar() == "America/New_York"  # the session this test is about
    store.save_observation(obs(0, canary="c1"))
    store.save_run(Run(id="r1", canary="c1", target="t", started_at=T0, finished_at=T0 + timedelta(seconds=2),
                       status="done"))
    repo = DriftRepository(store.engine)
    repo.save_baseline("c1", "t", {"version": 1, "count": 1, "ready": True}, source="first_n", note="", now=T0)
    outbox = Outbox(store.engine)
    policy = Policy(AlertsConfig.model_validate({"sinks": [{"name": "hook", "type": "webhook", "url": "http://x"}]}))
    outbox.add(policy.notifications(AlertEvent(kind="canary.down", canary="c1", target="t", signal="health"), T0))
    read = {"observation": store.observations()[0].started_at, "run started": store.runs()[0].started_at,
            "run finished": store.runs()[0].finished_at, "baseline": repo.baselines()[0]["created_at"],
            "last success": store.last_success([("c1", "t")])[("c1", "t")],
            "outbox": outbox.list_pending()[0].created_at,
            "iterated": next(store.iter_observations()).started_at}
    store.close()
    assert {what: at for what, at in read.items() if not utc(at)} == {}
    assert read["observation"] == obs(0).started_at
    cfg = tmp_path / "monitor.yaml"
    (tmp_path / "probes").mkdir()
    (tmp_path / "probes" / "p.yaml").write_text("canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n")
    cfg.write_text("targets:\n  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}\n"
                   f"probes: [./probes]\nstorage: {{url: \"{pg_url}\"}}\n")
    cli = Cli(capsys)
    code, out, err = cli("export", "-c", str(cfg))
    assert code == 0 and json.loads(out)["started_at"].endswith("+00:00"), out + err
    code, out, err = cli("baseline", "show", "-c", str(cfg), "--json")
    assert code == 0 and json.loads(out)["created_at"].endswith("+00:00"), out + err
