"""The `alerts:` config section: defaults, and every rejection with its message."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from monitor.alerts.config import AlertsConfig
from monitor.config import load_config
from monitor.errors import ConfigError
from tests.conftest import write_config


def test_defaults() -> None:
    c = AlertsConfig()
    assert c.external_url == "http://127.0.0.1:9464"
    assert c.cooldown == 1800 and c.resend_interval == 60 and c.sinks == [] and c.routes == []


def test_durations_and_sinks_parse() -> None:
    c = AlertsConfig.model_validate({
        "cooldown": "10m", "resend_interval": "30s", "retry": {"initial": "2s", "max": "10m"},
        "sinks": [{"name": "hook", "type": "webhook", "url_env": "HOOK_URL", "secret_env": "HOOK_SECRET"},
                  {"name": "pd", "type": "pagerduty", "routing_key_file": "/run/secrets/pd"}],
        "routes": [{"match": {"kind": "drift.opened"}, "sinks": ["pd", "hook"]}]})
    assert c.cooldown == 600 and c.resend_interval == 30 and c.retry.initial == 2
    assert c.sink("pd").type == "pagerduty"


@pytest.mark.parametrize(("data", "message"), [
    ({"sinks": [{"name": "s", "type": "slack", "url": "https://hooks.slack.com/services/T/B/X"}]},
     "a Slack webhook URL is a secret: put it in an environment variable and name it with url_env"),
    ({"sinks": [{"name": "w", "type": "webhook", "url": "http://x", "secret_env": "whsec_c2VjcmV0"}]},
     "must be the NAME of an environment variable holding the secret"),
    ({"sinks": [{"name": "w", "type": "webhook", "url": "http://x", "secret": "whsec_c2VjcmV0"}]},
     "Extra inputs are not permitted"),
    ({"sinks": [{"name": "p", "type": "pagerduty", "routing_key": "R0ABCDEF"}]},
     "routing_key is not accepted in the config text"),
    ({"sinks": [{"name": "p", "type": "pagerduty"}]}, "set exactly one of routing_key_env or routing_key_file"),
    ({"sinks": [{"name": "w", "type": "webhook"}]}, "set exactly one of url, url_env or url_file"),
    ({"sinks": [{"name": "w", "type": "webhook", "url": "ftp://x"}]}, "must be an http:// or https:// URL"),
    ({"sinks": [{"name": "w", "type": "email"}]}, "does not match any of the expected tags"),
    ({"sinks": [{"name": "W!", "type": "alertmanager", "url": "http://x"}]}, "must be lowercase letters"),
    ({"sinks": [{"name": "a", "type": "alertmanager", "url": "http://x"},
                {"name": "a", "type": "alertmanager", "url": "http://y"}]}, "duplicate sink names: a"),
    ({"routes": [{"match": {}, "sinks": ["nowhere"]}]}, "routes[0] names unknown sinks: nowhere"),
    ({"routes": [{"match": {"severity": "high"}, "sinks": []}]}, "unknown severity 'high'"),
    ({"routes": [{"match": {"kind": "drift.exploded"}, "sinks": []}]}, "'drift.exploded' matches no event kind"),
    ({"cooldown": "soon"}, "not a duration: 'soon'"),
    ({"resend_interval": "0s"}, "must be at least 1s"),
    # both accepted at 0: a sink whose every attempt timed out at once, retries at once in a loop (README: an
    # attempt must finish within the sink's `timeout`; backoff from `initial` doubling to `max`)
    ({"sinks": [{"name": "w", "type": "webhook", "url": "http://x", "timeout": "0s"}]}, "greater than 0"),
    ({"retry": {"initial": 0}}, "greater than 0"),
    ({"retry": {"max": "0s"}}, "greater than 0"),
    # accepted at 0 or under the first retry's delay: every notification given up on at its first failed attempt
    ({"retry": {"give_up_after": 0}}, "must be at least group_wait + retry.initial (35s)"),
    ({"group_wait": "1m", "retry": {"initial": "10s", "give_up_after": "69s"}},
     "must be at least group_wait + retry.initial (1m10s)"),
    ({"group_wait": "1d"}, "must be at least group_wait + retry.initial (1d5s)"),  # the default checked too
    ({"webhooks": []}, "Extra inputs are not permitted"),
    # alerts.external_labels: Prometheus label names, none it reserves nor one a pushed alert sets itself
    ({"external_labels": {"9env": "prod"}}, "not a classic Prometheus label name"),
    ({"external_labels": {"env-name": "prod"}}, "not a classic Prometheus label name"),
    ({"external_labels": {"région": "prod"}}, "the UTF-8 names of Prometheus 3 are not taken"),
    ({"external_labels": {"__env": "prod"}}, "label names beginning with '__' are reserved by Prometheus"),
    ({"external_labels": {"target": "prod"}}, "'target' is a label every alert llm-monitor pushes sets itself"),
    ({"external_labels": {"alertname": "x"}}, "'alertname' is a label every alert llm-monitor pushes sets itself"),
    ({"external_labels": {"env": ""}}, "an empty label value is no label in Alertmanager: leave the label out"),
    # Prometheus keeps `version: 1.10` and `canary_env: yes` as written; YAML here read 1.1 and True: the two sides'
    # values differed and the inhibits matching on the label no longer matched
    ({"external_labels": {"version": 1.10}}, "write it quoted: YAML reads it as the float 1.1"),
    ({"external_labels": {"blue": True}}, "write it quoted: YAML reads it as the bool True"),
    ({"external_labels": ["env=prod"]}, "Input should be a valid dictionary"),
])
def test_rejections(data: dict, message: str) -> None:
    with pytest.raises(ValidationError) as e:
        AlertsConfig.model_validate(data)
    assert message in str(e.value)


def test_give_up_after_leaves_room_for_a_first_retry(tmp_path: Path) -> None:
    """Found by a newcomer walk-through: `retry.give_up_after: 0` passed check-config, and every notification was
    then given up on at its first failed attempt. The bound is where a first retry fits in: a notification is first
    tried up to group_wait after it is written, its first retry up to retry.initial after that."""
    assert AlertsConfig.model_validate({"retry": {"give_up_after": "35s"}}).retry.give_up_after == 35
    assert AlertsConfig.model_validate({"group_wait": 0, "retry": {"initial": "1s", "give_up_after": "1s"}})
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries: []\n", extra="alerts:\n  group_wait: 30s\n  retry:\n    initial: 5s\n"
                                             "    give_up_after: 0\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    [issue] = e.value.issues
    assert (issue.field, issue.line, issue.value) == ("alerts.retry.give_up_after", 10, 0), issue
    assert str(issue).startswith(f"{cfg}:10: alerts.retry.give_up_after: must be at least group_wait + retry.initial "
                                 "(35s): "), issue
    assert str(issue).endswith(" (value: 0)"), issue


def test_retry_max_under_initial_is_refused_naming_both_values(tmp_path: Path) -> None:
    """`retry.max: 1s` under `retry.initial: 5s` was accepted: every retry then waited up to 1s, the initial written
    never used. Refused at the line of `max`, with both values."""
    assert AlertsConfig.model_validate({"retry": {"initial": "5s", "max": "5s"}}).retry.max == 5
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries: []\n", extra="alerts:\n  retry:\n    initial: 5s\n    max: 1s\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    [issue] = e.value.issues
    assert (issue.field, issue.line, issue.value) == ("alerts.retry.max", 9, "1s"), issue
    assert str(issue).startswith(f"{cfg}:9: alerts.retry.max: must be at least retry.initial (5s): "), issue
    assert str(issue).endswith(" (value: '1s')"), issue


@pytest.mark.parametrize(("written", "read"), [("010", 8), ("0x1F", 31), ("1_000", 1000), ("1:30", 90), ("+5", 5)])
def test_an_int_label_value_not_written_as_its_digits_is_refused_as_written(tmp_path: Path, written: str,
                                                                            read: int) -> None:
    """`build: 010` became the label build="8" (YAML 1.1 reads 010 as octal), where Prometheus' external_labels keep
    "010": inhibits matching on it across the two sides no longer matched. Refused as a float or a bool is, showing
    the text written and the number read; `replica: 1` is still the label "1"."""
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries: []\n", extra=f"alerts:\n  external_labels:\n    replica: 1\n    build: {written}\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    [issue] = e.value.issues
    assert (issue.field, issue.line) == ("alerts.external_labels.build", 9), issue
    assert f"write it quoted: YAML reads {written} as the int {read}, where Prometheus' external_labels keep the " \
        "text as written" in str(issue), issue
    cfg.write_text(cfg.read_text().replace(f"build: {written}", f"build: '{written}'"))
    assert load_config(cfg, environ={}).alerts.external_labels == {"replica": "1", "build": written}


def test_external_labels_name_the_label_refused_and_its_line(tmp_path: Path) -> None:
    assert AlertsConfig.model_validate({"external_labels": {"env": "prod", "replica": 1}}).external_labels == \
        {"env": "prod", "replica": "1"}  # a number is a label value, as Prometheus reads its external_labels
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries: []\n", extra="alerts:\n  external_labels:\n    env: prod\n    severity: high\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    [issue] = e.value.issues
    assert str(issue) == (f"{cfg}:9: alerts.external_labels.severity.[key]: 'severity' is a label every alert "
                          "llm-monitor pushes sets itself (alertname, canary, target, signal, severity); name the "
                          "deployment with another label (env, cluster, team)"), issue


def test_a_refused_external_label_key_that_is_no_name_is_never_shown(tmp_path: Path) -> None:
    """A token pasted where a label name goes (`xoxb-...: team`) was shown twice, in the field and the reason, by
    check-config, run and reload; a key that is a name (a label refused as reserved) still is."""
    token = "xoxb-1234567890-abcdefghijklmnop"
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries: []\n", extra=f"alerts:\n  external_labels:\n    env: prod\n    {token}: team\n"
                                             "    __env: x\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    assert token not in str(e.value)
    assert [(i.field, i.line, i.value) for i in e.value.issues] == [
        ("alerts.external_labels.[key]", 9, None), ("alerts.external_labels.__env.[key]", 10, None)], e.value


@pytest.mark.parametrize("value", ["null", "{}", "[5m]", "{value: 5m}"])
def test_a_duration_of_the_wrong_type_is_an_issue_naming_its_field(tmp_path: Path, value: str) -> None:
    """A duration (alerts' cooldown, retry.*) given null, a list or a mapping raised AttributeError ('dict' object
    has no attribute 'strip') out of load_config: check-config exited 1 with a traceback."""
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries: []\n", extra=f"alerts:\n  cooldown: {value}\n  retry: {{initial: {value}}}\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    assert [(i.field, i.line) for i in e.value.issues] == [("alerts.cooldown", 7), ("alerts.retry.initial", 8)]
    assert all(i.reason.startswith("not a duration: ") for i in e.value.issues), e.value


def test_a_duration_too_large_for_a_float_is_too_long() -> None:
    """An int past 1e308 (4,000 digits, within what YAML reads) raised OverflowError converting to float."""
    with pytest.raises(ValidationError, match=r"alerts|cooldown") as e:
        AlertsConfig.model_validate({"cooldown": 10**4000})
    assert "duration too long: 1000000000" in str(e.value) and "(at most 100 years)" in str(e.value)


@pytest.mark.parametrize(("url", "problem"), [
    ("http://am:9093/api/v2/alerts", "/api/v2/alerts"), ("http://am:9093/api/v2", "/api/v2"),
    ("http://am:9093/api/v1/alerts/", "/api/v1/alerts"), ("http://am:9093/prefix/api/v1", "/api/v1"),
    ("http://am:9093/?x=1", "a query string"), ("http://am:9093/am#top", "a fragment"),
    ("http://am:9093?", "a query string")])
def test_an_alertmanager_url_with_the_api_path_a_query_or_a_fragment_is_refused_where_written(
        tmp_path: Path, url: str, problem: str) -> None:
    """Found by QA: the sink appends /api/v2/alerts itself, so `url: http://am:9093/api/v2/alerts` posted to
    .../api/v2/alerts/api/v2/alerts (a 404 at every send), and a query or fragment went in the middle of the path.
    Refused at load, naming the file, line, field and value; the base URL (with a route prefix) still loads."""
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries: []\n", extra=f"alerts:\n  sinks:\n    - name: am\n      type: alertmanager\n"
                                             f"      url: '{url}'\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    [issue] = e.value.issues
    line = next(n for n, text in enumerate(cfg.read_text().splitlines(), 1) if text.strip().startswith("url:"))
    assert (issue.field, issue.line, issue.value) == ("alerts.sinks[0].url", line, url), issue
    assert str(issue).startswith(f"{cfg}:{line}: alerts.sinks[0].url: "), issue
    assert problem in str(issue) and "appends /api/v2/alerts" in str(issue), issue
    for fine in ("http://am:9093", "http://am:9093/", "https://am.example/alertmanager", "http://am:9093/apis/v2"):
        cfg.write_text(cfg.read_text().replace(f"'{url}'", f"'{fine}'"))
        assert load_config(cfg, environ={}).alerts.sinks[0].url == fine.rstrip("/")  # type: ignore[union-attr]
        url = fine


def test_an_alertmanager_url_from_the_environment_with_the_api_path_is_refused_naming_the_variable() -> None:
    from monitor.alerts.sinks import build_sinks
    from monitor.errors import SecretError

    cfg = AlertsConfig.model_validate({"sinks": [{"name": "am", "type": "alertmanager", "url_env": "AM_URL"}]})
    with pytest.raises(SecretError) as e:
        build_sinks(cfg, {"AM_URL": "http://am:9093/s3cretpath/api/v2/alerts"})
    assert "url_env AM_URL" in str(e.value) and "/api/v2/alerts" in str(e.value), e.value
    assert "s3cretpath" not in str(e.value)
    assert build_sinks(cfg, {"AM_URL": "http://am:9093/s3cretpath"})["am"].url == "http://am:9093/s3cretpath"


@pytest.mark.parametrize("key", ["kind", "severity", "target", "canary", "tags"])
def test_a_route_match_glob_longer_than_any_name_is_refused(key: str) -> None:
    """A glob of 1M characters took fnmatch a minute to compile on load, and would again for each event (found by
    fuzzing); no id, kind, severity or tag is that long."""
    from pydantic import ValidationError

    from monitor.alerts.config import MAX_GLOB, Match

    Match.model_validate({key: ["*" * MAX_GLOB]})  # as long as one may be: taken (it matches what it matches)
    with pytest.raises(ValidationError) as e:
        Match.model_validate({key: ["*" * (MAX_GLOB + 1)]})
    (error,) = e.value.errors()
    assert error["loc"] == (key, 0) and f"at most {MAX_GLOB} characters" in error["msg"]
