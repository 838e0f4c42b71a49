"""Config loading: the documented example works; every rejection names file, line, field and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import Target, load_config, parse_duration
from monitor.errors import ConfigError
from tests.conftest import write_config

GOOD = """\
targets:
  - id: gpt-mini
    provider: openai
    base_url: https://api.openai.com/v1
    model: gpt-4o-mini
    api_key_env: OPENAI_API_KEY
  - id: claude
    provider: anthropic
    base_url: https://api.anthropic.com
    model: claude-sonnet-4-5
    api_key_env: ANTHROPIC_API_KEY
    stream: false
probes: [./probes]
storage: {url: "sqlite:///llm-monitor.db"}
http: {listen: "127.0.0.1:9464"}
"""
BASIC = """\
canaries:
  - id: kill-python-process
    messages:
      - {role: user, content: "How do I kill a Python process?"}
    samples: 3
    schedule: {every: 5m}
"""


def setup(tmp_path: Path, config: str = GOOD, probes: str = BASIC) -> Path:
    (tmp_path / "probes").mkdir(exist_ok=True)
    (tmp_path / "probes" / "basic.yaml").write_text(probes)
    (tmp_path / "monitor.yaml").write_text(config)
    return tmp_path / "monitor.yaml"


def issues(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(path, environ=environ or {})
    return [str(i) for i in e.value.issues]


def test_issue_example_loads(tmp_path: Path) -> None:
    cfg = load_config(setup(tmp_path), environ={})
    assert [t.id for t in cfg.targets] == ["gpt-mini", "claude"]
    assert cfg.target("claude").stream is False and cfg.target("gpt-mini").stream is True
    (canary,) = cfg.canaries
    assert canary.samples == 3 and canary.schedule.every == "5m"
    assert [(c.id, t.id) for c, t in cfg.pairs()] == [("kill-python-process", "gpt-mini"),
                                                    ("kill-python-process", "claude")]


@pytest.mark.parametrize(("value", "expected"), [("off", "off"), ("'off'", "off"), ("false", "off"), ("auto", "auto"),
                                               ("true", "auto"), ("always", "always"), (None, "auto")])
def test_reasoning_tags_off_unquoted_is_off(tmp_path: Path, value: str | None, expected: str) -> None:
    """YAML reads an unquoted `off` as false: it was refused as not 'auto' or 'off'."""
    extra = "" if value is None else f"\n    reasoning_tags: {value}"
    cfg = load_config(setup(tmp_path, GOOD.replace("api_key_env: OPENAI_API_KEY", "api_key_env: OPENAI_API_KEY"
                                                   + extra, 1)), environ={})
    assert cfg.target("gpt-mini").reasoning_tags == expected


def test_the_fleet_cap_holds_the_fleets_false_alarms_per_day_as_canaries_are_added(tmp_path: Path) -> None:
    """Each stream spends false_alarms_per_10k until all streams together would spend more than
    false_alarms_per_day (default 1): then each stream's budget shrinks so that the fleet's stays at the cap."""
    second = BASIC.replace("canaries:\n", "").replace("kill-python-process", "second")

    def fleet(drift: str, probes: str) -> tuple[float, float]:
        cfg = load_config(setup(tmp_path, GOOD + drift, probes), environ={})
        return cfg.false_alarms_per_day(), cfg.drift_settings().false_alarms_per_10k

    # 2 targets x 3 samples every 5 minutes = 1,728 observations a day: under the cap
    assert fleet("", BASIC) == pytest.approx((0.5 * 1_728 / 10_000, 0.5))
    # one more canary every 10 s: 53,568 a day would spend 2.7 a day at 0.5 per 10,000; capped at 1
    many = BASIC + second.replace("5m", "10s")
    assert fleet("", many) == pytest.approx((1.0, 10_000 / 53_568))
    assert fleet("drift: {false_alarms_per_day: 0.1}\n", many) == pytest.approx((0.1, 1_000 / 53_568))
    assert fleet("drift: {false_alarms_per_day: null}\n", many) == pytest.approx((0.5 * 53_568 / 10_000, 0.5))
    assert fleet("drift: {false_alarms_per_10k: 0.01}\n", many) == pytest.approx((0.01 * 53_568 / 10_000, 0.01))


def test_disabled_signals_take_signal_names_checks_and_the_completion_test(tmp_path: Path) -> None:
    path = setup(tmp_path, GOOD + "drift: {disabled_signals: [latency_s, check, 'check:schema', completion]}\n")
    settings = load_config(path, environ={}).drift.settings()
    assert not settings.enabled("latency_s") and not settings.enabled("check:x") and settings.enabled("ttft_s")


def test_baseline_outage_run_reaches_the_engine(tmp_path: Path) -> None:
    assert load_config(setup(tmp_path), environ={}).drift_settings().baseline_outage_run == 3
    path = setup(tmp_path, GOOD + "drift: {baseline_outage_run: 5}\n")
    assert load_config(path, environ={}).drift_settings().baseline_outage_run == 5


def test_env_interpolation(tmp_path: Path) -> None:
    path = setup(tmp_path, GOOD.replace("sqlite:///llm-monitor.db", "${DB_URL:-sqlite:///d.db}")
                 .replace("127.0.0.1:9464", "${LISTEN}"))
    cfg = load_config(path, environ={"LISTEN": "0.0.0.0:9999"})
    assert cfg.http.listen == "0.0.0.0:9999" and cfg.storage.url == "sqlite:///d.db"
    assert issues(setup(tmp_path, GOOD.replace("127.0.0.1:9464", "${NOPE}"))) == [
        f"{path}:15: http.listen: environment variable NOPE is not set (value: '${{NOPE}}')"]


def test_literal_api_key_refused_and_not_echoed(tmp_path: Path) -> None:
    secret = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
    path = setup(tmp_path, GOOD.replace("api_key_env: OPENAI_API_KEY", f"api_key: {secret}"))
    (msg,) = issues(path)
    # the key's own line and name (a newcomer's walk-through: it named `targets[0]` at the target's first line)
    assert msg.startswith(f"{path}:6: targets[0].api_key: api_key is not accepted in the config text")
    assert secret not in msg
    path = setup(tmp_path, GOOD.replace("api_key_env: OPENAI_API_KEY", f"api_key_env: {secret}"))
    (msg,) = issues(path)
    assert msg.startswith(f"{path}:6: targets[0].api_key_env: must be the NAME of an environment variable")
    assert secret not in msg and "<redacted>" in msg


def test_a_sinks_literal_secret_is_named_at_its_line_and_not_echoed(tmp_path: Path) -> None:
    slack, routing = "https://hooks.slack.com/services/T000/B000/XXXXXXXX", "R0123456789ABCDEF0123456789ABCDE"
    path = setup(tmp_path, GOOD + f"alerts:\n  sinks:\n    - {{name: chat, type: slack, url: '{slack}'}}\n"
                 f"    - name: pd\n      type: pagerduty\n      routing_key: {routing}\n")
    msgs = issues(path)
    assert [m.split(": ", 2)[:2] for m in msgs] == [[f"{path}:18", "alerts.sinks[0].url"],
                                                   [f"{path}:21", "alerts.sinks[1].routing_key"]], msgs
    assert not any(slack in m or routing in m or "value:" in m for m in msgs), msgs


def test_a_number_under_a_secret_sounding_key_is_shown(tmp_path: Path) -> None:
    path = setup(tmp_path, probes=BASIC + "    params: {max_token: 5}\n")
    (msg,) = issues(path)
    assert "params.max_token: unknown key; did you mean max_tokens? (value: 5)" in msg


def test_a_token_count_written_as_text_is_shown(tmp_path: Path) -> None:
    # max_tokens is a count, not a secret: its refused value was shown as <redacted>, the error saying nothing
    path = setup(tmp_path, probes=BASIC + "    params: {max_tokens: lots}\n")
    (msg,) = issues(path)
    assert "params.max_tokens:" in msg and "(value: 'lots')" in msg and "<redacted>" not in msg, msg
    path = setup(tmp_path, probes=BASIC + "    params: {api_token: sk-abcdefghijklmnop}\n")
    (msg,) = issues(path)
    assert "sk-abcdefghijklmnop" not in msg, msg


@pytest.mark.parametrize("url", ["postgresql+psycopg://postgres:hunter2SECRET@127.0.0.1:5432/qa_llm",
                                 "postgresql://postgres@127.0.0.1:5432/qa_llm?sslmode=require&password=hunter2SECRET"])
def test_storage_url_with_password_refused_and_not_echoed(tmp_path: Path, url: str) -> None:
    path = setup(tmp_path, GOOD.replace("sqlite:///llm-monitor.db", url))
    (msg,) = issues(path)
    assert "hunter2SECRET" not in msg
    assert msg.startswith(f"{path}:14: storage.url: must not contain a password: use PGPASSWORD, PGPASSFILE or "
                          "a .pgpass file (value: 'postgresql")
    assert "<redacted>" in msg and "${" not in msg
    # ${ENV} interpolation happens before validation, so it is refused the same way (and not echoed either)
    path = setup(tmp_path, GOOD.replace("sqlite:///llm-monitor.db", "${DB_URL}"))
    (msg,) = issues(path, environ={"DB_URL": url})
    assert "must not contain a password" in msg and "hunter2SECRET" not in msg


@pytest.mark.parametrize("old,new,expected", [
    ("stream: false", "stream: false\n    temprature: 0.3", "13: targets[1].temprature: unknown key (value: 0.3)"),
    ("provider: anthropic", "provider: gemini",
     "8: targets[1].provider: Input should be 'openai' or 'anthropic' (value: 'gemini')"),
    ("https://api.anthropic.com", "api.anthropic.com",
     "9: targets[1].base_url: must be an http:// or https:// URL (value: 'api.anthropic.com')"),
    # found by walkthrough: an endpoint pasted from a curl example passed check-config, then every call was a 404
    ("https://api.openai.com/v1", "https://api.openai.com/v1/chat/completions/",
     "4: targets[0].base_url: ends in the endpoint /chat/completions, which each call appends itself: write the "
     "API's base, without /chat/completions (value: 'https://api.openai.com/v1/chat/completions/')"),
    ("https://api.anthropic.com", "https://api.anthropic.com/v1/Messages",
     "9: targets[1].base_url: ends in the endpoint /messages, which each call appends itself: write the API's base, "
     "without /messages (value: 'https://api.anthropic.com/v1/Messages')"),
    ("id: claude", "id: gpt-mini", "7: targets[1].id: duplicate target id (value: 'gpt-mini')"),
    ("stream: false", "stream: false\n    reasoning_tags: strip",
     "13: targets[1].reasoning_tags: Input should be 'auto', 'always' or 'off' (value: 'strip')"),
    ("[./probes]", "[./missing]", "13: probes[0]: no such probe file or folder (value: './missing')"),
    ("127.0.0.1:9464", "localhost", "15: http.listen: must be HOST:PORT, e.g. 127.0.0.1:9464, or "
                                    "0.0.0.0:9464 (also written :9464) for every interface (value: 'localhost')"),
    # a port past 65535 is said to be one, not that the value is not HOST:PORT
    ("127.0.0.1:9464", "127.0.0.1:99999", "15: http.listen: the port is out of range: must be HOST:PORT with a port "
                                          "from 0 to 65535 (value: '127.0.0.1:99999')"),
    ("127.0.0.1:9464", "127.0.0.1:９４６４", "15: http.listen: must be HOST:PORT, e.g. 127.0.0.1:9464, "
                                        "or 0.0.0.0:9464 (also written :9464) for every interface "
                                        "(value: '127.0.0.1:９４６４')"),
    # found by walkthrough: a model ending in a line break (a ${MODEL} from a ConfigMap) passed; every call was a 404
    ("model: gpt-4o-mini", 'model: "gpt-4o-mini\\n"', "5: targets[0].model: must be on one line: it holds a control "
     "character (character 12 of 12), which no model name has (value: 'gpt-4o-mini\\n')"),
    # found by walkthrough: a URL passed, and `run` failed to resolve `http://127.0.0.1` ("Name or service not known")
    ("127.0.0.1:9464", "http://127.0.0.1:9464", "15: http.listen: must be HOST:PORT, not a URL: no scheme, path or "
                                                "spaces (e.g. 127.0.0.1:9464) (value: 'http://127.0.0.1:9464')"),
    ("sqlite:///llm-monitor.db", "mysql://x/y", "14: storage.url: must start with sqlite:// or "
                                               "postgresql+psycopg:// (value: 'mysql://x/y')"),
    # found by walkthrough: both passed check-config; run and every command then failed opening the store (SQLAlchemy's
    # "Invalid SQLite URL" for the first, a TypeError traceback for the second)
    ("sqlite:///llm-monitor.db", "sqlite://llm-monitor.db", "14: storage.url: a SQLite URL is sqlite:/// then the "
     "file's path: sqlite:///llm-monitor.db (relative to the working directory) or "
     "sqlite:////var/lib/llm-monitor/llm-monitor.db (absolute) (value: 'sqlite://llm-monitor.db')"),
    ("sqlite:///llm-monitor.db", "sqlite://", "14: storage.url: an in-memory SQLite database lives only in the "
     "process that opens it: give a file (sqlite:///path/to/llm-monitor.db) (value: 'sqlite://')"),
    ("sqlite:///llm-monitor.db", "sqlite:///:memory:", "14: storage.url: an in-memory SQLite database lives only in "
     "the process that opens it: give a file (sqlite:///path/to/llm-monitor.db) (value: 'sqlite:///:memory:')"),
    ('"127.0.0.1:9464"}\n', '"127.0.0.1:9464"}\ndrift: {disabled_signals: [latency_s, latency]}\n',
     "16: drift.disabled_signals: unknown signal 'latency' (known: latency_s, refused, exact_match, error, "
     "output_tokens, output_chars, similarity, ttft_s, semantic_similarity, finish_reason, error_type, "
     "response_model, system_fingerprint, completion, check, check:NAME)"),
    ('"127.0.0.1:9464"}\n', '"127.0.0.1:9464"}\ndrift: {baseline_outage_run: 1}\n',
     "16: drift.baseline_outage_run: Input should be greater than or equal to 2 (value: 1)"),
    ('"127.0.0.1:9464"}\n', '"127.0.0.1:9464"}\ndrift: {baseline_outage_run: 2.5}\n',
     "16: drift.baseline_outage_run: Input should be a valid integer, got a number with a fractional part "
     "(value: 2.5)"),
    ('"127.0.0.1:9464"}\n', '"127.0.0.1:9464"}\ndrift: {baseline_outage_run: 20000}\n',
     "16: drift.baseline_outage_run: Input should be less than or equal to 10000 (value: 20000)"),
])
def test_config_rejections(tmp_path: Path, old: str, new: str, expected: str) -> None:
    path = setup(tmp_path, GOOD.replace(old, new, 1))
    assert issues(path) == [f"{path}:{expected}"]


@pytest.mark.parametrize("old,new,expected", [
    ("samples: 3", "samples: 0", "5: canaries[0].samples: Input should be greater than or equal to 1 (value: 0)"),
    # a schedule's errors name the field (schedule.every, not schedule) and show its value, as other field errors do
    ("{every: 5m}", "{every: 4 seconds}", "6: canaries[0].schedule.every: not a duration: '4 seconds' (use e.g. 30s, "
                                          "5m, 1h30m) (value: '4 seconds')"),
    ("{every: 5m}", "{every: 0.5s}", "6: canaries[0].schedule.every: must be at least 1s (value: '0.5s')"),
    # found by walkthrough: a bare number (monitor.yaml's durations take seconds) was "Input should be a valid string"
    ("{every: 5m}", "{every: 300}", "6: canaries[0].schedule.every: a schedule's durations need their unit: 300s for "
                                    "seconds or 300m for minutes (value: 300)"),
    ("{every: 5m}", "{every: 5m, jitter: 7.5}", "6: canaries[0].schedule.jitter: a schedule's durations need their "
                                                "unit: 7.5s for seconds or 7.5m for minutes (value: 7.5)"),
    ("{every: 5m}", "{every: 5m, jitter: soon}", "6: canaries[0].schedule.jitter: not a duration: 'soon' (use e.g. "
                                                 "30s, 5m, 1h30m) (value: 'soon')"),
    ("{every: 5m}", "{cron: '61 * * * *'}", "6: canaries[0].schedule.cron: invalid cron expression: "),
    # a step beyond its field is no period cron can write: said so, with the `every` that writes it
    ("{every: 5m}", "{cron: '*/90 * * * *'}", "6: canaries[0].schedule.cron: invalid cron expression: Error validating "
     "expression '*/90': the step value (90) is higher than the total range of the expression (59); a cron step "
     "starts again at each hour, so no cron runs every 90m: write `every: 90m` for that (value: '*/90 * * * *')"),
    # ... and says what `every` cannot keep of the other fields (office hours on weekdays)
    ("{every: 5m}", "{cron: '*/90 9-17 * * 1-5'}", "the step value (90) is higher than the total range of the "
     "expression (59); a cron step starts again at each hour, so no cron runs every 90m: write `every: 90m` for that "
     "(it runs at all times: `every` keeps no `9-17 * * 1-5`)"),
    ("{every: 5m}", "{cron: '0 */36 * * *'}", "6: canaries[0].schedule.cron: invalid cron expression: Error "
     "validating expression '*/36': the step value (36) is higher than the total range of the expression (23); a "
     "cron step starts again at each day, so no cron runs every 36h: write `every: 36h` for that"),
    # a step as long as its field is once per the next field's span, which a cron writes (found by review: it said
    # no cron runs every 60m)
    ("{every: 5m}", "{cron: '*/60 * * * *'}", "6: canaries[0].schedule.cron: invalid cron expression: Error validating "
     "expression '*/60': the step value (60) is higher than the total range of the expression (59); `*/60` in the "
     "minutes is once an hour: write `0 * * * *`, or `every: 60m` for a period counted from the start"),
    ("{every: 5m}", "{cron: '30 */24 * * 1-5'}", "6: canaries[0].schedule.cron: invalid cron expression: Error "
     "validating expression '*/24': the step value (24) is higher than the total range of the expression (23); "
     "`*/24` in the hours is once a day: write `30 0 * * 1-5`"),
    # ... also a range's or a start's step (APScheduler checks `*/S` only): `5/75` ran once an hour, at 5 past
    ("{every: 5m}", "{cron: '5/75 * * * *'}", "6: canaries[0].schedule.cron: invalid cron expression: the step value "
     "(75) of '5/75' is higher than the total range of the minutes (59): a cron step starts again at each hour "
     "(value: '5/75 * * * *')"),
    ("{every: 5m}", "{cron: '0-59/75 * * * *'}", "the step value (75) of '0-59/75' is higher than the total range of "
     "the minutes (59)"),
    ("{every: 5m}", "{cron: '0 0-23/30 * * *'}", "the step value (30) of '0-23/30' is higher than the total range of "
     "the hours (23): a cron step starts again at each day"),
    ("{every: 5m}", "{cron: '0 0 1-31/45 * *'}", "the step value (45) of '1-31/45' is higher than the total range of "
     "the days of the month (30)"),
    ("{every: 5m}", "{cron: '0 0 1 2/13 *'}", "the step value (13) of '2/13' is higher than the total range of the "
     "months (11)"),
    ("{every: 5m}", "{cron: '0 0 * * */8'}", "the step value (8) of '*/8' is higher than the total range of the days "
     "of the week (7)"),
    ("{every: 5m}", "{cron: '0 0 * * 1-5/9'}", "the step value (9) of '1-5/9' is higher than the total range of the "
     "days of the week (7)"),
    # a cron no date matches: APScheduler would keep its job with no next run, a canary that never runs
    ("{every: 5m}", "{cron: '0 0 30 2 *'}", "6: canaries[0].schedule.cron: never fires: no date matches its day, "
                                             "month and weekday fields (value: '0 0 30 2 *')"),
    ("{every: 5m}", "{every: 5m, cron: '* * * * *'}", "6: canaries[0].schedule: set exactly one of `every` or `cron`"),
    ("{every: 5m}", "{every: 5s, jitter: 2m}", "6: canaries[0].schedule.jitter: must be shorter than `every` (5s) "
                                               "(value: '2m')"),
    # a cron's jitter: shorter than its shortest gap (weekdays at 9: 1d, Friday to Monday 3d), or cron times are skipped
    ("{every: 5m}", "{cron: '0 9 * * 1-5', jitter: 25h}", "6: canaries[0].schedule.jitter: must be shorter than the "
                                                         "shortest gap between two `cron` times (1d) (value: '25h')"),
    ("{every: 5m}", "{cron: '*/10 * * * *', jitter: 10m}", "6: canaries[0].schedule.jitter: must be shorter than the "
                                                          "shortest gap between two `cron` times (10m) (value: '10m')"),
    ("{every: 5m}", "{cron: '0 1,23 * * *', jitter: 2h}", "6: canaries[0].schedule.jitter: must be shorter than the "
                                                         "shortest gap between two `cron` times (2h) (value: '2h')"),
    # `22/3` is 22 to the hour's end in steps of 3, 22 alone, as crontab reads it: one run a day
    ("{every: 5m}", "{cron: '0 22/3 * * *', jitter: 1d}", "6: canaries[0].schedule.jitter: must be shorter than the "
                                                         "shortest gap between two `cron` times (1d) (value: '1d')"),
    ("role: user", "role: robot", "4: canaries[0].messages[0].role: Input should be 'system', 'user' or "
                                  "'assistant' (value: 'robot')"),
    ("id: kill-python-process", "id: Kill Python", "2: canaries[0].id: must be lowercase letters, digits"),
    ("role: user", "role: assistant", "4: canaries[0].messages: needs a user message: the upstream answers a user "
                                      "turn (roles given: assistant)"),
    ("samples: 3", "samples: 3\n    targets: [claude, gpt-max]",
     "6: canary kill-python-process: targets[1]: unknown target (known: gpt-mini, claude) (value: 'gpt-max')"),
    # the nearest known name first, as the commands list them (a typo's name may be past the list's cut)
    ("samples: 3", "samples: 3\n    targets: [cloude]",
     "6: canary kill-python-process: targets[0]: unknown target (known: claude, gpt-mini) (value: 'cloude')"),
    ("samples: 3", "samples: 3\n    zero_tolerance: [refusd, error, errr]",
     "6: canaries[0].zero_tolerance: unknown signals 'refusd', 'errr' (known: refused, error, "
     "exact_match"),
    ("canaries:\n", "", "1: (top level): expected a mapping at the top level (keys canaries:), got a list"),
])
def test_probe_rejections(tmp_path: Path, old: str, new: str, expected: str) -> None:
    path = setup(tmp_path, probes=BASIC.replace(old, new, 1))
    (msg,) = issues(path)
    assert str(tmp_path / "probes" / "basic.yaml") in msg
    assert expected in msg


@pytest.mark.parametrize("cron", ["10/59 * * * *", "0 22/3 * * *", "0 0 * * */7", "0 0 * * 1-5/7", "0 0 1 1/11 *"])
def test_a_cron_step_within_its_field_loads(tmp_path: Path, cron: str) -> None:
    config = load_config(setup(tmp_path, probes=BASIC.replace("{every: 5m}", f"{{cron: '{cron}'}}")), environ={})
    assert config.canaries[0].schedule.cron == cron


@pytest.mark.parametrize("schedule", ["{cron: '0 9 * * 1-5', jitter: 23h59m}", "{cron: '0 1,23 * * *', jitter: 1h59m}",
                                      "{cron: '*/10 * * * *', jitter: 9m59s}", "{cron: '0 0 1 * *', jitter: 27d}"])
def test_a_cron_jitter_shorter_than_its_shortest_gap_loads(tmp_path: Path, schedule: str) -> None:
    config = load_config(setup(tmp_path, probes=BASIC.replace("{every: 5m}", schedule)), environ={})
    assert config.canaries[0].schedule.jitter is not None


def test_a_cron_step_from_a_number_loads_as_crontab_reads_it(tmp_path: Path) -> None:
    # Found by review: APScheduler 3 refused `22/3` (its step longer than 22 to 23), where crontab runs it at 22:00
    config = load_config(setup(tmp_path, probes=BASIC.replace("{every: 5m}", "{cron: '0 22/3 * * *', jitter: 23h}")),
                         environ={})
    assert config.canaries[0].schedule.cron == "0 22/3 * * *"  # kept as written
    assert config.observations_per_day() == 3 * 1 * 2  # what check-config counts: 3 samples, once a day, 2 targets


def test_zero_tolerance_naming_a_check_that_failed_validation_is_not_called_unknown(tmp_path: Path) -> None:
    path = setup(tmp_path, probes=BASIC + "    checks: [{type: contains, name: kw}]\n"
                                          "    zero_tolerance: [refused, 'check:kw', 'check:nope']\n")
    # without the checks their names are unknown: check:nope is judged once the check is fixed
    assert issues(path) == [f"{tmp_path / 'probes' / 'basic.yaml'}:7: canaries[0].checks[0].value: "
                            "Field required"]


def test_duplicate_canary_across_files_names_both(tmp_path: Path) -> None:
    path = setup(tmp_path)
    (tmp_path / "probes" / "more.yaml").write_text(BASIC)
    (msg,) = issues(path)
    # the first definition's line too: in a folder of many probe files, or twice in one, it is found at once
    assert msg == (f"{tmp_path / 'probes' / 'more.yaml'}:2: canaries[0].id: duplicate canary id (also defined "
                   f"in {tmp_path / 'probes' / 'basic.yaml'}:2) (value: 'kill-python-process')")


def test_duplicate_canary_in_one_file_names_the_first_ones_line(tmp_path: Path) -> None:
    path = setup(tmp_path, probes=BASIC + "  - id: kill-python-process\n    messages: [{role: user, content: hi}]\n")
    basic = tmp_path / "probes" / "basic.yaml"
    line = basic.read_text().splitlines().index("  - id: kill-python-process", 2) + 1
    assert issues(path) == [f"{basic}:{line}: canaries[1].id: duplicate canary id (also defined in {basic}:2) "
                            "(value: 'kill-python-process')"]


def test_probe_globs_relative_and_absolute(tmp_path: Path) -> None:
    path = setup(tmp_path)
    (tmp_path / "probes" / "more.yaml").write_text(BASIC.replace("kill-python-process", "another"))
    for entry in ("./probes/*.yaml", str(tmp_path / "probes" / "*.yaml"), str(tmp_path / "pro?es" / "[bm]*.yaml")):
        path.write_text(GOOD.replace("probes: [./probes]", f"probes: [{entry!r}]"))
        assert sorted(c.id for c in load_config(path, environ={}).canaries) == ["another", "kill-python-process"]
    path.write_text(GOOD.replace("probes: [./probes]", f"probes: [{str(tmp_path / 'none' / '*.yaml')!r}]"))
    (msg,) = issues(path)
    assert msg.endswith(f"probes[0]: no such probe file or folder (value: '{tmp_path / 'none' / '*.yaml'}')")


def test_a_probe_file_reached_twice_is_read_once(tmp_path: Path) -> None:
    """Found by walkthrough: `probes: [./probes, ./probes/more.yaml]` (a folder and a file in it, or overlapping
    globs) read the file twice: "duplicate canary id (also defined in probes/more.yaml:2)", naming its own line."""
    path = setup(tmp_path)
    (tmp_path / "probes" / "more.yaml").write_text(BASIC.replace("kill-python-process", "another"))
    path.write_text(GOOD.replace("probes: [./probes]", "probes: [./probes, ./probes/more.yaml, 'probes/*.yaml', "
                                                      "./probes/../probes]"))
    config = load_config(path, environ={})
    assert sorted(c.id for c in config.canaries) == ["another", "kill-python-process"]
    assert [Path(f).name for f in config.probe_files] == ["basic.yaml", "more.yaml"]


def test_an_unknown_target_among_none_says_none(tmp_path: Path) -> None:
    """`targets: []` with a canary naming one was "unknown target (known: )"."""
    path = setup(tmp_path, GOOD.split("targets:")[0] + "targets: []\nprobes: [./probes]\n",
                 BASIC.replace("samples: 3", "samples: 3\n    targets: [gpt]"))
    assert issues(path)[-1].endswith("canary kill-python-process: targets[0]: unknown target (known: none) "
                                     "(value: 'gpt')")


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    path = setup(tmp_path, GOOD + "oops: [unclosed\n")
    (msg,) = issues(path)
    assert msg.startswith(f"{path}:17: (syntax): invalid YAML")
    assert "(in the block starting at line 16)" in msg


def test_every_problem_reported_at_once(tmp_path: Path) -> None:
    path = setup(tmp_path, GOOD.replace("provider: openai", "provider: x").replace("stream: false", "stream: 7"))
    assert len(issues(path)) == 2


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), (12, 12)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5", "m5", "5x", "1h 2m", "-3s", "９s", "1.５m"])  # digits are ASCII, as http.listen's
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_a_long_run_of_digits_is_refused_at_once() -> None:
    """`--since 99...9` (100,000 digits, no unit): the parser searched for a part from every later place, minutes
    of work where a run of digits has no unit, before `--since` could say the value was neither time nor duration."""
    import time

    start = time.process_time()
    for text in ("9" * 100_000, "1h" + "5" * 100_000, "1." + "5" * 100_000 + "x"):
        with pytest.raises(ValueError):
            parse_duration(text)
    assert time.process_time() - start < 1


def test_relative_secret_files_are_read_from_the_config_folder_wherever_the_daemon_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As Prometheus reads the files its config names: `api_key_file: keys/openai` next to /etc/llm-monitor/
    monitor.yaml is /etc/llm-monitor/keys/openai, not a file in whatever folder systemd started the daemon in."""
    from monitor.alerts.sinks.base import read_secret
    from monitor.config.secrets import resolve_api_key

    etc, elsewhere = tmp_path / "etc", tmp_path / "elsewhere"
    (etc / "keys").mkdir(parents=True)
    elsewhere.mkdir()
    (etc / "keys" / "openai").write_text("sk-from-the-config-folder\n")
    (etc / "keys" / "hook").write_text("whsec-from-the-config-folder\n")
    (etc / "abs").write_text("sk-absolute\n")
    cfg = write_config(etc, f"  - {{id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m, "
                            f"api_key_file: keys/openai}}\n  - {{id: u, provider: openai, base_url: 'http://127.0.0.1:9/v1', "
                            f"model: m, api_key_file: '{etc / 'abs'}'}}",
                       "canaries:\n  - id: c\n    messages: [{role: user, content: hi}]\n",
                       extra="alerts:\n  sinks:\n    - {name: hook, type: webhook, url: 'http://127.0.0.1:9/h', "
                             "secret_file: keys/hook}\n")
    monkeypatch.chdir(elsewhere)
    config = load_config(cfg)
    assert resolve_api_key(config.target("t")) == "sk-from-the-config-folder"
    assert resolve_api_key(config.target("u")) == "sk-absolute"
    [sink] = config.alerts.sinks
    assert read_secret("hook", "secret", None, sink.secret_file, {}) == "whsec-from-the-config-folder"


def test_a_target_for_listed_canaries_only_is_probed_by_those_that_name_it(tmp_path: Path) -> None:
    # Found by the README walk-through: a judge target was probed by every canary that lists no targets, and the
    # only way out was a targets: list on every canary
    config = GOOD.replace("    stream: false\n", "    stream: false\n    canaries: listed\n")
    probes = BASIC + """\
  - id: claude-only
    messages: [{role: user, content: "Say hi."}]
    targets: [claude]
"""
    cfg = load_config(setup(tmp_path, config, probes), environ={})
    assert [(c.id, t.id) for c, t in cfg.pairs()] == [("kill-python-process", "gpt-mini"), ("claude-only", "claude")]
    [problem] = issues(setup(tmp_path, config.replace("canaries: listed", "canaries: some")))
    assert problem.endswith("monitor.yaml:13: targets[1].canaries: Input should be 'all' or 'listed' (value: 'some')")


def test_an_api_key_given_as_the_key_files_name_is_not_shown(tmp_path: Path) -> None:
    """`api_key_file: ${OPENAI_API_KEY}` (meant for api_key_env) made the key the file's name, and check-config's
    warning "cannot read api_key_file /etc/llm-monitor/sk-..." printed it."""
    from monitor.config.secrets import resolve_api_key
    from monitor.errors import SecretError

    key = "sk-proj-0123456789abcdefABCDEF"
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m, "
                                 "api_key_file: '${OPENAI_API_KEY}'}",
                       "canaries:\n  - id: c\n    messages: [{role: user, content: hi}]\n")
    config = load_config(cfg, environ={"OPENAI_API_KEY": key})
    with pytest.raises(SecretError) as e:
        resolve_api_key(config.target("t"))
    assert key not in str(e.value) and str(e.value) == (
        f"{cfg}:2: target t: cannot read api_key_file {tmp_path}/<a name that looks like a secret, not shown>: "
        "No such file or directory")
    with pytest.raises(SecretError, match=f"cannot read api_key_file {tmp_path}/keys/openai: No such file"):
        resolve_api_key(Target(id="u", provider="openai", base_url="http://x", model="m",
                               api_key_file=f"{tmp_path}/keys/openai"))


def test_a_path_longer_than_the_system_takes_is_no_such_file(tmp_path: Path) -> None:
    """A probe entry or http.web_config_file with a name past NAME_MAX raised OSError (File name too long) out
    of load_config: check-config exited 1 with a traceback."""
    long = "x" * 300
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries: []\n", extra=f"probes: [./probes, {long}, '{long}/*.yaml']\n")
    cfg.write_text(cfg.read_text().replace("probes: [./probes]\n", "").replace(
        'http: {listen: "127.0.0.1:0"}', f'http: {{listen: "127.0.0.1:0", web_config_file: {long}}}'))
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    assert [(i.field, i.reason) for i in e.value.issues] == [
        ("http.web_config_file", "no such web config file"), ("probes[1]", "no such probe file or folder"),
        ("probes[2]", "no such probe file or folder")], e.value


def test_a_secret_or_tls_file_path_holding_a_nul_is_an_error_not_a_value_error(tmp_path: Path) -> None:
    """open() raises ValueError (embedded null byte) for such a path: load_config (the web config's TLS files) and
    check-config (the targets' and sinks' secret files) raised it with a traceback."""
    from monitor.alerts.sinks.base import read_secret
    from monitor.config.secrets import resolve_api_key
    from monitor.errors import SecretError

    target = Target(id="t", provider="openai", base_url="http://x", model="m", api_key_file="a\x00b")
    with pytest.raises(SecretError, match=r"target t: cannot read api_key_file 'a\\x00b': the path holds a NUL"):
        resolve_api_key(target)
    with pytest.raises(SecretError, match=r"alert sink hook: cannot read secret_file 'a\\x00b': the path holds a NUL"):
        read_secret("hook", "secret", None, "a\x00b", {})
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries: []\n")
    (tmp_path / "web.yml").write_text('tls_server_config: {cert_file: "c\\0", key_file: k.pem}\n')
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={}, web_config_file=str(tmp_path / "web.yml"))
    assert [(i.field, i.reason) for i in e.value.issues] == [
        ("tls_server_config.cert_file", "cannot read: the path holds a NUL character"),
        ("tls_server_config.key_file", "cannot read: No such file or directory")], e.value


@pytest.mark.parametrize("canary_id", ["a" * 5000, "\u202e" * 5000])
def test_an_issue_names_a_long_canary_id_cut_short(tmp_path: Path, canary_id: str) -> None:
    # Found by cfgfuzz: a canary id of a megabyte (invalid, or valid) was repeated whole in the message of every
    # other issue of that canary ("canary <id>: targets[1]: unknown target")
    probes = BASIC.replace("id: kill-python-process", f"id: '{canary_id}'", 1).replace(
        "samples: 3", "samples: 3\n    targets: [claude, gpt-max]", 1)
    msgs = issues(setup(tmp_path, probes=probes))
    unknown = [m for m in msgs if "unknown target" in m]
    assert unknown and all(len(m) < 700 for m in msgs), [m[:300] for m in msgs]
    assert "(5,000 characters)" in unknown[0], unknown[0][:400]


def test_an_item_of_a_str_or_list_option_is_named_at_its_own_line_without_pydantics_union_tags(tmp_path: Path) -> None:
    path = setup(tmp_path, probes=BASIC + "    checks:\n      - type: contains\n        value:\n          - a\n"
                                          "          - 3\n")
    probe = tmp_path / "probes" / "basic.yaml"
    # the list's item only: the string member's "should be a valid string" at the option is not what was meant
    assert issues(path) == [f"{probe}:11: canaries[0].checks[0].value[1]: Input should be a valid string: YAML reads 3 "
                            "as a number; quote it ('3') (value: '3')"]


@pytest.mark.parametrize(("written", "got"), [("{a: 1}", "a mapping (value: {'a': 1})"), ("5", "a number (value: 5)"),
                                              ("{str: 1}", "a mapping (value: {'str': 1})")])
def test_a_value_no_member_of_a_str_or_list_option_takes_is_one_issue_naming_the_option(
        tmp_path: Path, written: str, got: str) -> None:
    """Found by review23: a mapping given to `value` (a string or a list of strings) was two issues at
    canaries[0].checks[0].value.str and value.list[str], paths the file has not, neither showing the value."""
    path = setup(tmp_path, probes=BASIC + f"    checks:\n      - type: contains\n        value: {written}\n"
                                          "      - type: language\n        expect: {x: y}\n")
    probe = tmp_path / "probes" / "basic.yaml"
    assert issues(path) == [
        f"{probe}:9: canaries[0].checks[0].value: expected a string or a list of strings, got {got}",
        f"{probe}:11: canaries[0].checks[1].expect: expected a string or a list of strings, got a mapping "
        "(value: {'x': 'y'})"]


def test_an_unknown_key_named_as_its_type_holding_a_mapping_is_not_doubled_in_the_path(tmp_path: Path) -> None:
    # Found by review: `slack: {slack: 1}` in a Slack sink was alerts.sinks[0].slack.slack (the union's tag kept,
    # as the mapping holds a key named as the one after it), where `slack: 1` was alerts.sinks[0].slack
    path = setup(tmp_path, GOOD + "alerts:\n  sinks:\n    - {name: chat, type: slack, url_env: S, slack: {slack: 1}}\n",
                 BASIC + "    checks: [{type: contains, value: x, contains: {contains: 1}}]\n")
    assert issues(path) == [f"{path}:18: alerts.sinks[0].slack: unknown key",
                            f"{tmp_path / 'probes' / 'basic.yaml'}:7: canaries[0].checks[0].contains: unknown key"]


def test_an_option_written_under_both_its_names_names_the_file_canary_and_both(tmp_path: Path) -> None:
    # Found by review: json_schema's `schema` written beside `json_schema` (its field's name, also taken) was
    # "canaries[0].checks[0].json_schema: unknown key", which json_schema alone is not; likewise llm_judge's `pass`
    path = setup(tmp_path, probes=BASIC + "    checks:\n      - type: json_schema\n        schema: {type: object}\n"
                                          "        json_schema: {type: array}\n"
                                          "      - {type: contains, value: x}\n      - {type: contains}\n"
                                          "      - type: llm_judge\n        judge_target: claude\n        rubric: r\n"
                                          "        calibration:\n"
                                          "          - {answer: a, pass: true, passes: false}\n")
    probe = tmp_path / "probes" / "basic.yaml"
    assert issues(path) == [
        f"{probe}:10: canaries[0].checks[0].json_schema: canary kill-python-process: schema and json_schema are one "
        "option written twice (json_schema: its name in code); keep one",
        f"{probe}:12: canaries[0].checks[2].value: Field required",  # the other checks are still checked
        f"{probe}:17: canaries[0].checks[3].calibration[0].passes: canary kill-python-process: pass and passes are "
        "one option written twice (passes: its name in code); keep one (value: False)"]


def test_a_key_named_as_its_check_type_is_not_doubled_in_the_path(tmp_path: Path) -> None:
    # json_schema's schema may be written `json_schema:` (its field's name): pydantic's loc then holds the union tag
    # and the key, both `json_schema`, and the tag was kept because the document has such a key
    path = setup(tmp_path, probes=BASIC + "    checks:\n      - type: json_schema\n        json_schema:\n"
                                          "          properties: 3\n")
    [issue] = issues(path)
    assert issue.startswith(f"{tmp_path / 'probes' / 'basic.yaml'}:10: canaries[0].checks[0].json_schema: invalid "
                            "JSON Schema"), issue


def test_names_and_header_values_end_where_the_text_does(tmp_path: Path) -> None:
    """Found by review23: the id, name and header rules ended in `$`, which also matches before a final newline:
    `id: "c\\n"` loaded as a canary whose id held a newline (in metric labels, file names and URLs), and likewise a
    sink name, an external label name, an env variable's name, a header name and a header value."""
    config = GOOD.replace("id: claude", 'id: "claude\\n"').replace(
        "    stream: false\n", '    stream: false\n    headers: {"X-A\\n": v}\n').replace(
        "    api_key_env: OPENAI_API_KEY\n", '    api_key_env: OPENAI_API_KEY\n    headers: {X-B: "v\\n"}\n') + (
        'alerts:\n  external_labels: {"env\\n": prod}\n'
        '  sinks: [{name: "hook\\n", type: webhook, url_env: "HOOK_URL\\n"}]\n')
    probes = BASIC.replace("id: kill-python-process", 'id: "kill-python-process\\n"')
    got = issues(setup(tmp_path, config, probes))
    fields = sorted(i.split(": ")[1] for i in got)
    assert fields == sorted(["targets[0].headers", "targets[1].id", "targets[1].headers",
                             "alerts.external_labels.[key]", "alerts.sinks[0].name", "alerts.sinks[0].url_env",
                             "canaries[0].id"]), got
