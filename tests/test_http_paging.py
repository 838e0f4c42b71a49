"""Paging through `/api/observations` (and `/api/drift`) with cursors, as a client does: follow `Link: <...>; rel="next"` (or send
`X-Next-Cursor` back as `?cursor=`) until a page comes without one. The daemon's ASGI app over a real store
(SQLite and PostgreSQL); `tests/test_cli_daemon.py` follows a link from a running daemon."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from monitor.configured import Configured
from monitor.errors import shown
from monitor.http import build_http_app, drift_routes
from monitor.store import Store
from monitor.store.drift_repo import DriftRepository
from tests.test_store_contract import T0, newest_first, tied
from tests.test_store_drift_contract import event


def app(store: Store, **kw: Any) -> TestClient:
    daemon = SimpleNamespace(store=store, registry=CollectorRegistry(),
                             config=SimpleNamespace(web=SimpleNamespace(basic_auth_users={})))
    return TestClient(build_http_app(daemon, **kw))  # type: ignore[arg-type]


@pytest.fixture
def api(store: Store) -> Iterator[TestClient]:
    with app(store) as client:
        yield client


def follow(api: TestClient, url: str) -> tuple[list[str], list[str]]:
    """Every page from `url` on by its next links: the ids in order, and each next link."""
    ids: list[str] = []
    links: list[str] = []
    while True:
        r = api.get(url)
        assert r.status_code == 200, r.text
        page = r.json()
        assert isinstance(page, list)  # the body stays the list it always was
        ids += [o["id"] for o in page]
        if "next" not in r.links:
            assert "x-next-cursor" not in r.headers
            return ids, links
        url = r.links["next"]["url"]
        assert parse_qs(urlsplit(url).query)["cursor"] == [r.headers["x-next-cursor"]]
        links.append(url)


def test_following_next_links_reads_every_row_once_through_exact_ties(api: TestClient, store: Store) -> None:
    rows = tied(40)
    for o in rows:
        store.save_observation(o)
    expected = newest_first(rows)
    for limit in (1, 3, 4, 39, 40, 41):
        ids, links = follow(api, f"/api/observations?limit={limit}")
        assert ids == expected, limit
        assert len(links) == -(-40 // limit) - 1  # no link on the last page, even when it is a full one
        assert all(link.startswith("http://testserver/api/observations?") for link in links)  # absolute, as GitHub's
    # the filters ride along in every link: one canary and target, a time window, the limit
    since, until = T0 - timedelta(seconds=9), T0 - timedelta(seconds=1)
    url = f"/api/observations?canary=a&target=t&since={since.isoformat()}&until={until.isoformat()}&limit=2"
    ids, links = follow(api, url)  # the times pasted unencoded: their '+' reads as ' ', and the API allows for it
    assert ids == newest_first([o for o in rows if o.canary == "a" and since <= o.started_at < until])
    assert len(links) >= 3
    for link in links:
        params = parse_qs(urlsplit(link).query)
        del params["cursor"]
        assert params == parse_qs(urlsplit(url).query)


def test_a_cursor_from_x_next_cursor_continues_where_the_page_ended(api: TestClient, store: Store) -> None:
    rows = tied(7)
    for o in rows:
        store.save_observation(o)
    first = api.get("/api/observations", params={"limit": 5})
    rest = api.get("/api/observations", params={"limit": 5, "cursor": first.headers["x-next-cursor"]})
    assert [o["id"] for o in first.json() + rest.json()] == newest_first(rows)
    assert "link" not in rest.headers
    single = api.get("/api/observations", params={"cursor": first.headers["x-next-cursor"], "limit": 1})
    assert single.json() == rest.json()[:1] and "link" in single.headers
    assert api.get("/api/observations", params={"canary": "nobody"}).headers.get("link") is None


def forge(fields: object) -> str:
    """A cursor in the format the API makes, with a digest that matches, around any JSON."""
    raw = json.dumps(fields).encode()
    return base64.urlsafe_b64encode(raw + hashlib.sha256(b"llm-monitor cursor\0" + raw).digest()[:6]).decode()


def test_a_malformed_or_altered_cursor_is_a_400_naming_it(api: TestClient, store: Store) -> None:
    for o in tied(3):
        store.save_observation(o)
    good = api.get("/api/observations", params={"limit": 1}).headers["x-next-cursor"]
    flipped = good[:10] + ("A" if good[10] != "A" else "B") + good[11:]
    micros = 1_793_534_400_000_000
    for bad in ("abc", "yesterday", good[:-3], good + "AAAA", flipped, good.replace("-", "+") + "+/", "x" * 401,
                base64.urlsafe_b64encode(b"[1, 0, 0, \"id\"]").decode(),  # no digest
                forge([2, micros, 0, "id"]), forge([1, micros, -1, "id"]), forge([1, micros, True, "id"]),
                forge([1, float(micros), 0, "id"]), forge([1, micros, 0, ""]), forge([1, micros, 0, "i" * 33]),
                forge([1, 10**20, 0, "id"]), forge({"t": micros}), forge([1, micros, 0])):
        r = api.get("/api/observations", params={"cursor": bad})
        assert (r.status_code, r.json()) == (400, {"error": f"cursor: not a cursor this API gave: {shown(bad)} (take the "
                                                            "next page's from the Link or X-Next-Cursor header of "
                                                            "the page before)"}), bad
    assert api.get("/api/observations", params={"cursor": forge([1, micros, 0, "id"])}).status_code == 200
    assert api.get("/api/observations?cursor=").status_code == 200  # empty: absent, as for the other parameters


@pytest.fixture
def drift_api(store: Store) -> Iterator[TestClient]:
    with app(store, extra_routes=drift_routes(SimpleNamespace(repo=DriftRepository(store.engine)))) as client:
        yield client


def test_drift_events_page_by_next_links_too_and_take_no_observation_cursor(drift_api: TestClient,
                                                                            store: Store) -> None:
    opened = ["2026-11-01T12:00:00+00:00"] * 4 + ["2026-11-01T11:00:00.5+00:00"] * 3
    DriftRepository(store.engine).save_events([event(f"s{i}", id=f"ev-{i}", opened_at=t, state="open" if i % 2 else
                                                     "resolved") for i, t in enumerate(opened)])
    everything = [e["id"] for e in drift_api.get("/api/drift").json()]
    assert sorted(everything) == [f"ev-{i}" for i in range(7)]
    for limit in (1, 2, 4, 6, 7):
        ids, links = follow(drift_api, f"/api/drift?limit={limit}")
        assert ids == everything, limit
        assert len(links) == -(-7 // limit) - 1
    ids, links = follow(drift_api, "/api/drift?state=open&limit=1")
    assert ids == [i for i in everything if int(i[-1]) % 2] and all("state=open" in link for link in links)
    for o in tied(3):
        store.save_observation(o)
    theirs = drift_api.get("/api/observations", params={"limit": 1}).headers["x-next-cursor"]
    ours = drift_api.get("/api/drift", params={"limit": 1}).headers["x-next-cursor"]
    assert drift_api.get("/api/drift", params={"cursor": theirs}).status_code == 400
    assert drift_api.get("/api/observations", params={"cursor": ours}).status_code == 400


def test_drift_events_say_whether_their_pair_is_configured(store: Store) -> None:
    """As `drift --json` does: an open event of a pair the config in force no longer has stays open, nothing
    watching it; the API said nothing of it. So does one on the signal of a check its pair no longer has (it said
    `configured: true`). The pairs and checks are read at each request (a reload changes them)."""
    DriftRepository(store.engine).save_events([event("refused", id="ev-kept"),
                                               event("refused", id="ev-gone", canary="removed"),
                                               event("check:kw", id="ev-check")])
    now = [Configured(frozenset({("c", "t")}))]
    routes = drift_routes(SimpleNamespace(repo=DriftRepository(store.engine)), lambda: now[0])
    with app(store, extra_routes=routes) as api:
        assert {e["id"]: e["configured"] for e in api.get("/api/drift").json()} == {"ev-kept": True,
                                                                                  "ev-gone": False,
                                                                                  "ev-check": False}
        assert api.get("/api/drift/ev-gone").json()["configured"] is False
        now[0] = Configured(frozenset({("c", "t"), ("removed", "t")}), frozenset({("c", "t", "kw")}))  # a reload
        assert api.get("/api/drift/ev-gone").json()["configured"] is True  # brought them back
        assert api.get("/api/drift/ev-check").json()["configured"] is True
