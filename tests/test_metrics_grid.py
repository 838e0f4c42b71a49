"""The compact per-pair collectors expose what prometheus_client's own metrics would, and forget pairs: only what
the scope holds configured is written and exported."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from monitor.config.models import Schedule
from monitor.telemetry.grid import PairGrid, PairHistogram
from monitor.telemetry.keyed import InFlight, KeyedGauge
from monitor.telemetry.metrics import Metrics
from monitor.telemetry.scope import Scope

README = Path(__file__).resolve().parent.parent / "README.md"


def _scope(*pairs: tuple[str, str]) -> Scope:
    scope = Scope()
    scope.declare(pairs)
    return scope


ANY = _scope(("a", "x"), ("b", "x"), ("c1", "t"), ("c2", "t"))


def _samples(registry: CollectorRegistry, name: str) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for m in registry.collect() for s in m.samples if m.name == name and not s.name.endswith("_created")}


def test_histogram_matches_prometheus_client() -> None:
    ours, ref = CollectorRegistry(), CollectorRegistry()
    buckets = (0.01, 0.1, 1.0, 10.0)
    h = PairHistogram("lat_seconds", "d", ("op", "canary", "target"), buckets, registry=ours, scope=ANY)
    r = Histogram("lat_seconds", "d", ("op", "canary", "target"), buckets=buckets, registry=ref)
    for v in (0.0, 0.01, 0.05, 0.1, 0.5, 3.0, 10.0, 11.0, 1e9):  # bounds are inclusive (le)
        h.observe("chat", "c1", "t", value=v)
        r.labels("chat", "c1", "t").observe(v)
    h.observe("chat", "c2", "t", value=0.2)
    r.labels("chat", "c2", "t").observe(0.2)
    assert _samples(ours, "lat_seconds") == _samples(ref, "lat_seconds")


def test_grid_declares_zeros_and_keeps_extra_label_sets() -> None:
    ours, ref = CollectorRegistry(), CollectorRegistry()
    g = PairGrid("fails", "d", "counter", ("error_type",), [("timeout",), ("rate_limited",)], registry=ours,
                 scope=ANY)
    c = Counter("fails", "d", ("canary", "target", "error_type"), registry=ref)
    g.declare([("a", "x"), ("b", "x")])
    for canary in ("a", "b"):
        for et in ("timeout", "rate_limited"):
            c.labels(canary, "x", et)
    g.inc("a", "x", "timeout")
    c.labels("a", "x", "timeout").inc()
    g.inc("a", "x", "weird", amount=2)  # outside the declared grid: still exported
    c.labels("a", "x", "weird").inc(2)
    assert _samples(ours, "fails") == _samples(ref, "fails")
    assert g.get("a", "x", "timeout") == 1.0
    with pytest.raises(ValueError):
        g.inc("a", "x", "timeout", amount=-1)
    with pytest.raises(ValueError):
        g.inc("a", "x")  # wrong label count


def test_gauge_grid_without_declared_pairs_exports_only_what_was_set() -> None:
    ours, ref = CollectorRegistry(), CollectorRegistry()
    g = PairGrid("last_ts", "d", "gauge", (), (), registry=ours, scope=ANY)
    r = Gauge("last_ts", "d", ("canary", "target"), registry=ref)
    g.declare([("a", "x")])  # no extras: declaring a pair exports nothing by itself
    g.set("a", "x", value=5.0)
    r.labels("a", "x").set(5.0)
    assert _samples(ours, "last_ts") == _samples(ref, "last_ts")
    with pytest.raises(TypeError):
        PairGrid("n", "d", "counter", (), registry=CollectorRegistry(), scope=ANY).set("a", "x", value=1)


def test_forget_drops_every_series_of_removed_pairs_and_nothing_writes_them_again() -> None:
    reg = CollectorRegistry()
    scope = _scope(("a", "x"), ("b", "x"))
    g = PairGrid("active", "d", "gauge", ("signal",), [("refused",)], registry=reg, scope=scope)
    h = PairHistogram("h", "d", ("canary", "target"), (1.0,), registry=reg, scope=scope)
    g.declare([("a", "x"), ("b", "x"), ("c", "x")])  # c is not in the scope: not declared
    g.set("b", "x", "other", value=1)
    h.observe("a", "x", value=0.5)
    h.observe("b", "x", value=0.5)
    assert 'canary="b"' in generate_latest(reg).decode() and 'canary="c"' not in generate_latest(reg).decode()
    scope.declare([("a", "x")])
    assert 'canary="b"' not in generate_latest(reg).decode()  # a scrape before the forget has none either
    g.forget()
    h.forget()
    g.set("b", "x", "other", value=1)  # work still under way for b (a call in flight, a queued analysis)
    h.observe("b", "x", value=0.5)
    text = generate_latest(reg).decode()
    assert 'canary="b"' not in text and 'canary="a"' in text
    scope.declare([("a", "x"), ("b", "x")])  # added back: nothing of before, series again as it is written
    g.declare([("b", "x")])
    text = generate_latest(reg).decode()
    assert 'active{canary="b",signal="refused",target="x"} 0.0' in text and 'signal="other"' not in text
    assert 'h_count{canary="b",target="x"}' not in text


def test_keyed_gauges_and_calls_in_flight_follow_the_scope() -> None:
    reg = CollectorRegistry()
    scope = Scope()
    scope.declare([("a", "x"), ("a", "y")], targets=["z"])
    info = KeyedGauge("info", "d", ("target", "model"), registry=reg, scope=scope, by="target")
    spent = KeyedGauge("spent", "d", ("target",), registry=reg, scope=scope, by="target", zero=True)
    calls = InFlight("calls", "d", registry=reg, scope=scope)
    info.set_only("y", "m1", value=1)
    info.set_only("y", "m2", value=1)  # one model a target
    spent.set("y", value=2.5)
    calls.enter("y")
    value = reg.get_sample_value
    assert value("info", {"target": "y", "model": "m1"}) is None and value("info", {"target": "y", "model": "m2"}) == 1
    assert [value("spent", {"target": t}) for t in "xyz"] == [0, 2.5, 0]
    assert value("calls", {"target": "y"}) == 1
    scope.declare([("a", "x")])  # y removed while its call is in flight
    info.forget()
    spent.forget()
    info.set_only("y", "m3", value=1)
    spent.set("y", value=3.0)
    assert "y" not in generate_latest(reg).decode().replace("y=", "")  # no series of target y at all
    scope.declare([("a", "x"), ("a", "y")])  # back before the call ends: its end must not count below zero
    calls.leave("y")
    assert value("calls", {"target": "y"}) == 0 and value("spent", {"target": "y"}) == 0
    assert value("info", {"target": "y", "model": "m3"}) is None


def test_declared_pairs_export_zero_refusals_and_a_reload_forgets_removed_canaries_and_targets() -> None:
    reg = CollectorRegistry()
    m = Metrics(reg)
    m.declare([("a", "x", Schedule(every="1m")), ("b", "y", Schedule(every="30s"))], {"x": None, "y": 5.0},
              checks=[("b", "y", "short")])
    assert reg.get_sample_value("llm_monitor_refusals_total", {"canary": "a", "target": "x", "refusal": "full"}) == 0
    assert reg.get_sample_value("llm_monitor_canary_interval_seconds", {"canary": "b"}) == 30.0
    m.model_info.set_only("y", "m", "fp", value=1)
    m.declare([("a", "x", Schedule(every="1m"))], {"x": None})
    text = generate_latest(reg).decode()
    assert 'canary="b"' not in text and 'target="y"' not in text
    assert 'llm_monitor_canary_interval_seconds{canary="a"} 60.0' in text
    assert 'llm_monitor_spend_today_usd{target="x"}' in text


def test_exposition_passes_the_text_parser() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    reg = CollectorRegistry()
    PairGrid("c", "d", "counter", (), registry=reg, scope=ANY).declare([("a", "x")])
    PairHistogram("h_seconds", "d", ("canary", "target"), (0.5,), registry=reg, scope=ANY).observe("a", "x", value=1)
    names = {f.name for f in text_string_to_metric_families(generate_latest(reg).decode())}
    assert names == {"c", "h_seconds"}


def test_readme_metrics_reference_names_what_is_exported() -> None:
    """Every metric in the README's table is exported under that exact name, with the labels listed."""
    metrics = Metrics(CollectorRegistry())
    exported = {m.name + ("_total" if m.type == "counter" else "") for m in metrics.registry.collect()}
    plain = {(v._name + ("_total" if isinstance(v, Counter) else "")): set(v._labelnames)
             for v in vars(metrics).values() if isinstance(v, Gauge | Counter)}
    plain |= {v.name: set(v.labelnames) for v in vars(metrics).values() if isinstance(v, KeyedGauge | InFlight)}
    section = README.read_text().split("## Metrics reference", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| `")]
    types = {m.name + ("_total" if m.type == "counter" else ""): m.type for m in metrics.registry.collect()}
    listed = set()
    for names_cell, kind_cell, labels_cell, _meaning in rows:
        names = re.findall(r"`([a-z_]+)`", names_cell)
        listed.update(names)
        assert names and set(names) <= exported, (names_cell, set(names) - exported)
        kinds = [k.strip() for k in kind_cell.split(",")]
        kinds = kinds if len(kinds) == len(names) else kinds[:1] * len(names)
        assert [types[n] for n in names] == kinds, (names_cell, kind_cell)
        if all(name in plain for name in names):  # prometheus_client metrics: their label names are known here
            labels = {x.strip() for x in labels_cell.split(",") if x.strip()}
            for name in names:
                assert plain[name] == labels, (name, plain[name], labels_cell)
    assert set(plain) <= listed, set(plain) - listed
    assert exported <= listed, f"exported but not in the README's metrics table: {exported - listed}"


def test_no_created_series() -> None:
    """prometheus_client adds `<name>_created` beside every counter and histogram unless told not to."""
    reg = CollectorRegistry()
    m = Metrics(reg)
    m.declare([("a", "x", Schedule(every="1m"))], {"x": None})
    m.sent.labels("hook").inc()
    text = generate_latest(reg).decode()
    assert "llm_monitor_notifications_sent_total" in text and "_created" not in text


def test_a_check_without_verdicts_in_the_last_run_has_no_pass_ratio() -> None:
    """A judge that stopped giving verdicts (untrusted, capped) must not leave the last known share standing."""
    from datetime import UTC, datetime

    from monitor.domain import CallResult, CheckResult, Observation

    def run(*passed: bool | None) -> list[Observation]:
        return [Observation("c1", "t", "openai", "m", datetime.now(UTC), CallResult(text="x"), run_id="r",
                            checks=[CheckResult("judged", "llm_judge", p), CheckResult("short", "length", True)])
                for p in passed]

    metrics = Metrics(CollectorRegistry())
    metrics.declare([("c1", "t", Schedule(every="1m"))], {"t": None}, checks=[("c1", "t", "judged"), ("c1", "t", "short")])
    metrics.run_summary("c1", "t", run(True, False))
    ratio = {"canary": "c1", "target": "t", "check": "judged"}
    assert metrics.registry.get_sample_value("llm_monitor_check_pass_ratio", ratio) == 0.5
    metrics.run_summary("c1", "t", run(None, None))
    assert metrics.registry.get_sample_value("llm_monitor_check_pass_ratio", ratio) is None
    assert metrics.registry.get_sample_value("llm_monitor_check_pass_ratio", {**ratio, "check": "short"}) == 1.0


def test_a_content_policy_error_counts_as_a_refusal_and_an_outage_changes_no_ratio() -> None:
    from datetime import UTC, datetime

    from monitor.domain import CallResult, CheckResult, ErrorType, Observation

    def obs(error: ErrorType, refusal: str | None, passed: bool | None) -> Observation:
        return Observation("c1", "t", "openai", "m", datetime.now(UTC), CallResult(error_type=error), run_id="r",
                           refusal=refusal, checks=[CheckResult("refusal", "refusal", passed)])

    metrics = Metrics(CollectorRegistry())
    metrics.declare([("c1", "t", Schedule(every="1m"))], {"t": None}, checks=[("c1", "t", "refusal")])
    blocked = [obs(ErrorType.CONTENT_FILTER, "full", False) for _ in range(2)]
    for o in blocked:
        metrics.observe(o, "openai", "127.0.0.1")
    metrics.run_summary("c1", "t", blocked)
    value = metrics.registry.get_sample_value
    pair = {"canary": "c1", "target": "t"}
    assert value("llm_monitor_refusals_total", {**pair, "refusal": "full"}) == 2
    assert value("llm_monitor_refusal_ratio", pair) == 1.0
    assert value("llm_monitor_check_results_total", {**pair, "check": "refusal", "result": "fail"}) == 2
    assert value("llm_monitor_check_pass_ratio", {**pair, "check": "refusal"}) == 0.0
    assert value("llm_monitor_probe_failures_total", {**pair, "error_type": "content_filter"}) == 2
    outage = [obs(ErrorType.TIMEOUT, None, None)]
    metrics.observe(outage[0], "openai", "127.0.0.1")
    metrics.run_summary("c1", "t", outage)
    assert value("llm_monitor_refusal_ratio", pair) == 1.0  # no verdict: the last one stands
    assert value("llm_monitor_check_pass_ratio", {**pair, "check": "refusal"}) == 0.0
    assert value("llm_monitor_check_results_total", {**pair, "check": "refusal", "result": "error"}) == 0  # declared


def test_every_drift_signal_of_a_pair_has_its_event_counter_before_its_first_event() -> None:
    """`increase(llm_monitor_drift_events_total[...])` (the dashboards' drift annotation and panel) sees an event only
    if the series existed at 0 before it: a counter born at 1 has no increase. Every signal the engine can open an
    event on is pre-initialised, each check's `check:NAME` too, and a check a reload removes takes its drift series
    along (an event still open on it no longer shows in llm_monitor_drift_active, so LLMMonitorDriftActive resolves)."""
    from monitor.drift.names import disableable
    from monitor.telemetry.names import signal_kind

    reg = CollectorRegistry()
    m = Metrics(reg)
    m.declare([("a", "x", Schedule(every="1m"))], {"x": None}, checks=[("a", "x", "bare-json")])
    m.declare_drift([("a", "x")])

    def exported() -> set[str]:
        return {s.labels["signal"] for f in reg.collect() if f.name == "llm_monitor_drift_events"
                for s in f.samples if s.labels["canary"] == "a" and s.labels["target"] == "x" and s.value == 0}

    signals = [s for s in disableable() if s not in ("check", "check:NAME")]
    assert exported() == {*signals, "check:bare-json"}
    assert reg.get_sample_value("llm_monitor_drift_events_total", {
        "canary": "a", "target": "x", "signal": "latency_s", "kind": signal_kind("latency_s")}) == 0
    m.drift_active.set("a", "x", "check:bare-json", value=1)  # an event open on the check
    m.declare([("a", "x", Schedule(every="1m"))], {"x": None}, checks=[("a", "x", "exact")])
    m.declare_drift([("a", "x")])
    assert "check:bare-json" not in exported() and "check:exact" in exported()
    m.drift_active.set("a", "x", "check:bare-json", value=1)  # the analysis showing its still open event again
    text = generate_latest(reg).decode()
    assert "check:bare-json" not in text  # README: a check a reload removes takes every series labelled with it
