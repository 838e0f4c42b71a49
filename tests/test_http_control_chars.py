"""The JSON API writes stored text (completions, upstream errors, drift notes) with its DEL and C1 control characters
escaped (`\\u009b`), as the commands' JSON lines do: starlette's JSONResponse writes non-ASCII raw, and a C1 CSI in a
completion reached the terminal of whoever ran `curl .../api/observations` as a control sequence."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from starlette.testclient import TestClient

from monitor.store import Store
from monitor.store.drift_repo import DriftRepository
from tests.test_http_paging import app
from tests.test_http_paging import drift_routes as routes
from tests.test_store_contract import obs
from tests.test_store_drift_contract import event

HOSTILE = "a\x1b[2J\x9b31mb\x85c\x7fd\x90e\x07f"  # ESC CSI, C1 CSI, NEL, DEL, DCS, BEL
RAW = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # what must not be written: a JSON body holds no raw control at all


@pytest.fixture
def api(sqlite_store: Store) -> Iterator[TestClient]:
    with app(sqlite_store, extra_routes=routes(SimpleNamespace(repo=DriftRepository(sqlite_store.engine)))) as client:
        yield client


def test_stored_text_reaches_a_json_answer_escaped_and_whole(api: TestClient, sqlite_store: Store) -> None:
    o = obs(0)
    sqlite_store.save_observation(dataclasses.replace(o, call=dataclasses.replace(
        o.call, text=HOSTILE, error_message=f"HTTP 500: {HOSTILE}")))
    DriftRepository(sqlite_store.engine).save_events([event(note=HOSTILE, evidence={"diff": HOSTILE})])
    for path in ("/api/observations", "/api/drift", "/api/drift/ev-refused"):
        r = api.get(path)
        assert r.status_code == 200 and not RAW.search(r.text), (path, [m.group() for m in RAW.finditer(r.text)])
        assert "\\u009b" in r.text and "\\u007f" in r.text, path
    row = api.get("/api/observations").json()[0]
    assert row["text"] == HOSTILE and row["error_message"] == f"HTTP 500: {HOSTILE}"  # not lost
    assert json.loads(api.get("/api/drift/ev-refused").text)["note"] == HOSTILE
