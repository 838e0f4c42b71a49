"""Values the schema's types accept but the daemon cannot use: infinite or century-long durations, header names
and values HTTP cannot carry, ports past 65535, model names longer than the store's column. Each is refused on
load, naming file, line, field and value; before, they surfaced later as a dead housekeeping task (retention never
ran), an overflow in the scheduler or the alert policy, or every call failing as if the upstream were at fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.errors import ConfigError
from tests.conftest import write_config
from tests.support.daemon import cli

TARGET = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m%s}"
PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n%s"


@pytest.mark.parametrize(("target", "probe", "extra", "expected"), [
    ("", "", "storage: {retention_days: .inf}\n",
     "storage.retention_days: Input should be a finite number (value: inf)"),
    ("", "", "storage: {retention_days: 1000000}\n", "storage.retention_days: Input should be less than or equal to"),
    ("", "", "storage: {url: 'postgresql+psycopg://u@db.example:abc/m'}\n",
     "storage.url: the port must be a number from 1 to 65535, not 'abc' (value: 'postgresql+psycopg://u@db.example:abc/m')"),
    ("", "", "storage: {url: 'postgresql+psycopg://u@[::1]:70000/m'}\n",
     "storage.url: the port must be a number from 1 to 65535, not '70000'"),
    ("", "", "storage: {url: 'postgresql://u@h:0/m'}\n", "storage.url: the port must be a number from 1 to 65535, not '0'"),
    ("", "", "storage: {url: 'postgresql://u@h1:5432,h2:5433/m'}\n",
     "storage.url: the port must be a number from 1 to 65535, not '5432,h2:5433'"),
    ("", "", "daemon: {max_start_delay: .inf}\n", "daemon.max_start_delay: duration too long: inf (at most 100 years)"),
    ("", "", "daemon: {grace_period: .inf}\n", "daemon.grace_period: duration too long: inf (at most 100 years)"),
    ("", "", "alerts: {cooldown: .inf}\n", "alerts.cooldown: duration too long: inf (at most 100 years)"),
    ("", "", "alerts: {retry: {give_up_after: 999999999999d}}\n",
     "alerts.retry.give_up_after: duration too long: '999999999999d'"),
    ("", "    schedule: {every: 99999999999d}\n", "",
     "canaries[0].schedule.every: duration too long: '99999999999d'"),
    (", timeout: .inf", "", "", "targets[0].timeout: duration too long: inf (at most 100 years) (value: inf)"),
    (", max_reply_bytes: 100", "", "",
     "targets[0].max_reply_bytes: Input should be greater than or equal to 1024 (value: 100)"),
    (", prices: {input: .inf, output: 1}", "", "", "targets[0].prices.input: Input should be a finite number"),
    (", prices: {input: 3, output: 15, cache_write_input: -1}", "", "",
     "targets[0].prices.cache_write_input: Input should be greater than or equal to 0 (value: -1)"),
    (", prices: {input: 3, output: 15, cache_write_1h_input: .inf}", "", "",
     "targets[0].prices.cache_write_1h_input: Input should be a finite number (value: inf)"),
    (", prices: {input: 3, output: 15, cache_write_1h_input: six}", "", "",
     "targets[0].prices.cache_write_1h_input: Input should be a valid number, unable to parse string as a number "
     "(value: 'six')"),
    (", prices: {input: 3, output: 15, cache_write_5m_input: 3.75}", "", "",
     "targets[0].prices.cache_write_5m_input: unknown key (value: 3.75)"),
    (", headers: {'X Team': a}", "", "", "targets[0].headers: header name 'X Team' is not a valid HTTP header name"),
    (", headers: {X-Team: \"a\\r\\nX-Injected: 1\"}", "", "",
     "targets[0].headers: header 'X-Team': its value must be printable ASCII on one line"),
    (", headers: {X-Team: café}", "", "", "targets[0].headers: header 'X-Team': its value must be printable ASCII"),
    ("", "    checks: [{type: contains, value: a, name: " + "n" * 75 + "}]\n", "",
     "canaries[0].checks[0].name: at most 74 characters (75 given): a check's name is a metric label and a "
     "webhook field, `check:NAME` a drift signal (value: '" + "n" * 75 + "')"),
    ("", "    checks: [{type: contains, value: a, name: " + "n" * 74 + "}, {type: equals, value: a, name: "
     + "n" * 74 + "}]\n", "",
     "canaries[0].checks: checks[1] is named '" + "n" * 74 + "#2' as a repeat (76 characters): a check's result "
     "name is at most 74; give it a shorter `name`"),
    # a test that runs less than once in 10,000 observations (the longest window) never runs: no upper bound before
    ("", "", "drift: {eval_every: 10001}\n", "drift.eval_every: Input should be less than or equal to 10000 "
     "(value: 10001)"),
    ("", "", "drift: {mmd_every: 1000000000}\n", "drift.mmd_every: Input should be less than or equal to 10000"),
    ("", "", "drift: {eval_every: 10000, mmd_every: 10000}\n", None),
    ("", "", "drift: {mmd_every: yes}\n", "drift.mmd_every: a number, not a boolean"),
    ("", "", "drift: {embeddings: {target: t, model: \"emb\\x00ed\"}}\n",
     "drift.embeddings.model: must be on one line: it holds a control character (character 4 of 6), which no model "
     "name has (value: 'emb\\x00ed')"),
    ("", "", "drift: {embeddings: {target: t, model: \"emb\\n\"}}\n", "drift.embeddings.model: must be on one line: it "
     "holds a control character (character 4 of 4)"),
    ("", "", "drift: {embeddings: {target: t, model: \"emb\\x9bed\"}}\n", "drift.embeddings.model: must be on one line: "
     "it holds a control character (character 4 of 6)"),
    (", model: \"m\\x85\"", "", "", "targets[0].model: must be on one line: it holds a control character (character 2 of "
     "2)"),
    ("", "", "http: {listen: \"127.0.0.1\\x00:9464\"}\n", "http.listen: must be HOST:PORT on one line: it holds a "
     "control character (character 10 of 15) (value: '127.0.0.1\\x00:9464')"),
    ("", "", "http: {listen: \"local\\x85host:9464\"}\n", "http.listen: must be HOST:PORT on one line: it holds a "
     "control character (character 6 of 15)"),
    ("", "", "http: {listen: \"localhost:9464\\n\"}\n", "http.listen: must be HOST:PORT on one line: it holds a "
     "control character (character 15 of 15)"),
    # Found by a newcomer's walk-through: `127.0.0.1::9464` (a colon too many) passed check-config, and `run` then
    # failed to resolve host `127.0.0.1:`; a host holding a colon is an IPv6 address, or nothing can bind it
    ("", "", "http: {listen: \"127.0.0.1::9464\"}\n", "http.listen: its host 127.0.0.1: is no IPv6 address, the only "
     "host with a colon in it: write HOST:PORT (127.0.0.1:9464), an IPv6 address in brackets ([::1]:9464) "
     "(value: '127.0.0.1::9464')"),
    ("", "", "http: {listen: \"[::1:9464\"}\n", "http.listen: its host [::1 is no IPv6 address"),
    ("", "", "http: {listen: \"[localhost]:9464\"}\n", "http.listen: its host [localhost] is no IPv6 address"),
    ("", "", "http: {listen: \"::1:9464\"}\n", None),
    ("", "", "http: {listen: \"[::1]:9464\"}\n", None),
    ("", "    checks: [{type: json_schema, schema: {allOf: [{$ref: '#'}]}}]\n", "",
     "canaries[0].checks[0].schema: invalid JSON Schema at allOf/0: $ref '#' comes back to where it started "
     "(# -> #/allOf/0 -> #) without reading deeper into the answer: validating it would never end"),
    ("", "    checks: [{type: json_schema, schema: {$defs: {a: {$id: y, allOf: [{$ref: y}]}}, $ref: '#/$defs/a'}}]\n", "",
     "canaries[0].checks[0].schema: invalid JSON Schema at $defs/a/allOf/0: $ref 'y' comes back to where it started "
     "(#/$defs/a -> #/$defs/a/allOf/0 -> #/$defs/a)"),
    ("", "    checks: [{type: json_schema, schema: {$defs: {a: {$id: 'https://x.example/a', $schema: 'https://x.example/d'}}}}]\n",
     "", "canaries[0].checks[0].schema: invalid JSON Schema at $defs/a/$schema: 'https://x.example/d' is no dialect "
     "jsonschema knows"),
    ("", "    tools: [{type: function, function: {name: f, parameters: {$defs: {p: {$ref: '#/$defs/p'}}}}}]\n", "",
     "canaries[0].tools[0]: function.parameters: invalid JSON Schema at $defs/p: $ref '#/$defs/p' comes back"),
    (", params: {max_tokens: 100000000000000}", "", "",
     "targets[0].params.max_tokens: Input should be less than or equal to 1000000 (value: 100000000000000)"),
    (", params: {max_tokens: 0}", "", "", "targets[0].params.max_tokens: Input should be greater than or equal to 1"),
    (", prices: {input: 1e300, output: 1}", "", "",
     "targets[0].prices.input: Input should be less than or equal to 10000 (value: '1e300')"),
    (", prices: {input: 3, output: 15, cached_input: 20000}", "", "",
     "targets[0].prices.cached_input: Input should be less than or equal to 10000 (value: 20000)"),
    ("", "", "drift: {embeddings: {target: t, model: e, prices: {input: 1e9}}}\n",
     "drift.embeddings.prices.input: Input should be less than or equal to 10000"),
    # YAML 1.1 reads true, yes, on (false, no, off) as booleans, and pydantic took them as 1 and 0
    (", params: {max_tokens: true}", "", "", "targets[0].params.max_tokens: a number, not a boolean: YAML reads "
     "true, false, yes, no, on and off as booleans (value: 'true')"),
    (", prices: {input: yes, output: 1}", "", "", "targets[0].prices.input: a number, not a boolean: YAML reads "
     "true, false, yes, no, on and off as booleans (value: 'yes')"),
    ("", "    samples: on\n", "", "canaries[0].samples: a number, not a boolean"),
    ("", "    params: {temperature: off}\n", "", "canaries[0].params.temperature: a number, not a boolean"),
    # the seed is a signed 64-bit integer at the OpenAI API (and as the gen_ai.request.seed span attribute): a larger
    # one was sent with every call
    (", params: {seed: 9223372036854775808}", "", "", "targets[0].params.seed: Input should be less than or equal to "
     "9223372036854775807 (value: 9223372036854775808)"),
    ("", "    params: {seed: -9223372036854775809}\n", "", "canaries[0].params.seed: Input should be greater than or "
     "equal to -9223372036854775808 (value: -9223372036854775809)"),
    ("", "    params: {seed: 1e30}\n", "", "canaries[0].params.seed: Input should be a valid integer"),
    (", params: {seed: yes}", "", "", "targets[0].params.seed: a number, not a boolean: YAML reads true, false, yes, no, "
     "on and off as booleans (value: 'yes')"),
    (", params: {seed: 9223372036854775807}", "    params: {seed: -9223372036854775808}\n", "", None),
    ("", "    checks: [{type: length, max: true}]\n", "", "canaries[0].checks[0].max: a number, not a boolean"),
    # a tokens bound past the largest max_tokens: any integer loaded before, and failed (min) every answer
    ("", "    checks: [{type: tokens, min: 5000000}]\n", "",
     "canaries[0].checks[0].min: Input should be less than or equal to 1000000 (value: 5000000)"),
    ("", "    checks: [{type: tokens, max: 99999999999999999999}]\n", "",
     "canaries[0].checks[0].max: Input should be less than or equal to 1000000 (value: 99999999999999999999)"),
    ("", "    checks: [{type: tokens, min: 500, max: 100}]\n", "",
     "canaries[0].checks[0].max: min (500) must be <= max (100)"),
    ("", "    checks: [{type: length, min: 500, max: 100}]\n", "",
     "canaries[0].checks[0].max: min (500) must be <= max (100)"),
    ("", "    checks: [{type: tokens, min: 0, max: 1000000}, {type: length, min: 0, max: 10000000}]\n", "", None),
    ("", "", "drift: {window: true}\n", "drift.window: a number, not a boolean"),
    ("", "", "refusal: {band: [true, 0.5]}\n", "refusal.band[0]: a number, not a boolean"),
    ("", "", "alerts: {retry: {max_retry_after: 1h}, external_labels: {n: 1}, cooldown: 1m}\n", None),
    # a label value goes into Alertmanager's labels, the webhook body, Slack's fields and PagerDuty's details
    ("", "", "alerts: {external_labels: {env: \"prod\\x00\"}}\n", "alerts.external_labels.env: a label value on one "
     "line: it holds a control character (character 5 of 5) (value: 'prod\\x00')"),
    ("", "", "alerts: {external_labels: {env: \"prod\\n\"}}\n", "alerts.external_labels.env: a label value on one "
     "line: it holds a control character (character 5 of 5)"),
    ("", "", "alerts: {external_labels: {env: \"pr\\x85od\"}}\n", "alerts.external_labels.env: a label value on one "
     "line: it holds a control character (character 3 of 5)"),
    # what is seen is not what is used: a bidi override reorders an alert's labels on screen, a BOM or a zero-width
    # space (a value read from a file Notepad wrote, a copy from a web page) made every call a 404 naming the model
    ("", "", "alerts: {external_labels: {env: \"prod\\u202e\"}}\n", "alerts.external_labels.env: a label value on "
     "one line, every character visible: it holds an invisible or text-direction character (character 5 of 5)"),
    ("", "", "drift: {embeddings: {target: t, model: \"emb\\u200bed\"}}\n", "drift.embeddings.model: must be on one "
     "line, every character visible: it holds an invisible or text-direction character (character 4 of 6), which no "
     "model name has"),
    ("", "", "http: {listen: \"\\ufefflocalhost:9464\"}\n", "http.listen: must be HOST:PORT on one line, every "
     "character visible: it holds an invisible or text-direction character (character 1 of 15)"),
    # zero-width joiner and non-joiner stay: emoji sequences and Persian or Indic words are written with them
    ("", "", "alerts: {external_labels: {team: \"\U0001f469\\u200d\U0001f4bb\"}}\n", None),
    ("", "", "alerts: {external_labels: {\"e\\nv\": prod}}\n", "alerts.external_labels.[key]: not a classic "
     "Prometheus label name"),
    ("", "", "refusal: {band: [0.8, 0.2]}\n",
     "refusal.band: must be [low, high] with 0 <= low <= high <= 1, got [0.8, 0.2]"),
    ("", "", "", None),
])
def test_values_the_daemon_cannot_use_are_refused_on_load(tmp_path: Path, target: str, probe: str, extra: str,
                                                          expected: str | None) -> None:
    cfg = write_config(tmp_path, TARGET % target, PROBES % probe, extra=extra)
    if extra.startswith(("storage:", "http:")):  # in place of the one written
        written = extra.split(":")[0] + ": {" + ("url" if extra.startswith("storage:") else "listen")
        cfg.write_text("".join(line for line in cfg.read_text().splitlines(keepends=True)
                               if not line.startswith(written) or line == extra))
    if expected is None:
        load_config(cfg, environ={})  # the fixture itself is fine
        return
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    assert any(expected in str(i) and str(i).startswith(str(tmp_path)) for i in e.value.issues), e.value.issues
    run = cli("check-config", "-c", str(cfg))
    assert run.returncode == 2 and expected in run.stderr and "Traceback" not in run.stderr


def test_a_base_url_port_past_65535_is_refused_not_wrapped_round(tmp_path: Path) -> None:
    # urllib would read :99999 as port 34463 and the calls would go to whatever listens there
    cfg = write_config(tmp_path, TARGET.replace("9/v1", "99999/v1") % "", PROBES % "")
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    (issue,) = e.value.issues
    assert str(issue).endswith("targets[0].base_url: the port must be a number from 0 to 65535 "
                               "(value: 'http://127.0.0.1:99999/v1')")


def test_a_model_name_longer_than_the_store_column_is_refused(tmp_path: Path) -> None:
    long = "m" * 201  # PostgreSQL would refuse every observation of the target, holding the writes behind them
    cfg = write_config(tmp_path, TARGET.replace("model: m", f"model: {long}") % "", PROBES % "")
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    assert "targets[0].model: String should have at most 200 characters" in str(e.value)


@pytest.mark.parametrize(("value", "shown"), [
    ("x" * 1_000_000, "(value: '" + "x" * 199 + "… (1,000,000 characters))"),
    # repr() refused it (ValueError); since YAML stops such ints where it reads them, the issue says so
    ("0x" + "f" * 5000, ": invalid value: an int of more than 4,300 digits"),
])
def test_a_huge_value_is_shown_cut_short(tmp_path: Path, value: str, shown: str) -> None:
    """A megabyte written in a field was echoed whole in its issue (and check-config's output); an integer of more
    than 4,300 digits could not be shown at all: repr() raised ValueError out of str(ConfigError)."""
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries: []\n", extra=f"daemon: {{grace_period: {value}}}\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    (issue,) = e.value.issues
    assert str(issue).endswith(shown) and len(str(issue)) < 500, str(issue)[:300]


def test_a_reason_quoting_a_huge_value_is_cut_short(tmp_path: Path) -> None:
    """pydantic quotes a check type it does not know in its reason ("Input tag '...' found using 'type'")."""
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries:\n  - id: c\n    messages: [{role: user, content: hi}]\n"
                       f"    checks: [{{type: {'y' * 100_000}}}]\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    (issue,) = e.value.issues
    assert "characters)" in str(issue) and len(str(issue)) < 1500


def test_a_value_from_the_environment_is_shown_as_its_reference(tmp_path: Path) -> None:
    """A ${VAR} in a field that failed was echoed with the variable's value, in the value shown and in reasons
    quoting it (pydantic's, jsonschema's): a variable may hold a secret. The issue shows what the file says."""
    secret = "tok-0123456789-secret"
    probes = ("canaries:\n  - id: c\n    messages: [{role: user, content: hi}]\n    targets: ['${TOKEN}']\n"
              "    checks:\n      - {type: json_schema, schema: {type: '${TOKEN}'}}\n"
              "      - {type: '${TOKEN}'}\n")
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       probes, extra="drift: {window: 'x${TOKEN}'}\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={"TOKEN": secret})
    text = str(e.value)
    assert secret not in text and len(e.value.issues) == 4, text
    assert "window: Input should be a valid integer, unable to parse string as an integer (value: 'x${TOKEN}')" in text
    assert "targets[0]: unknown target (known: t) (value: '${TOKEN}')" in text
    assert "Input tag '${TOKEN}' found using 'type'" in text
    assert "invalid JSON Schema at type: '${TOKEN}' is not valid" in text


def test_a_huge_value_repr_escapes_is_shown_cut_short_too(tmp_path: Path) -> None:
    """repr() writes a format character (U+202E, right-to-left override) as six ("\\u202e"): 200 of them were
    shown as 1,200 characters, on top of the reason quoting the value (cut at 1,000)."""
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries: []\n", extra="alerts: {cooldown: \"" + "\\u202e" * 100_000 + "\"}\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    (issue,) = e.value.issues
    shown = str(issue).split(" (value: ")[1]
    assert len(shown) < 250 and shown.endswith("… (100,000 characters))"), shown[:300]


def test_a_value_from_the_environment_is_shown_as_its_reference_in_other_files_issues(tmp_path: Path) -> None:
    """A target id taken from a variable was listed with its value in a probe file's "unknown target (known: ...)"."""
    secret = "tok-0123456789-secret"
    cfg = write_config(tmp_path, "  - {id: '${TOKEN}', provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries:\n  - id: c\n    messages: [{role: user, content: hi}]\n    targets: [t]\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={"TOKEN": secret})
    assert secret not in str(e.value)
    assert "targets[0]: unknown target (known: ${TOKEN}) (value: 't')" in str(e.value), e.value


@pytest.mark.parametrize(("written", "seconds"), [("10", 10.0), ("2.5", 2.5), ("10s", 10.0), ("1m30s", 90.0),
                                                  ("500ms", 0.5)])
def test_every_timeout_and_duration_takes_seconds_or_a_duration(tmp_path: Path, written: str, seconds: float) -> None:
    """`targets[].timeout: 10s` was refused ("Input should be a valid number") where `sinks[].timeout: 10s` was
    taken: a timeout takes the same forms wherever it is written, as do the daemon's durations."""
    sinks = (f"alerts:\n  sinks:\n    - {{name: am, type: alertmanager, url: 'http://127.0.0.1:9', timeout: {written}}}"
             f"\ndaemon: {{grace_period: {written}, max_start_delay: {written}}}\n")
    cfg = write_config(tmp_path, TARGET % f", timeout: {written}", PROBES % "", extra=sinks)
    config = load_config(cfg, environ={})
    assert config.targets[0].timeout == config.alerts.sinks[0].timeout == seconds
    assert config.daemon.grace_period == config.daemon.max_start_delay == seconds


@pytest.mark.parametrize(("written", "reason"), [
    ("0s", "Input should be greater than 0 (value: '0s')"),
    ("0", "Input should be greater than 0 (value: 0)"),
    ("soon", "not a duration: 'soon' (use e.g. 30s, 5m, 1h30m) (value: 'soon')"),
    ("-1", "duration must not be negative: -1 (value: -1)"),
])
def test_a_target_timeout_that_is_no_duration_or_zero_is_refused(tmp_path: Path, written: str, reason: str) -> None:
    cfg = write_config(tmp_path, TARGET % f", timeout: {written}", PROBES % "")
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    assert [str(i) for i in e.value.issues] == [f"{cfg}:2: targets[0].timeout: {reason}"]


@pytest.mark.parametrize("written", ["sk-0123456789abcdef0123456789abcdef", "3f9a1c0e7b2d4a6f8e1d0c9b7a6f5e4d",
                                     "my reload token", "${TOKEN}"])
def test_http_reload_token_env_must_name_a_variable_not_hold_the_token(tmp_path: Path, written: str) -> None:
    """`http.reload_token_env` names the variable holding POST /-/reload's bearer token. The token written there
    itself was taken, and the 403 of every unauthenticated POST /-/reload ("reload over HTTP is disabled: set
    <it>") showed it; a name no environment can hold left reload over HTTP off without a word. Both are refused
    on load, the value not shown, as for api_key_env and a sink's *_env."""
    cfg = write_config(tmp_path, TARGET % "", PROBES % "")
    cfg.write_text(cfg.read_text().replace('http: {listen: "127.0.0.1:0"}',
                                           f'http: {{listen: "127.0.0.1:0", reload_token_env: "{written}"}}'))
    environ = {"TOKEN": "4c1b9e0d2a7f6e3b8c5d0a9f1e2b7c6d"}
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ=environ)
    (issue,) = e.value.issues
    shown = str(issue)
    assert "http.reload_token_env: must be the NAME of an environment variable" in shown, shown
    assert f"{cfg}:" in shown and "<redacted>" in shown
    assert written not in shown and environ["TOKEN"] not in shown


def test_http_reload_token_env_default_and_a_plain_name_load(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, TARGET % "", PROBES % "")
    assert load_config(cfg, environ={}).http.reload_token_env == "LLM_MONITOR_RELOAD_TOKEN"
    cfg.write_text(cfg.read_text().replace('http: {listen: "127.0.0.1:0"}',
                                           'http: {listen: "127.0.0.1:0", reload_token_env: MONITOR_RELOAD_2}'))
    assert load_config(cfg, environ={}).http.reload_token_env == "MONITOR_RELOAD_2"


def test_a_list_or_mapping_where_a_value_belongs_says_which_it_got_without_showing_it(tmp_path: Path) -> None:
    """`max_concurrency: [3]` said only "Input should be a valid integer": a list or mapping is not shown (it may
    hold a secret), but the reason says which of the two was written."""
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text('targets:\n  - {id: t, provider: openai, base_url: "http://127.0.0.1:9/v1", model: {name: m},\n'
                   '     max_concurrency: [3]}\nprobes: []\n')
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    text = str(e.value)
    assert "targets[0].max_concurrency: Input should be a valid integer, got a list" in text
    assert "targets[0].model: Input should be a valid string, got a mapping" in text
    assert "(value:" not in text
