"""Write kubernetes/prometheusrule.yaml from prometheus/rules.yml so both carry the same groups.

Usage: python deploy/kubernetes/generate_prometheusrule.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[1]
RULES = DEPLOY / "prometheus" / "rules.yml"
OUTPUT = DEPLOY / "kubernetes" / "prometheusrule.yaml"
HEADER = (
    "# Generated from deploy/prometheus/rules.yml by deploy/kubernetes/generate_prometheusrule.py; do not edit.\n"
    "# The Prometheus Operator loads PrometheusRules whose labels match its ruleSelector (adjust `release`).\n"
)


class _Dumper(yaml.SafeDumper):
    """A YAML dumper that writes multi-line strings (PromQL) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render() -> str:
    """Return the PrometheusRule manifest text for the current rules.yml."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "llm-monitor",
            "labels": {"app.kubernetes.io/name": "llm-monitor", "release": "prometheus"},
        },
        "spec": {"groups": groups},
    }
    return HEADER + yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, width=4096, allow_unicode=True)


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, verify) the PrometheusRule manifest; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the manifest is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
