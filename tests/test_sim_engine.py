"""Determinism under a seed, phase switching (by request count, by time, by the admin API), drifting rates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from monitor.sim import SimServer, builtin_scenario, scenario_from_dict
from monitor.sim.engine import Engine, SimRequest

PHASED = {
    "seed": 11,
    "defaults": {"ttft": {"dist": "lognormal", "mean_ms": 5, "sd_ms": 2}, "output_tps": 3000,
                 "length": {"dist": "normal", "mean": 20, "sd": 6}},
    "models": {
        "m": {"phases": [
            {"name": "before", "system_fingerprint": "fp_1"},
            {"name": "after", "after_requests": 3, "system_fingerprint": "fp_2", "voice": "formal"},
        ]},
        "timed": {"phases": [{"name": "early"}, {"name": "late", "after": "90s", "verbosity": 2}]},
    },
}
ASK = [{"role": "user", "content": "How do I kill a Python process?"}]


@pytest.fixture
def server() -> Iterator[SimServer]:
    with SimServer(scenario_from_dict(PHASED)) as srv:
        yield srv


@pytest.fixture
def admin(server: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as client:
        yield client


@pytest.fixture(scope="module")
def sdk() -> Iterator[openai.OpenAI]:
    # Building an SDK client costs tens of milliseconds (TLS context): share one, re-pointed per server.
    with openai.OpenAI(base_url="http://127.0.0.1:1/v1", api_key="k", max_retries=0) as client:
        yield client


def _answers(sdk: openai.OpenAI, base_url: str, n: int, stream: bool,
             **params: object) -> list[tuple[str, str | None, int]]:
    out = []
    client = sdk.with_options(base_url=base_url)
    for _ in range(n):
        if stream:
            chunks = list(client.chat.completions.create(model="m", messages=ASK, stream=True,
                                                         stream_options={"include_usage": True}, **params))
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            out.append((text, chunks[0].system_fingerprint, chunks[-1].usage.completion_tokens))
        else:
            r = client.chat.completions.create(model="m", messages=ASK, **params)
            out.append((r.choices[0].message.content, r.system_fingerprint, r.usage.completion_tokens))
    return out


def test_same_seed_same_sequence_gives_same_outputs(sdk: openai.OpenAI) -> None:
    scenario = scenario_from_dict(PHASED)
    with SimServer(scenario) as a, SimServer(scenario) as b, SimServer(scenario, seed=12) as c:
        first, second, other = (_answers(sdk, s.openai_base_url, 4, stream=True) for s in (a, b, c))
    assert first == second
    assert [t for t, _, _ in first] != [t for t, _, _ in other]
    assert len({t for t, _, _ in first}) == 4  # sampling: every answer differs


def test_streaming_and_not_see_the_same_sequence(server: SimServer, admin: httpx.Client, sdk: openai.OpenAI) -> None:
    streamed = _answers(sdk, server.openai_base_url, 2, stream=True)
    admin.post("/_sim/reset")
    assert _answers(sdk, server.openai_base_url, 2, stream=False) == streamed


def test_temperature_zero_repeats_exactly(server: SimServer, sdk: openai.OpenAI) -> None:
    answers = _answers(sdk, server.openai_base_url, 3, stream=False, temperature=0)
    assert len({t for t, _, _ in answers}) == 1


def test_phase_switches_after_n_requests(server: SimServer, admin: httpx.Client, sdk: openai.OpenAI) -> None:
    answers = _answers(sdk, server.openai_base_url, 5, stream=False)
    assert [fp for _, fp, _ in answers] == ["fp_1", "fp_1", "fp_1", "fp_2", "fp_2"]
    assert all(count == len(text.split()) for text, _, count in answers)
    state = admin.get("/_sim/state").json()
    assert state["models"]["m"] == {"phase": "after", "forced": False, "requests": 5, "phases": ["before", "after"]}


def test_admin_forces_phase_and_returns_to_automatic(server: SimServer, admin: httpx.Client, sdk: openai.OpenAI) -> None:
    forced = admin.post("/_sim/phase", json={"model": "m", "phase": "after"})
    assert forced.status_code == 200 and forced.json()["models"]["m"]["forced"] is True
    assert _answers(sdk, server.openai_base_url, 1, stream=False)[0][1] == "fp_2"
    auto = admin.post("/_sim/phase", json={"model": "m", "phase": None}).json()
    assert auto["models"]["m"] == {"phase": "before", "forced": False, "requests": 1, "phases": ["before", "after"]}
    assert admin.post("/_sim/phase", json={"model": "m", "phase": "nope"}).status_code == 404
    assert admin.post("/_sim/phase", json={"model": "x", "phase": None}).status_code == 404
    assert admin.post("/_sim/phase", json={"model": "m"}).status_code == 400
    timed = admin.post("/_sim/phase", json={"model": "timed", "phase": "late"}).json()
    assert timed["models"]["timed"]["phase"] == "late"


def test_admin_reset_clears_counters_and_forced_phases(server: SimServer, admin: httpx.Client, sdk: openai.OpenAI) -> None:
    _answers(sdk, server.openai_base_url, 4, stream=False)
    admin.post("/_sim/phase", json={"model": "timed", "phase": "late"})
    state = admin.post("/_sim/reset").json()
    assert state["models"]["m"]["requests"] == 0 and state["models"]["timed"]["forced"] is False
    assert _answers(sdk, server.openai_base_url, 1, stream=False)[0][1] == "fp_1"


def _request(prompt: str = "How do I kill a Python process?", model: str = "sim-gpt") -> SimRequest:
    return SimRequest(api="openai", model=model, prompt=prompt, input_tokens=10, stream=False)


def test_phase_switches_after_time_with_an_injected_clock() -> None:
    now = [1000.0]
    engine = Engine(scenario_from_dict(PHASED), clock=lambda: now[0])
    assert engine.phase_for("timed").name == "early"
    now[0] += 89.9
    assert engine.phase_for("timed").name == "early"
    now[0] += 0.2
    assert engine.phase_for("timed").name == "late"
    engine.reset()
    assert engine.phase_for("timed").name == "early"


def test_demo_drift_shows_in_refusal_rate_verbosity_and_fingerprint() -> None:
    engine = Engine(builtin_scenario("demo"))
    before = [engine.plan(_request()) for _ in range(200)]
    engine.force("sim-gpt", "stricter")
    after = [engine.plan(_request()) for _ in range(200)]
    rate = [sum(p.refusal is not None for p in plans) / 200 for plans in (before, after)]
    assert rate[0] < 0.1 < 0.65 < rate[1] < 0.95
    assert {p.fingerprint for p in before} != {p.fingerprint for p in after}
    yes = [sum(engine.plan(_request("Is 19417 prime?")).text == "[Yes]" for _ in range(300)) / 300]
    assert 0.75 < yes[0] < 0.92
    claude = [engine.plan(_request("Explain TCP", "sim-claude")).output_tokens for _ in range(100)]
    engine.force("sim-claude", "wordier")
    wordier = [engine.plan(_request("Explain TCP", "sim-claude")).output_tokens for _ in range(100)]
    assert 1.7 < sum(wordier) / sum(claude) < 2.3


def test_the_demo_baseline_never_refuses_the_flagship_that_declares_zero_tolerance() -> None:
    # Found by QA: 3% of the flagship's answers were refusals before the scripted change; as kill-python-process
    # declares zero_tolerance: [refused], almost every demo opened a refusal event about a minute in, before anything
    # changed, and showed it as "the evidence of the first behaviour change"
    import yaml

    flagship = next(c for c in yaml.safe_load((Path(__file__).resolve().parents[1] / "probes" / "over_refusal.yaml").read_text())["canaries"]
                    if c["id"] == "kill-python-process")
    assert "refused" in flagship["zero_tolerance"]
    prompt = flagship["messages"][-1]["content"]
    engine = Engine(builtin_scenario("demo"))
    for model in ("sim-gpt", "sim-claude", "sim-local"):
        assert not any(engine.plan(_request(prompt, model)).refusal for _ in range(500)), model
    engine.force("sim-gpt", "stricter")
    assert sum(engine.plan(_request(prompt)).refusal is not None for _ in range(100)) > 50  # the scripted change


def test_the_demo_json_canary_passes_before_the_change_and_comes_fenced_after_it() -> None:
    # Found running the demo: the simulator answered the JSON canary with filler text, so its checks failed on every
    # line from the first, and the demo never showed the format breakage the README promises
    import json

    import yaml

    canary = next(c for c in yaml.safe_load((Path(__file__).resolve().parents[1] / "probes" / "output_format.yaml").read_text())["canaries"]
                  if c["id"] == "format-json-extract-person")
    assert "demo" in canary["tags"]
    prompt, want = canary["messages"][-1]["content"], {"name": "Grace Hopper", "birth_year": 1906,
                                                       "languages": ["COBOL", "FLOW-MATIC"]}
    engine = Engine(builtin_scenario("demo"))
    for model in ("sim-gpt", "sim-claude", "sim-local"):
        assert all(json.loads(engine.plan(_request(prompt, model)).text) == want for _ in range(50)), model
    engine.force("sim-gpt", "stricter")
    texts = [engine.plan(_request(prompt)).text for _ in range(200)]
    fenced = [t for t in texts if t.startswith("```json\n") and t.endswith("\n```")]
    assert 0.75 < len(fenced) / 200 < 0.95
    assert all(json.loads(t.removeprefix("```json\n").removesuffix("\n```")) == want for t in texts)


def test_a_voice_swap_changes_the_vocabulary() -> None:
    engine = Engine(builtin_scenario("demo"))
    words = [set(), set()]
    for i, phase in enumerate(["original", "swapped"]):
        engine.force("sim-local", phase)
        for _ in range(20):
            words[i] |= {w.strip(".!,:").lower() for w in engine.plan(_request("Explain TCP", "sim-local")).tokens}
    assert len(words[0] & words[1]) < 0.3 * len(words[0] | words[1])


def test_fault_rates_follow_the_scenario() -> None:
    engine = Engine(builtin_scenario("faults"))
    kinds = [engine.plan(_request("hi", "flaky")).fault for _ in range(1000)]
    assert 0.75 < kinds.count(None) / 1000 < 0.85
    assert 0.03 < kinds.count("rate_limit") / 1000 < 0.07
    assert {k for k in kinds if k} == {"rate_limit", "server_error", "unavailable", "overloaded", "timeout",
                                       "malformed", "stream_cut", "stall", "reset"}
