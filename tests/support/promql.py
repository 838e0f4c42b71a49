"""Read PromQL and Grafana dashboards just enough to check conventions: metric names, counters, windows."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "dashboards"

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
            "offset", "inf", "nan", "atan2"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Metrics Prometheus itself attaches to every scrape; dashboards may use them beside the contract's.
PROMETHEUS_BUILTINS = {"up"}
COUNTER_WRAPPERS = ("rate", "increase", "irate")

_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE_CALL = re.compile(r"\b([a-z_]+)\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*\[([^\]]*)\]")


def contract_metrics() -> set[str]:
    """Return the metric names the daemon exports (read from monitor.telemetry.metrics on a fresh registry)."""
    from prometheus_client import CollectorRegistry

    from monitor.telemetry.metrics import Metrics

    names: set[str] = set()
    for family in Metrics(CollectorRegistry()).registry.collect():
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def runtime_metrics() -> set[str]:
    """Return the process's own families the daemon serves beside its contract (process_*, python_*)."""
    from prometheus_client import CollectorRegistry

    from monitor.telemetry.metrics import register_runtime

    registry = CollectorRegistry()
    register_runtime(registry)
    return {f.name + ("_total" if f.type == "counter" else "") for f in registry.collect()}


def metric_names(expr: str) -> set[str]:
    """Return the metric names a PromQL expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        rest = text[match.end():].lstrip()
        if rest.startswith("(") or match.group().lower() in KEYWORDS:
            continue
        if match.start() > 0 and text[match.start() - 1] in "$.0123456789":
            continue
        names.add(match.group())
    return names


def base_metric(name: str, known: set[str]) -> str:
    """Map a histogram series name (x_bucket, x_sum, x_count) to its metric when x is known."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in known:
            return name[: -len(suffix)]
    return name


def is_counter_series(name: str) -> bool:
    """Return whether a series name is a counter (a _total or a histogram's _bucket/_sum/_count)."""
    return name.endswith(("_total", *HISTOGRAM_SUFFIXES))


def unwrapped_counters(expr: str) -> list[str]:
    """Return counters selected outside rate()/increase()/irate() in an expression."""
    bad = []
    wrapped = {(m.start(2), m.group(2)) for m in _RANGE_CALL.finditer(expr) if m.group(1) in COUNTER_WRAPPERS}
    for name in metric_names(expr):
        if not is_counter_series(name):
            continue
        for m in re.finditer(rf"(?<![a-zA-Z0-9_:]){re.escape(name)}(?![a-zA-Z0-9_:])", expr):
            if (m.start(), name) not in wrapped:
                bad.append(name)
    return bad


def range_windows(expr: str) -> list[tuple[str, str]]:
    """Return (function, window) for every range-vector function call in an expression."""
    return [(m.group(1), m.group(4)) for m in _RANGE_CALL.finditer(expr)]


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Return every dashboards/*.json model by file name."""
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARD_DIR.glob("*.json"))}


def panel_queries(board: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (panel title, target) for every query of every panel, including panels nested in rows."""
    for panel in board.get("panels", []):
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                yield inner.get("title", ""), target


def annotation_queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Yield (name, expr) for every Prometheus annotation of a dashboard."""
    for item in board.get("annotations", {}).get("list", []):
        expr = item.get("expr") or item.get("target", {}).get("expr")
        if expr:
            yield item["name"], expr


def variable_queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Yield (name, query) for every query variable of a dashboard."""
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = var["query"]
            yield var["name"], q["query"] if isinstance(q, dict) else q


def label_values_call(query: str) -> tuple[str | None, str]:
    """Split `label_values(selector, label)` into (selector or None, label)."""
    m = re.fullmatch(r"\s*label_values\((?:(.*),)?\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*", query)
    if not m:
        raise ValueError(f"not a label_values() query: {query}")
    return (m.group(1).strip() if m.group(1) else None), m.group(2)


def substitute(expr: str, rate_interval: str = "15s", range_: str = "5m") -> str:
    """Replace Grafana variables the way an 'All' selection would: $job etc. become '.+'."""
    expr = expr.replace("$__rate_interval", rate_interval).replace("${__rate_interval}", rate_interval)
    expr = expr.replace("$__range", range_).replace("$__interval", "1s")
    expr = re.sub(r"\$\{datasource\}|\$datasource", "", expr)
    return re.sub(r"\$\{?(job|instance|target|canary)\}?", ".+", expr)


def dashboard_queries(board: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """Yield (where, expr, instant) for every panel and annotation query of a dashboard."""
    for title, target in panel_queries(board):
        yield f"panel {title!r} {target['refId']}", target["expr"], bool(target.get("instant"))
    for name, expr in annotation_queries(board):
        yield f"annotation {name!r}", expr, False
