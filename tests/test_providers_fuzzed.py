"""A seeded run of the wire fuzzer (`tests/support/wirefuzz`), whose invariants must hold: a `CallResult` for
anything a server sends, failures typed and explained, no count or time that is not one; its cases stored through
the daemon's runner; and what the fuzzer found of text the store cannot keep and keys echoed in messages. The
answers it found misread field by field are in `test_providers_fuzzed_{bodies,counts,shapes}.py`."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from monitor.config.models import Target
from monitor.domain import ErrorType
from monitor.providers import build_provider
from monitor.store import Store
from tests.support.replies import FINISH, KINDS, anthropic_events, chunk, events, reply
from tests.support.wirefuzz import Case, daemon_provider, make_case, run_cases, store_cases


@pytest.mark.parametrize("seed", [1, 2])
async def test_fuzzed_answers_keep_the_invariants(seed: int) -> None:
    """1,000 mutated answers of a fixed seed: each call returns a `CallResult`, a failure is typed and explained,
    an answer that stood carries only counts and times that are such (`wirefuzz.violations`)."""
    rng = random.Random(seed)
    outcomes = await run_cases([make_case(rng, i) for i in range(1000)], daemon_provider)
    bad = [f"{o.case.id} {o.case.kind} stream={o.case.stream} {o.case.mutations}: {o.problems}" for o in outcomes
           if o.problems]
    assert not bad, "\n".join(bad[:10])
    assert len(outcomes) == 1000


def _types_403_as_a_bad_request(status: int, body_text: str = "") -> ErrorType:
    if status == 429:
        return ErrorType.RATE_LIMITED
    if status == 401:
        return ErrorType.AUTH
    if status == 408:
        return ErrorType.TIMEOUT
    return ErrorType.SERVER_ERROR if status >= 500 else ErrorType.BAD_REQUEST


async def test_a_wrong_status_mapping_is_caught_by_the_fuzzer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fuzzer expected an error page cut short of its Content-Length (`error_cut`) to be typed by
    `status_error_type(status)`, the very function the providers type it with: a mistake there was expected too.
    Its expectation is now a table written from README's "Error types"; with the function broken (a 403 typed as a
    `bad_request`), the cut-off 403s, and only they, are reported."""
    from monitor.providers import base

    monkeypatch.setattr(base.status_error_type, "__code__", _types_403_as_a_bad_request.__code__)
    assert base.status_error_type(403) == ErrorType.BAD_REQUEST  # broken wherever the name was imported
    rng, cases = random.Random(7), []
    for i in range(20_000):
        case = make_case(rng, i, kind=KINDS[i % 2])
        if "http error_cut" in case.mutations:
            cases.append(case)
        if sum(c.status == 403 for c in cases) >= 3 and len(cases) >= 20:
            break
    outcomes = await run_cases(cases, daemon_provider)
    caught = {o.case.status for o in outcomes if o.problems}
    assert caught == {403}, [(o.case.status, o.problems) for o in outcomes if o.problems][:5]
    assert all("expected error_type" in p for o in outcomes for p in o.problems)


async def test_fuzzed_answers_are_all_stored_by_the_runner(tmp_path: Path) -> None:
    """150 of them through the daemon's runner into SQLite: every call is one observation, read back as made."""
    rng = random.Random(3)
    assert await store_cases([make_case(rng, i) for i in range(150)], tmp_path) == []


def _keeps_nul(value: Any) -> Any:
    return value


async def test_the_stored_round_trip_expects_nul_as_u_fffd_not_what_the_store_code_says(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`store_cases` expected a stored text to be `storable(text)`, the store's own conversion: had it stopped
    replacing NUL (which PostgreSQL cannot hold), SQLite would keep it and the expectation would agree. The
    expectation is written in the fuzzer now, and such a store is reported."""
    from monitor.store import convert

    text = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "nul\u0000byte"},
                         "finish_reason": "stop"}]}
    case = Case("case0", "openai", False, reply(json.dumps(text).encode()))
    assert await store_cases([case], tmp_path / "right") == []
    monkeypatch.setattr(convert.storable, "__code__", _keeps_nul.__code__)
    (problem,) = await store_cases([case], tmp_path / "wrong")
    assert problem.startswith("case0: stored text 'nul\\x00byte' is not"), problem

async def test_half_surrogate_escapes_are_stored_not_lost(tmp_path: Path) -> None:
    """JSON escapes of half a UTF-16 pair ("\\ud800") decode to text UTF-8 cannot encode: the store raised, the
    runner logged a crash and the observation was lost. Now a lone half is U+FFFD and halves split across chunks
    are joined; every call is stored."""
    lone_text = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m\ud800",
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello \ud800 world"},
                              "finish_reason": "stop"}]}
    split = events("openai", chunk(content="Hello \ud83d"), chunk(content="\ude00 world"), FINISH)
    error = events("openai", chunk(content="Hello"), {"error": {"message": "bad \udc00", "code": 500}})
    anthropic = events("anthropic", {"type": "error", "error": {"type": "api_error", "message": "x\ud800"}})
    cases = [Case("case0", "openai", False, reply(json.dumps(lone_text).encode())),
             Case("case1", "openai", True, reply(split, ctype="text/event-stream")),
             Case("case2", "openai", True, reply(error, ctype="text/event-stream")),
             Case("case3", "anthropic", True, reply(anthropic, ctype="text/event-stream"))]
    assert await store_cases(cases, tmp_path) == []
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        stored = {o.target: o.call for o in store.observations(limit=10)}
    finally:
        store.close()
    assert stored["case0"].ok and stored["case0"].text == "Hello \ufffd world"
    assert stored["case0"].response_model == "m\ufffd"
    assert stored["case1"].ok and stored["case1"].text == "Hello 😀 world"
    assert stored["case2"].error_type == ErrorType.SERVER_ERROR
    assert stored["case2"].error_message == "error in stream: bad \ufffd"
    assert stored["case3"].error_message == "api_error: x\ufffd"


KEY = "sk-live-0123456789abcdefghijklmnopqrstuvwxyz"


def keyed_provider(kind: str, url: str) -> Any:
    base = url + "/v1" if kind == "openai" else url
    return build_provider(Target(id="t", provider=kind, base_url=base, model="m"), KEY)


@pytest.mark.parametrize("kind", KINDS)
async def test_an_echoed_api_key_cut_short_in_a_message_is_not_kept_in_part(kind: str) -> None:
    """An error message is cut at 300 characters, the values messages show at 40: a key the cut went through
    was left as its start ("sk-live-0123…"), which the scrubbing (whole keys only) did not see."""
    padding = 1000 if kind == "openai" else 1000 - len("authentication_error: ") + len("Error code: 401 - ")
    cases = []
    for shift in range(0, 40, 4):  # the cut falls in the middle of the key at several places
        msg = "x" * (230 - shift) + " Incorrect API key provided: " + KEY + " " + "y" * padding
        body = {"error": {"message": msg, "type": "invalid_request_error"}} if kind == "openai" else \
            {"type": "error", "error": {"type": "authentication_error", "message": msg}}
        cases.append(Case(f"case{len(cases)}", kind, False, reply(json.dumps(body).encode(), status="401 Unauthorized")))
    cases.append(Case(f"case{len(cases)}", kind, True, reply(  # and in a value a message shows
        events(kind, chunk(content="hi"), {**FINISH, "usage": "x" * 20 + KEY}) if kind == "openai" else
        anthropic_events().replace(b'"input_tokens": 7', b'"input_tokens": "' + b"x" * 25 + KEY.encode() + b'"'),
        ctype="text/event-stream")))
    outcomes = await run_cases(cases, keyed_provider)
    for o in outcomes:
        message = o.result.error_message
        assert message and o.result.error_type in (ErrorType.AUTH, ErrorType.BAD_RESPONSE), message
        assert KEY[:4] not in message, message
    assert sum("<redacted>…" in o.result.error_message for o in outcomes) >= 8
