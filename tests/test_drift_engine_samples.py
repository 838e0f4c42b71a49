"""The drift engine's tests on samples (deterministic seeds): the whole-completion MMD, category shares, the semantic
signal through an embeddings endpoint that fails or hangs; and the dumps it is fed from (`load_dump`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.drift import DriftEngine, DumpError, load_dump
from tests.support.jsonserver import json_server
from tests.support.streams import Sim
from tests.support.streams import feed as _feed


def test_mmd_decision_near_its_level_is_an_exact_permutation_test() -> None:
    from monitor.drift.mmd import features, mmd_test

    a = [features(f"the answer is {i % 3}") for i in range(20)]
    b = [features(f"a different reply number {i % 4}") for i in range(20)]
    r = mmd_test(a, b, permutations=100, alpha=1e-3)
    assert r.p_value == r.p_permutation and r.p_value <= 1e-3  # confirmed by 2,000 relabellings
    same = mmd_test(a[:10], a[10:], permutations=100, alpha=1e-3)
    assert same.p_value > 0.05


def test_an_open_completion_event_is_not_certified_again_every_round(monkeypatch) -> None:
    """The exact permutation test (thousands of relabellings, seconds on the analysis thread) decides openings;
    rounds while the whole-completion event is open show the screening p-value instead."""
    from monitor.drift import mmd

    certified: list[float] = []
    exact = mmd._exact

    def counted(k, w, observed, alpha, rng, stop=None):  # noqa: ANN001, ANN202
        certified.append(alpha)
        return exact(k, w, observed, alpha, rng, stop)

    monkeypatch.setattr(mmd, "_exact", counted)
    eng = DriftEngine()
    sim = Sim(5, refusal=0.0)
    _feed(eng, sim, 120)
    sim.probs = Sim(5, shift=7).probs  # another model's vocabulary: the completions change
    updates = _feed(eng, sim, 400)
    opened = [u for u in updates if u.action == "opened" and u.event.signal == "completion"]
    assert len(opened) == 1
    at = updates.index(opened[0])
    rounds_after = [u for u in updates[at + 1:] if u.event.signal == "completion" and u.action == "updated"]
    assert rounds_after and rounds_after[-1].event.state == "open"
    assert len(certified) == 1  # the opening only, not each of the later rounds


def test_an_embeddings_outage_when_the_baseline_completes_costs_only_the_semantic_signal_meanwhile() -> None:
    """The baseline is embedded once the endpoint answers again; the outage's NaN vectors never become it."""
    import threading

    from monitor.embeddings import Embedder
    from monitor.sim.embeddings import embed as sim_embed

    up = threading.Event()

    def answer(body: dict, headers: dict) -> tuple[int, dict]:
        if not up.is_set():
            return 503, {"error": {"message": "down", "type": "server_error"}}
        data = [{"object": "embedding", "index": i, "embedding": sim_embed(t)} for i, t in enumerate(body["input"])]
        return 200, {"object": "list", "data": data, "model": body["model"],
                     "usage": {"prompt_tokens": 1, "total_tokens": 1}}

    with json_server(answer) as url:
        embedder = Embedder(f"{url}/v1", None, "e", timeout=5, pause_s=0)
        try:
            eng = DriftEngine(embed=embedder)
            sim = Sim(1, refusal=0.05)
            _feed(eng, sim, 40)  # the baseline (30) completes while the endpoint is down
            baseline = eng.baseline(*next(iter(eng._streams)))
            assert baseline.ready and baseline.embeddings is None
            assert "semantic_similarity" not in eng.compute_signals(sim.next())
            up.set()
            _feed(eng, sim, 1)  # the next observation embeds the baseline
            assert baseline.embeddings is not None and len(baseline.embeddings[0]) == 64
            signals = eng.compute_signals(sim.next())
            assert -1.0 <= signals["semantic_similarity"] <= 1.0  # type: ignore[operator]
            assert "refused" in signals
        finally:
            embedder.close()


def test_an_embeddings_endpoint_that_hangs_is_not_called_again_for_a_while() -> None:
    """The analysis thread would otherwise spend a whole timeout on every observation while the endpoint hangs."""
    import threading

    from monitor.embeddings import Embedder

    seen: list[str | None] = []
    release = threading.Event()

    def hang(body: dict, headers: dict) -> tuple[int, dict]:
        seen.append(headers.get("x-team"))
        release.wait(10)  # never answers in time
        return 500, {}

    now = [0.0]
    with json_server(hang) as url:
        embedder = Embedder(f"{url}/v1", None, "e", timeout=0.3, headers={"x-team": "sre"}, pause_s=60,
                            clock=lambda: now[0])
        try:
            assert np.isnan(embedder(["a", "b"])).all() and seen == ["sre"]  # the target's headers are sent
            now[0] = 59.0
            assert np.isnan(embedder(["c"])).all() and len(seen) == 1  # paused: no call, no wait
            now[0] = 61.0
            embedder(["d"])
            assert len(seen) == 2  # tried again after the pause
        finally:
            release.set()
            embedder.close()


def test_a_category_event_shows_the_share_that_moved() -> None:
    """"stop -> stop" said nothing of a stop share falling from 97% to 60%."""
    from monitor.drift.twosample import category_test

    res = category_test({"stop": 97, "length": 3}, {"stop": 60, "length": 40})
    assert res is not None and res.p_value < 1e-6
    assert (res.baseline_value, res.current_value) == ("stop 97%", "stop 60%")
    res = category_test({"stop": 40, "tool_calls": 10}, {"stop": 40, "tool_calls": 10, "content_filter": 10})
    assert res is not None and (res.baseline_value, res.current_value) == ("content_filter 0%", "content_filter 17%")


def test_a_category_events_updates_name_one_category_on_both_sides() -> None:
    # Found by QA: `drift` showed "refusal 0%" -> "stop 17%": an update replaced the current share with another
    # category's (the one that moved most by then) and kept the baseline share of the category it opened with.
    from datetime import UTC, datetime, timedelta

    from monitor.domain import CallResult, FinishReason, Observation, Usage

    rng = np.random.default_rng(5)
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def obs(i: int, shares: dict[FinishReason, float]) -> Observation:
        reason = FinishReason(rng.choice([r.value for r in shares], p=list(shares.values())))
        call = CallResult(text=f"answer {i}", finish_reason=reason, response_model="m", usage=Usage(output_tokens=2),
                          latency_s=1.0)
        return Observation("c", "t", "p", "m", start + timedelta(minutes=i), call, refusal="none", id=f"c-{i}")

    eng = DriftEngine()
    phases = [(60, {FinishReason.STOP: 0.5, FinishReason.LENGTH: 0.5}),  # the baseline
              (60, {FinishReason.STOP: 0.5, FinishReason.LENGTH: 0.1, FinishReason.CONTENT_FILTER: 0.4}),
              (60, {FinishReason.STOP: 0.1, FinishReason.LENGTH: 0.5, FinishReason.CONTENT_FILTER: 0.4})]
    seen, i = [], 0  # each update's values as it was told (the event object is updated in place)
    for n, shares in phases:
        for _ in range(n):
            i += 1
            seen += [(u.action, str(u.event.baseline_value), str(u.event.current_value))
                     for u in eng.observe(obs(i, shares)) if u.event.signal == "finish_reason"]
    assert seen and seen[0][0] == "opened"
    named = [(base.split()[0], current.split()[0]) for _, base, current in seen]
    assert len({current for _, current in named}) > 1, named  # the category that moved most changed
    assert all(base == current for base, current in named), named


def test_load_dump_names_file_line_and_field(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_text('{"canary": "c", "target": "t", "text": "hi"}\n{"canary": "c", "target": "t", "text": 3}\n')
    with pytest.raises(DumpError, match=r"a\.jsonl:2: field 'text': expected a string"):
        load_dump(p)
    p.write_text('{"canary": "c", "target": "t", "text": "x", "checks": {"ok": "yes"}}\n')
    with pytest.raises(DumpError, match=r"a\.jsonl:1: field 'checks.ok'"):
        load_dump(p)
    p.write_text("{not json\n")
    with pytest.raises(DumpError, match=r"a\.jsonl:1: invalid JSON"):
        load_dump(p)
    row = b'{"canary": "c", "target": "t", "text": "x"}\n'
    p.write_bytes(b"\xef\xbb\xbf" + row + row.replace(b'"x"', b'"caf\xe9"'))  # a BOM, then Latin-1 on line 2
    with pytest.raises(DumpError, match=r"a\.jsonl:2: not UTF-8 text \(byte 0xe9 at column 44\)"):
        load_dump(p)
    p.write_bytes(b"\xef\xbb\xbf" + row)  # an editor's byte-order mark is not an error
    assert load_dump(p)[0]["text"] == "x"
    for field, value in (("output_tokens", -3), ("latency_s", -0.5), ("ttft_s", 1e6 * 3600)):
        p.write_text(f'{{"canary": "c", "target": "t", "text": "x", "{field}": {value}}}\n')
        with pytest.raises(DumpError, match=rf"a\.jsonl:1: field '{field}': expected (seconds from 0 to 31,536,000|"
                                            r"a token count from 0 to 100,000,000)"):
            load_dump(p)
    p.write_text('{"canary": "c", "target": "t", "text": "x", "ttft_s": 1e999}\n')  # not JSON: no double holds it
    with pytest.raises(DumpError, match=r"a\.jsonl:1: field 'ttft_s': invalid JSON: the number 1e999 is past"):
        load_dump(p)
