"""Small builders for Grafana dashboard JSON models that follow the project's conventions.

Every panel and query uses the `${datasource}` variable, every dashboard carries the same
datasource/job/instance/target/canary variables, and panels are laid out left to right in rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DS: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}

# Label selectors reused by every query; the variables default to "All" (regex ".+").
JOB = 'job=~"$job", instance=~"$instance"'
TARGET = f'{JOB}, target=~"$target"'
CANARY = f'{TARGET}, canary=~"$canary"'

SCHEMA_VERSION = 39
GRID_WIDTH = 24


def query(expr: str, legend: str = "__auto", ref: str = "A", instant: bool = False) -> dict[str, Any]:
    """Return one Prometheus query (a panel target) on the dashboard's datasource variable."""
    return {
        "datasource": DS,
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
        "range": not instant,
        "instant": instant,
        "editorMode": "code",
    }


def quantiles(metric: str, selector: str, by: str, qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> list[dict]:
    """Return histogram_quantile queries of one histogram for each quantile, grouped by `by`."""
    refs = "ABCDEFGH"
    out = []
    for i, q in enumerate(qs):
        expr = (
            f"histogram_quantile({q}, sum by ({by}, le) "
            f"(rate({metric}_bucket{{{selector}}}[$__rate_interval])))"
        )
        label = " ".join("{{" + name.strip() + "}}" for name in by.split(","))
        out.append(query(expr, f"p{round(q * 100)} {label}", refs[i]))
    return out


def variable_query(name: str, label: str, definition: str) -> dict[str, Any]:
    """Return a multi-select query variable refreshed on time-range change with allValue '.+'."""
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DS,
        "definition": definition,
        "query": definition,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".+",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "regex": "",
        "sort": 1,
        "hide": 0,
    }


def standard_variables() -> list[dict[str, Any]]:
    """Return the datasource, job, instance, target and canary variables every dashboard carries."""
    return [
        {
            "type": "datasource",
            "name": "datasource",
            "label": "Data source",
            "query": "prometheus",
            "current": {},
            "options": [],
            "refresh": 1,
            "regex": "",
            "hide": 0,
        },
        variable_query("job", "Job", "label_values(llm_monitor_build_info, job)"),
        variable_query("instance", "Instance", 'label_values(llm_monitor_build_info{job=~"$job"}, instance)'),
        variable_query("target", "Target", f"label_values(llm_monitor_probe_attempts_total{{{JOB}}}, target)"),
        variable_query(
            "canary", "Canary", f"label_values(llm_monitor_probe_attempts_total{{{TARGET}}}, canary)"
        ),
    ]


def annotation(name: str, expr: str, title: str, text: str, tags: str, color: str) -> dict[str, Any]:
    """Return a Prometheus annotation; Grafana marks the steps where the query's value is 1."""
    return {
        "name": name,
        "datasource": DS,
        "enable": True,
        "hide": False,
        "iconColor": color,
        "expr": expr,
        "step": "$__rate_interval",
        "titleFormat": title,
        "textFormat": text,
        "tagKeys": tags,
        "useValueForTime": False,
    }


@dataclass
class Panel:
    """One visualisation: kind (timeseries, stat, table, bargauge), texts, unit and queries."""

    kind: str
    title: str
    description: str
    unit: str
    targets: list[dict[str, Any]]
    width: int = 12
    height: int = 8
    minimum: float | None = None
    maximum: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        """Return the Grafana JSON of this panel placed at (x, y)."""
        defaults: dict[str, Any] = {"unit": self.unit}
        if self.minimum is not None:
            defaults["min"] = self.minimum
        if self.maximum is not None:
            defaults["max"] = self.maximum
        if self.kind == "timeseries":
            defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "spanNulls": True}
        options = dict(self.options)
        if self.kind == "timeseries":
            options.setdefault("legend", {"displayMode": "list", "placement": "bottom", "showLegend": True})
            options.setdefault("tooltip", {"mode": "multi", "sort": "desc"})
        if self.kind == "stat":
            options.setdefault("reduceOptions", {"calcs": ["lastNotNull"], "fields": "", "values": False})
            options.setdefault("colorMode", "value")
            options.setdefault("graphMode", "area")
        return {
            "id": panel_id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": DS,
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options,
            "targets": self.targets,
        }


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[Panel],
    annotations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return a complete, read-only dashboard model with panels flowed into rows."""
    laid_out = []
    x = y = row_height = 0
    for i, panel in enumerate(panels, start=1):
        if x + panel.width > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        laid_out.append(panel.to_json(i, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["llm-monitor"],
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": annotations or []},
        "templating": {"list": standard_variables()},
        "links": [
            {"type": "dashboards", "tags": ["llm-monitor"], "asDropdown": True, "title": "llm-monitor",
             "includeVars": True, "keepTime": True}
        ],
        "panels": laid_out,
    }
