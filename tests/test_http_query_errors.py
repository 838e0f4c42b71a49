"""The JSON API's 400 answers name the query parameter and show its value, cut short when it is long (as `limit`'s
always was): a cursor or state of megabytes pasted into a URL came back whole in the error, and in the logs of
whatever proxy or client printed it."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from starlette.testclient import TestClient

from monitor.store import Store
from monitor.store.drift_repo import DriftRepository
from tests.test_http_paging import app
from tests.test_http_paging import drift_routes as routes

LONG = "x" * 5000


@pytest.fixture
def api(sqlite_store: Store) -> Iterator[TestClient]:
    with app(sqlite_store, extra_routes=routes(SimpleNamespace(repo=DriftRepository(sqlite_store.engine)))) as client:
        yield client


@pytest.mark.parametrize(("path", "name"), [("/api/observations", "limit"), ("/api/observations", "since"),
                                            ("/api/observations", "until"), ("/api/observations", "cursor"),
                                            ("/api/drift", "limit"), ("/api/drift", "cursor"),
                                            ("/api/drift", "state")])
def test_a_long_value_is_cut_short_in_the_error_naming_its_parameter(api: TestClient, path: str, name: str) -> None:
    r = api.get(path, params={name: LONG})
    error = r.json()["error"]
    assert r.status_code == 400 and error.startswith(f"{name}: "), error[:300]
    assert len(error) < 400 and "'xxxx" in error and "(5,000 characters)" in error, error[:500]


@pytest.mark.parametrize("path", ["/api/observations", "/api/drift"])
@pytest.mark.parametrize("value", ["１２", "1_0", " 5", "٣"])
def test_limit_takes_ascii_digits_only(api: TestClient, path: str, value: str) -> None:
    """Found by review23: int() took full-width and other Unicode digits ('１２' as 12), '1_0' and spaces."""
    r = api.get(path, params={"limit": value})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == f"limit: not a whole number (digits 0-9): {value!r}"
    assert api.get(path, params={"limit": "12"}).status_code == 200
