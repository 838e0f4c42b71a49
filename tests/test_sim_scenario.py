"""Scenario files: the shipped ones load, phases inherit, and every rejection names file, field and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.sim import builtin_scenario, load_scenario, scenario_from_dict


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_scenario(_write(tmp_path, text))
    return str(info.value)


def test_builtin_scenarios_load() -> None:
    from monitor.commands.demo import DEMO_SAMPLES

    demo = builtin_scenario("demo")
    gpt = demo.models["sim-gpt"].phases
    assert [p.name for p in gpt] == ["baseline", "stricter"]
    assert gpt[0].system_fingerprint != gpt[1].system_fingerprint
    # the demo's baselines (12 observations, DEMO_SAMPLES a run every 5 s, after a start delay of up to 5 s) form
    # before the change, and the events it brings open well within the demo's two minutes
    assert gpt[1].refusals[0].p >= 0.5 and 12 / DEMO_SAMPLES * 5 + 5 + 10 <= (gpt[1].after or 0) <= 60
    claude = demo.models["sim-claude"].phases
    assert claude[1].verbosity == 2.0 and claude[1].voice == claude[0].voice == "formal"
    steady = builtin_scenario("steady")
    phase = steady.models["sim-gpt"].phases[0]
    assert (phase.ttft.mean_ms, phase.ttft.dist, phase.output_tps.mean) == (50, "constant", 200)
    assert not phase.faults.items() and len(steady.models["sim-gpt"].phases) == 1
    faults = builtin_scenario("faults.yaml")
    kinds = {name for spec in faults.models.values() for p in spec.phases for name in p.faults.names()}
    assert kinds == {"rate_limit", "server_error", "unavailable", "overloaded", "timeout", "malformed",
                     "stream_cut", "stall", "reset", "redirect"}
    moved = faults.models["fault-redirect"].phases[0].faults.redirect
    assert moved is not None and (moved.p, moved.status) == (1, 307)


def test_unknown_builtin_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"no such scenario \(known: demo, faults, steady\)"):
        builtin_scenario("nope")


def test_phases_inherit_from_defaults_and_previous_phase() -> None:
    scenario = scenario_from_dict({
        "defaults": {"ttft": 20, "voice": "casual"},
        "models": {"m": {"phases": [
            {"name": "a", "output_tps": 50},
            {"name": "b", "after_requests": 3, "verbosity": 2},
            {"name": "c", "after": "2m", "voice": "formal"},
        ]}},
    })
    a, b, c = scenario.models["m"].phases
    assert (a.ttft.mean_ms, a.voice, a.output_tps.mean) == (20, "casual", 50)
    assert (b.ttft.mean_ms, b.output_tps.mean, b.verbosity, b.after_requests) == (20, 50, 2, 3)
    assert (c.voice, c.verbosity, c.after, c.after_requests) == ("formal", 2, 120.0, None)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("models: {m: {phases: [{name: a, ttfb: 5}]}}",
         "models.m.phases[0].ttfb: Extra inputs are not permitted (value: 5)"),
        ("models: {m: {phases: [{name: a, ttft: {dist: gamma, mean_ms: 5}}]}}",
         "models.m.phases[0].ttft.dist: Input should be 'constant', 'normal', 'lognormal' or 'uniform' "
         "(value: 'gamma')"),
        ("models: {m: {phases: [{name: a}, {name: b, after: soon}]}}",
         "models.m.phases[1].after: expected a duration like 90s, 2m or 500ms (value: 'soon')"),
        ("models: {m: {phases: [{name: a}, {name: b, after: 1s, after_requests: 3}]}}",
         "models.m.phases[1]: give either after or after_requests, not both"),
        ("models: {m: {phases: [{name: a}, {name: b, verbosity: 2}]}}",
         "models.m.phases[1]: every phase after the first needs after or after_requests"),
        ("models: {m: {phases: [{name: a}, {name: a, after: 1s}]}}",
         "models.m.phases: phase names must be unique (value: ['a'])"),
        ("models: {m: {phases: [{name: a, refusals: [{pattern: 'kill(', p: 0.5}]}]}}",
         "models.m.phases[0].refusals[0].pattern: invalid regular expression"),
        ("models: {m: {phases: [{name: a, answers: [{pattern: x, choices: [{text: A, p: 0.7}, {text: B, p: 0.7}]}]}]}}",
         "models.m.phases[0].answers[0]: choice probabilities add up to more than 1"),
        ("models: {m: {phases: [{name: a, faults: {rate_limit: 0.6, reset: 0.6}}]}}",
         "models.m.phases[0].faults: fault probabilities add up to more than 1"),
        ("models: {m: {phases: [{name: a, faults: {stream_cut: {p: 1, tail: 1}}}]}}",
         "models.m.phases[0].faults.stream_cut: tail 1 needs at: 1 (the closing events follow the whole answer; at "
         "is 0.5)"),
        ("models: {m: {phases: [{name: a, faults: {meteor: 0.1}}]}}",
         "models.m.phases[0].faults.meteor: Extra inputs are not permitted (value: 0.1)"),
        ("models: {m: {phases: [{name: a, voice: pirate}]}}",
         "models.m.phases[0].voice: unknown voice (known: casual, formal, markdown, plain) (value: 'pirate')"),
        ("defaults: {verbosity: -1}\nmodels: {m: {phases: [{name: a}]}}",
         "defaults.verbosity: Input should be greater than 0 (value: -1)"),
        ("seed: x\nmodels: {m: {phases: [{name: a}]}}",
         "seed: Input should be a valid integer, unable to parse string as an integer (value: 'x')"),
        ("models: {m: {stages: []}}", "models.m: expected a mapping with one key, phases (a list)"),
        ("models: {}", "models: Dictionary should have at least 1 item after validation"),
    ],
)
def test_rejections_name_file_field_and_value(tmp_path: Path, body: str, expected: str) -> None:
    message = _error(tmp_path, body)
    assert message.startswith(str(tmp_path / "scenario.yaml") + ":1: ")  # the file and the line
    assert expected in message


def test_rejections_name_the_line_in_a_block_document(tmp_path: Path) -> None:
    body = "seed: 1\nmodels:\n  sim-4.1:\n    phases:\n      - name: a\n        voice: pirate\n" \
           "      - name: b\n        after: soon\n"
    message = _error(tmp_path, body)
    path = tmp_path / "scenario.yaml"
    assert f"{path}:6: models.sim-4.1.phases[0].voice: unknown voice" in message
    assert f"{path}:8: models.sim-4.1.phases[1].after: expected a duration" in message


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    message = _error(tmp_path, "seed: 1\nmodels: {m: [\n")
    assert ":3: (syntax): invalid YAML" in message or ":2: (syntax): invalid YAML" in message


def test_every_issue_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_scenario(_write(tmp_path, "models: {a: {phases: [{name: x, bogus: 1}]}, b: {phases: [{name: y, chunk_tokens: 0}]}}"))
    fields = [i.field for i in info.value.issues]
    assert fields == ["models.a.phases[0].bogus", "models.b.phases[0].chunk_tokens"]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_scenario(tmp_path / "absent.yaml")
