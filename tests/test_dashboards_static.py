"""The committed Grafana dashboards and provisioning files follow the project's conventions."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.promql import (
    DASHBOARD_DIR,
    PROMETHEUS_BUILTINS,
    ROOT,
    annotation_queries,
    base_metric,
    contract_metrics,
    dashboard_queries,
    label_values_call,
    load_dashboards,
    metric_names,
    panel_queries,
    range_windows,
    runtime_metrics,
    substitute,
    unwrapped_counters,
    variable_queries,
)

DASHBOARDS = load_dashboards()
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
DS_UID = "${datasource}"
QUERY_VARIABLES = ("job", "instance", "target", "canary")
EXPECTED_BOARDS = {"overview", "latency", "cost", "quality", "canary"}


def all_exprs(board: dict, selectors: bool = True) -> list[str]:
    """Return every PromQL expression of a dashboard: panels, annotations and (optionally) variable selectors."""
    exprs = [t["expr"] for _, t in panel_queries(board)] + [e for _, e in annotation_queries(board)]
    for _, q in variable_queries(board) if selectors else ():
        selector, _label = label_values_call(q)
        if selector:
            exprs.append(selector)
    return exprs


def test_expected_dashboards_exist_with_stable_unique_uids() -> None:
    uids = [b["uid"] for b in DASHBOARDS.values()]
    assert len(uids) == len(set(uids))
    assert {uid.removeprefix("llm-monitor-") for uid in uids} == EXPECTED_BOARDS
    for name, board in DASHBOARDS.items():
        assert board["uid"] == Path(name).stem, "the uid is the file name, so it never changes by accident"
        assert len(board["uid"]) <= 40


def test_generated_json_is_up_to_date() -> None:
    result = subprocess.run([sys.executable, str(DASHBOARD_DIR / "generate.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_model(name: str) -> None:
    board = DASHBOARDS[name]
    assert board["editable"] is False
    assert board["title"] and board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    ds = variables["datasource"]
    assert (ds["type"], ds["label"], ds["query"]) == ("datasource", "Data source", "prometheus")
    for var_name in QUERY_VARIABLES:
        var = variables[var_name]
        assert var["type"] == "query"
        assert var["refresh"] == 2 and var["multi"] is True and var["includeAll"] is True
        assert var["allValue"] == ".+"
        assert var["datasource"]["uid"] == DS_UID


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_has_title_description_unit_and_datasource(name: str) -> None:
    panels = DASHBOARDS[name]["panels"]
    assert panels
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        where = f"{name}: {panel.get('title')!r}"
        assert panel.get("title"), where
        assert panel.get("description"), where
        assert panel["fieldConfig"]["defaults"].get("unit"), where
        assert panel["datasource"]["uid"] == DS_UID, where
        assert panel["targets"], where
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DS_UID, where
            assert target["expr"].strip() and target["refId"], where
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), where


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_annotations_are_on_the_datasource_variable(name: str) -> None:
    for item in DASHBOARDS[name]["annotations"]["list"]:
        assert item["datasource"]["uid"] == DS_UID, item["name"]
        assert item.get("expr"), item["name"]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_dashboard_annotates_drift_and_model_changes(name: str) -> None:
    """A model swap explains a latency or cost step as much as a quality one."""
    exprs = [e for _, e in annotation_queries(DASHBOARDS[name])]
    assert any("llm_monitor_drift_events_total" in e for e in exprs)
    assert any("llm_monitor_drift_active" in e for e in exprs)
    assert any("llm_monitor_model_info" in e for e in exprs)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_counters_are_wrapped_and_windows_use_rate_interval(name: str) -> None:
    for expr in all_exprs(DASHBOARDS[name], selectors=False):
        assert unwrapped_counters(expr) == [], expr
        for function, window in range_windows(expr):
            assert window == "$__rate_interval", f"{function}() window {window!r} in {expr}"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_metric_is_in_the_contract(name: str) -> None:
    known = contract_metrics()
    runtime = runtime_metrics()
    assert len(known) > 20 and "process_resident_memory_bytes" in runtime, "could not read the exported names"
    for expr in all_exprs(DASHBOARDS[name]):
        names = {base_metric(n, known) for n in metric_names(expr)}
        assert names, expr
        assert names <= known | PROMETHEUS_BUILTINS | runtime, f"unknown metric(s) {names - known} in {expr}"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_queries_only_use_defined_variables(name: str) -> None:
    board = DASHBOARDS[name]
    defined = {v["name"] for v in board["templating"]["list"]} | {"__rate_interval", "__range", "__interval"}
    for expr in all_exprs(board):
        used = set(re.findall(r"\$\{?([a-zA-Z_][a-zA-Z0-9_]*)", expr))
        assert used <= defined, expr


def test_every_contract_metric_is_on_some_dashboard() -> None:
    known = contract_metrics()
    used = {base_metric(n, known) for board in DASHBOARDS.values() for e in all_exprs(board)
            for n in metric_names(e)}
    assert known - used == set()


def test_every_notification_counter_is_on_the_overview_notifications_panel() -> None:
    """Sent, failed, dropped, suppressed, held and never-sent notifications sit on one panel, each its own series."""
    exported = {n for n in contract_metrics() if n.startswith("llm_monitor_notification") and n.endswith("_total")}
    assert "llm_monitor_notifications_suppressed_total" in exported, "could not read the exported counters"
    board = DASHBOARDS["llm-monitor-overview.json"]
    (panel,) = [p for p in board["panels"] if p["title"] == "Notification delivery"]
    assert panel["fieldConfig"]["defaults"]["unit"] == "short"
    for name in sorted(exported):
        (target,) = [t for t in panel["targets"] if name in metric_names(t["expr"])]
        assert f"increase({name}{{" in target["expr"] and "[$__rate_interval]" in target["expr"], target["expr"]
        assert target["legendFormat"] not in ("", "__auto"), name
    legends = [t["legendFormat"] for t in panel["targets"]]
    assert len(legends) == len(set(legends))


def test_metric_name_parser() -> None:
    expr = ('histogram_quantile(0.95, sum by (target, le) (rate(x_seconds_bucket{job=~"$job", a="b"}'
            '[$__rate_interval]))) / on (job) group_left () time() - y_total')
    assert metric_names(expr) == {"x_seconds_bucket", "y_total"}
    assert unwrapped_counters(expr) == ["y_total"]
    assert range_windows(expr) == [("rate", "$__rate_interval")]


def test_provisioning_files() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert datasources["apiVersion"] == 1
    assert [d["type"] for d in datasources["datasources"]] == ["prometheus"]
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "llm-monitor.yml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
    assert provider["allowUiUpdates"] is False


def test_every_query_parses_in_prometheus(tmp_path: Path) -> None:
    from support.prom import start_prometheus

    with start_prometheus(tmp_path, []) as prom:
        for name, board in DASHBOARDS.items():
            queries = [(w, e) for w, e, _ in dashboard_queries(board)]
            for where, expr in queries:
                try:
                    prom.query(substitute(expr))
                except AssertionError as exc:  # Prometheus answered 400 bad_data
                    pytest.fail(f"{name} {where}: {exc}")
            for var, q in variable_queries(board):
                selector, label = label_values_call(q)
                try:
                    prom.label_values(label, substitute(selector) if selector else None)
                except AssertionError as exc:
                    pytest.fail(f"{name} ${var}: {exc}")
