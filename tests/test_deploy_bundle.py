"""The deploy bundle is consistent: YAML parses, compose mounts exist, manifests are complete, rules match."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
YAML_FILES = sorted(p for ext in ("*.yml", "*.yaml") for p in DEPLOY.rglob(ext))


def load_all(path: Path) -> list[dict]:
    """Return every YAML document of a file."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def k8s_objects() -> dict[str, dict]:
    """Return the Kubernetes manifests by kind."""
    objects: dict[str, dict] = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_all(path):
            objects[doc["kind"]] = doc
    return objects


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    assert load_all(path)


def test_compose_has_the_four_services_and_mounts_existing_files() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"llm-monitor", "prometheus", "grafana", "alertmanager"}
    assert (DEPLOY / services["llm-monitor"]["build"]["context"] / services["llm-monitor"]["build"]["dockerfile"]
            ).is_file()
    named = set(compose.get("volumes", {}))
    mounted: dict[str, list[str]] = {}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            mounted.setdefault(name, []).append(target)
            if source in named:
                continue
            assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
    assert "/etc/prometheus/rules.yml" in mounted["prometheus"]
    assert "/etc/alertmanager/alertmanager.yml" in mounted["alertmanager"]
    assert "/etc/grafana/provisioning/dashboards" in mounted["grafana"]
    assert "/etc/llm-monitor/monitor.yaml" in mounted["llm-monitor"]


def test_compose_wiring_matches_the_prometheus_and_grafana_configs() -> None:
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = prom["scrape_configs"]
    assert job["job_name"] == "llm-monitor"
    assert job["static_configs"][0]["targets"] == ["llm-monitor:9464"]
    assert prom["rule_files"] == ["rules.yml"]
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/llm-monitor.yml").read_text())
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    dashboards_mount = next(v for v in compose["services"]["grafana"]["volumes"] if v.startswith("../dashboards:"))
    assert dashboards_mount.split(":")[1] == providers["providers"][0]["options"]["path"]
    am = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    receivers = {r["name"]: r for r in am["receivers"]}
    assert receivers[am["route"]["receiver"]]["webhook_configs"][0]["url"].startswith("http")


def test_dockerfile() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [line for line in re.sub(r"\\\n", " ", text).splitlines() if line and not line.startswith("#")]
    assert instructions[0] == "FROM python:3.11-slim"
    assert any(re.match(r"RUN pip install \.", i) for i in instructions)
    users = [i.split()[1] for i in instructions if i.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert "EXPOSE 9464" in instructions
    assert any(i.startswith("HEALTHCHECK") and "/healthz" in i for i in instructions)
    assert instructions[-1] == 'ENTRYPOINT ["llm-monitor", "run", "-c", "/etc/llm-monitor/monitor.yaml"]'
    for copy in (i for i in instructions if i.startswith("COPY ")):
        *sources, _dest = copy.split()[1:]
        for source in sources:
            if "*" not in source:
                assert (ROOT / source).exists(), f"COPY source {source} missing (context is the repository root)"


def test_systemd_unit() -> None:
    sections: dict[str, dict[str, list[str]]] = {}
    current = ""
    for line in (DEPLOY / "systemd" / "llm-monitor.service").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        sections.setdefault(current, {}).setdefault(key, []).append(value)
    service = sections["Service"]
    assert service["Type"] == ["simple"]
    assert service["ExecStart"][0].endswith("llm-monitor run -c /etc/llm-monitor/monitor.yaml")
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["EnvironmentFile"]
    for option in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "CapabilityBoundingSet",
                   "RestrictAddressFamilies", "SystemCallFilter"):
        assert option in service, option
    assert service["User"] != ["root"]
    assert sections["Install"]["WantedBy"] == ["multi-user.target"]
    assert "After" in sections["Unit"]


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    binary = shutil.which("systemd-analyze")
    if binary is None:
        pytest.skip("systemd-analyze not on PATH")
    # The real ExecStart binary and user do not exist here; swap them for ones that do.
    text = (DEPLOY / "systemd" / "llm-monitor.service").read_text()
    text = re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", text, flags=re.M)
    text = re.sub(r"^(User|Group)=.*$", r"\1=root", text, flags=re.M)
    unit = tmp_path / "llm-monitor.service"
    unit.write_text(text)
    result = subprocess.run([binary, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "llm-monitor.service" not in result.stderr, result.stderr


def test_kubernetes_deployment() -> None:
    objects = k8s_objects()
    assert {"Deployment", "Service", "ConfigMap", "ServiceMonitor", "PrometheusRule"} <= set(objects)
    for obj in objects.values():
        assert obj["apiVersion"] and obj["metadata"]["name"]
    deploy = objects["Deployment"]
    spec = deploy["spec"]["template"]["spec"]
    assert deploy["spec"]["selector"]["matchLabels"].items() <= deploy["spec"]["template"]["metadata"]["labels"].items()
    (container,) = spec["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {p["containerPort"] for p in container["ports"]} == {9464}
    secret_refs = [e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e]
    assert secret_refs, "API keys come from a Secret reference"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    config_volume = next(v for v in spec["volumes"] if "configMap" in v)
    assert config_volume["configMap"]["name"] == objects["ConfigMap"]["metadata"]["name"]
    keys = {item["key"] for item in config_volume["configMap"]["items"]}
    assert keys <= set(objects["ConfigMap"]["data"])
    assert "monitor.yaml" in keys
    # No Secret manifest with values is shipped.
    assert "Secret" not in objects


# The oldest and newest Kubernetes versions whose API schemas kubernetes-validate ships (offline, strict: an
# unknown field such as a misspelt `livenesProbe` fails, which a YAML parse and the checks above let through).
K8S_VERSIONS = ("1.25.0", "1.37.0")
CUSTOM_RESOURCES = {"ServiceMonitor", "PrometheusRule"}  # CRDs of the Prometheus operator: no schema offline


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_manifests_match_the_api_schemas(version: str) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is a test dependency")
    checked = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load_all(path):
            if doc["kind"] in CUSTOM_RESOURCES or path.name == "kustomization.yaml":
                continue
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as e:
                pytest.fail(f"{path.name}: {doc['kind']} against Kubernetes {version}: {e.message} at "
                            f"{'.'.join(map(str, e.path))}", pytrace=False)
            checked.append(doc["kind"])
    assert {"Deployment", "Service", "ConfigMap", "PersistentVolumeClaim"} <= set(checked)


def test_kubernetes_service_and_servicemonitor_agree() -> None:
    objects = k8s_objects()
    service, monitor = objects["Service"], objects["ServiceMonitor"]
    assert service["metadata"]["name"] == "llm-monitor", "the job label the alert rules expect"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= port_names
    assert service["spec"]["selector"].items() <= objects["Deployment"]["spec"]["template"]["metadata"]["labels"].items()


def test_prometheusrule_groups_equal_rules_yml() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    rule = k8s_objects()["PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == rules["groups"]
    result = subprocess.run([sys.executable, str(K8S / "generate_prometheusrule.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    kubectl = shutil.which("kubectl")
    if kubectl:
        result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr


def test_example_configs_validate_against_the_config_models() -> None:
    models = pytest.importorskip("monitor.config.models", reason="monitor.config not available yet")
    configmap = k8s_objects()["ConfigMap"]["data"]
    for text in ((DEPLOY / "monitor.yaml").read_text(), configmap["monitor.yaml"]):
        models.MonitorFile.model_validate(yaml.safe_load(text))
    models.ProbeFile.model_validate(yaml.safe_load(configmap["probes-default.yaml"]))


def _commented(text: str, key: str) -> Any:
    """The commented-out block `key:` of a config file (its lines uncommented), read as YAML."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^\s*#\s*{key}:", line))
    column = lines[start].index("#")
    indent = len(lines[start][column + 1:]) - len(lines[start][column + 1:].lstrip())
    block = [lines[start][column + 1:]]
    for line in lines[start + 1:]:
        body = line[column + 1:] if line[column:column + 1] == "#" else None
        if body is not None and body.lstrip().startswith("#"):
            continue  # a comment inside the commented block
        if body is None or len(body) - len(body.lstrip()) <= indent:
            break
        block.append(body)
    return yaml.safe_load("\n".join(b[indent:] for b in block))


def test_the_commented_external_labels_of_the_daemon_and_prometheus_match() -> None:
    """alerts.external_labels was in neither example: a user setting Prometheus' global.external_labels alone (or the
    daemon's) had pushed alerts and rules' alerts no longer inhibit each other (alertmanager.yml matches on env)."""
    from monitor.alerts.config import AlertsConfig

    daemon = _commented((DEPLOY / "monitor.yaml").read_text(), "alerts")
    prom = _commented((DEPLOY / "prometheus" / "prometheus.yml").read_text(), "external_labels")
    assert daemon["alerts"]["external_labels"] == prom["external_labels"] == {"env": "prod"}
    AlertsConfig.model_validate(daemon["alerts"])
    # the Kubernetes ConfigMap's monitor.yaml had none
    k8s = _commented(k8s_objects()["ConfigMap"]["data"]["monitor.yaml"], "alerts")
    assert k8s == daemon
    am = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    assert set(prom["external_labels"]) <= set(am["route"]["group_by"])


def test_every_bundle_gives_a_stopping_daemon_its_grace_period_and_the_store_retry() -> None:
    # Found by QA: docker compose stops a container with SIGKILL 10 s after SIGTERM unless told otherwise, while
    # the daemon lets in-flight probes finish for daemon.grace_period (30 s) and held writes 10 s more: a
    # `docker compose down` or `restart` lost the calls in flight instead of storing them.
    from monitor.config.models import Daemon
    from monitor.durations import parse_duration
    from monitor.unsaved import UNSAVED_GRACE_S

    needed = Daemon().grace_period + UNSAVED_GRACE_S
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    unit = (DEPLOY / "systemd" / "llm-monitor.service").read_text()
    [timeout_stop] = re.findall(r"^TimeoutStopSec=(\d+)$", unit, flags=re.M)
    pod = k8s_objects()["Deployment"]["spec"]["template"]["spec"]
    stops = {"compose": parse_duration(str(compose["services"]["llm-monitor"].get("stop_grace_period", "10s"))),
             "systemd": float(timeout_stop), "kubernetes": float(pod["terminationGracePeriodSeconds"])}
    assert all(seconds > needed for seconds in stops.values()), (needed, stops)


def test_compose_requires_every_key_monitor_yaml_names_and_its_quick_start_sets_them() -> None:
    # Found by review: the quick start set OPENAI_API_KEY only, compose passed ANTHROPIC_API_KEY as `${...:-}` (empty),
    # so `run` exited 2 over the claude-haiku target's unset key and `restart: unless-stopped` looped on it
    monitor = yaml.safe_load((DEPLOY / "monitor.yaml").read_text())
    keys = {t["api_key_env"] for t in monitor["targets"] if t.get("api_key_env")}
    text = (DEPLOY / "docker-compose.yml").read_text()
    environment = yaml.safe_load(text)["services"]["llm-monitor"]["environment"]
    for key in keys:
        # required: compose refuses to run without it, naming it, instead of starting a daemon that cannot start
        assert re.fullmatch(rf"\$\{{{key}:\?[^}}]*{key}[^}}]*\}}", environment[key]), environment[key]
    quick_start = next(line for line in text.splitlines() if "docker compose up" in line)
    assert quick_start.startswith("#") and all(f"{key}=" in quick_start for key in keys), quick_start
    readme = (DEPLOY / "README.md").read_text()
    documented = next(line for line in readme.splitlines() if "docker compose up" in line)
    assert all(f"{key}=" in documented for key in keys), documented
