"""The valid inputs every case starts from: a monitor.yaml (both providers, every sink type, drift settings), a probe
file of its own (cron, judges, regexes, a JSON schema), the shipped probe library and a web config file, plus
the environment they read, whose values are the secrets no message may show (`SECRETS`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
LIBRARY = sorted((ROOT / "probes").glob("*.yaml"))

# Values of the variables the config reads: none may appear in a message or in check-config's output.
ENV = {
    "FUZZ_OPENAI_KEY": "sk-fuzz-openai-5ecret-0a1b2c3d4e5f",
    "FUZZ_ORG_TOKEN": "orgtok-5ecret-9f8e7d6c5b4a",
    "FUZZ_SLACK_URL": "https://hooks.slack.test/services/T0/B0/5ecretslackpath",
    "FUZZ_HOOK_SECRET": "whsec_NWVjcmV0d2ViaG9va3NpZ25pbmdrZXkxMjM0NQ==",
    "FUZZ_PD_KEY": "pdkey-5ecret-routing-0123456789",
    "FUZZ_PG_HOST": "db.internal",
}
KEY_FILE_SECRET = "sk-ant-fuzz-5ecret-keyfile-contents"
SECRETS = [v for k, v in ENV.items() if k != "FUZZ_PG_HOST"] + [KEY_FILE_SECRET]

MONITOR: dict[str, Any] = {
    "targets": [
        {"id": "gpt", "provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "gpt-4o-mini",
         "api_key_env": "FUZZ_OPENAI_KEY", "headers": {"X-Org-Token": "${FUZZ_ORG_TOKEN}"},
         "params": {"temperature": 0.2, "max_tokens": 300, "top_p": 0.9, "seed": 7},
         "prices": {"input": 0.15, "cached_input": 0.075, "output": 0.6}, "daily_spend_cap_usd": 5,
         "timeout": 30, "max_concurrency": 2, "reasoning_tags": "auto"},
        {"id": "claude", "provider": "anthropic", "base_url": "https://api.anthropic.test", "model": "claude-x",
         "api_key_file": "keys/anthropic.key", "stream": False, "max_reply_bytes": 1048576,
         "prices": {"input": 3, "cached_input": 0.3, "cache_write_input": 3.75, "cache_write_1h_input": 6,
                    "output": 15}},
        {"id": "judge", "provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "judge-model",
         "api_key_env": "FUZZ_OPENAI_KEY", "canaries": "listed"},
    ],
    "probes": ["./probes"],
    "storage": {"url": "sqlite:///m.db", "retention_days": 30},
    "http": {"listen": "127.0.0.1:9464", "reload_token_env": "FUZZ_RELOAD_TOKEN", "web_config_file": "web.yml"},
    "daemon": {"grace_period": 10, "max_start_delay": 5},
    "drift": {"enabled": True, "baseline_size": 30, "baseline_outage_run": 3, "window": 30, "eval_every": 10,
              "false_alarms_per_10k": 0.5, "false_alarms_per_day": 1.0, "mmd_permutations": 200, "mmd_every": 30,
              "disabled_signals": ["check:fuzz-json"],
              "embeddings": {"target": "gpt", "model": "text-embedding-3-small", "prices": {"input": 0.02}}},
    "alerts": {
        "external_url": "http://mon.example:9464", "cooldown": "30m", "group_wait": "30s", "resend_interval": 60,
        "retry": {"initial": "5s", "max": "1h", "give_up_after": "1d", "max_retry_after": 3600},
        "sinks": [
            {"name": "hook", "type": "webhook", "url": "https://hooks.example/x", "secret_env": "FUZZ_HOOK_SECRET",
             "timeout": 5},
            {"name": "slack", "type": "slack", "url_env": "FUZZ_SLACK_URL"},
            {"name": "am", "type": "alertmanager", "url": "http://alertmanager.example:9093"},
            {"name": "pd", "type": "pagerduty", "routing_key_env": "FUZZ_PD_KEY"},
        ],
        "routes": [
            {"match": {"severity": "critical", "target": ["gpt", "claude*"]}, "sinks": ["pd", "slack"]},
            {"match": {"kind": ["drift.*"], "tags": ["fuzz"], "canary": "fuzz-*"}, "sinks": ["hook", "am"]},
        ],
    },
    "refusal": {"judge_target": "judge", "min_agreement": 0.9, "band": [0.3, 0.7]},
}

FUZZ_PROBES: dict[str, Any] = {"canaries": [
    {"id": "fuzz-cron-judge", "description": "cron, a judge, a regex",
     "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}],
     "params": {"temperature": 0, "max_tokens": 50}, "samples": 2,
     "schedule": {"cron": "*/15 * * * *", "jitter": "10s"}, "targets": ["gpt", "claude"],
     "checks": [{"type": "regex", "pattern": "^(red|green|blue)\\b", "flags": ["i"], "name": "colour"},
                {"type": "llm_judge", "judge_target": "judge", "rubric": "Names exactly one colour.",
                 "name": "one-colour"}],
     "tags": ["fuzz"], "zero_tolerance": ["error", "check:colour"]},
    {"id": "fuzz-json", "messages": [{"role": "user", "content": "Give {\"n\": 1} as JSON."}],
     "schedule": {"every": "10m", "jitter": "30s"},
     "checks": [{"type": "json_schema", "name": "fuzz-json",
                 "schema": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}}]},
]}

WEB: dict[str, Any] = {
    "tls_server_config": {"cert_file": "tls/cert.pem", "key_file": "tls/key.pem",
                          "client_auth_type": "VerifyClientCertIfGiven", "client_ca_file": "tls/ca.pem",
                          "min_version": "TLS12", "max_version": "TLS13"},
    "basic_auth_users": {"prometheus": "$2b$04$" + "C" * 53},
}


def write_fixed(folder: Path) -> None:
    """Write what no case mutates: the key file and the TLS files (one PKI for a whole run)."""
    from tests.support.pki import Pki

    (folder / "keys").mkdir(parents=True, exist_ok=True)
    (folder / "keys" / "anthropic.key").write_text(KEY_FILE_SECRET + "\n")
    Pki.make(folder / "tls")


def copy_fixed(source: Path, folder: Path) -> None:
    for name in ("keys", "tls"):
        shutil.copytree(source / name, folder / name, dirs_exist_ok=True)
