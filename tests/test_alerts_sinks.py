"""What each sink puts on the wire (rendering is pure), and the Standard Webhooks signature."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from monitor.alerts.config import AlertsConfig
from monitor.alerts.events import AlertEvent
from monitor.alerts.policy import merge_drift, plan
from monitor.alerts.signing import sign
from monitor.alerts.sinks import build_sinks
from monitor.errors import SecretError
from tests.support.receiver import verify

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ENV = {"HOOK_SECRET": SECRET, "SLACK_URL": "https://hooks.slack.com/services/T0/B0/sekret", "PD_KEY": "R0UTINGKEY0"}
CFG = AlertsConfig.model_validate({
    "resend_interval": "1m",
    "sinks": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/h", "secret_env": "HOOK_SECRET"},
              {"name": "chat", "type": "slack", "url_env": "SLACK_URL"},
              {"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:9/"},
              {"name": "pd", "type": "pagerduty", "routing_key_env": "PD_KEY", "url": "http://127.0.0.1:9/pd"}]})


def notes(kind: str = "drift.opened", **kw: object) -> dict:
    e = AlertEvent(kind=kind, canary="c1", target="t1", signal="refusal_rate", severity="critical", event_id="e1",
                   opened_at=T0, evidence={"baseline_value": 0.02, "current_value": 0.4, "p_value": 1e-5,
                                           "baseline_n": 200, "current_n": 40, "diff": "- ok <b>\n+ sorry"}, **kw)
    return {n.sink: n for n in plan(e, CFG, T0, {}).notifications}


def test_standard_webhooks_test_vector() -> None:
    assert sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}') == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_webhook_body_and_headers_verify() -> None:
    n = notes()["hook"]
    req = build_sinks(CFG, ENV)["hook"].render(n, T0)
    body = json.loads(req.body)
    assert body == {"type": "drift.opened", "timestamp": T0.isoformat(), "data": n.payload}
    assert req.headers["webhook-id"] == n.message_id
    assert req.headers["webhook-timestamp"] == str(int(T0.timestamp()))
    assert verify(SECRET, req.headers, req.body, T0.timestamp()) == ""
    assert verify(SECRET, req.headers, req.body + b" ", T0.timestamp()) == "no matching signature"
    assert verify(SECRET, req.headers, req.body, T0.timestamp() + 301) == "timestamp outside tolerance"
    later = build_sinks(CFG, ENV)["hook"].render(n, T0 + timedelta(minutes=7))
    assert later.body == req.body and later.headers["webhook-id"] == n.message_id  # a retry: same id, same bytes


def test_slack_message() -> None:
    body = json.loads(build_sinks(CFG, ENV)["chat"].render(notes()["chat"], T0).body)
    assert body["text"].startswith(":rotating_light: [critical] c1@t1: drift detected in refusal_rate")
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds == ["section", "section", "section", "section", "context"]
    assert "&lt;b&gt;" in body["blocks"][3]["text"]["text"]  # Slack mrkdwn escaped
    assert "/api/drift/e1" in body["blocks"][4]["elements"][0]["text"]


def test_alertmanager_alert_shape_and_resolve() -> None:
    am = build_sinks(CFG, ENV)["am"]
    fire = am.render(notes()["am"], T0 + timedelta(seconds=5))
    assert fire.url == "http://127.0.0.1:9/api/v2/alerts"
    [a] = json.loads(fire.body)
    assert a["labels"] == {"alertname": "LLMMonitorDrift", "canary": "c1", "target": "t1",
                           "signal": "refusal_rate", "severity": "critical"}
    assert a["startsAt"] == T0.isoformat()
    assert datetime.fromisoformat(a["endsAt"]) == T0 + timedelta(seconds=5, minutes=4)  # valid 4 resend intervals
    assert a["generatorURL"] == "http://127.0.0.1:9464/api/drift/e1"
    assert a["annotations"]["description"].startswith("baseline_value=0.02, current_value=0.4")
    end = T0 + timedelta(minutes=9)
    [r] = json.loads(am.render(notes("drift.resolved", resolved_at=end)["am"], T0 + timedelta(minutes=10)).body)
    assert r["labels"] == a["labels"] and r["endsAt"] == end.isoformat()


def test_pagerduty_trigger_and_resolve_share_a_dedup_key() -> None:
    pd = build_sinks(CFG, ENV)["pd"]
    t = json.loads(pd.render(notes()["pd"], T0).body)
    r = json.loads(pd.render(notes("drift.resolved")["pd"], T0).body)
    assert t["event_action"] == "trigger" and r["event_action"] == "resolve"
    assert t["dedup_key"] == r["dedup_key"] == "llm-monitor/c1/t1/refusal_rate"
    assert t["routing_key"] == "R0UTINGKEY0" and t["payload"]["severity"] == "critical"
    assert "R0UTINGKEY0" not in json.dumps(notes()["pd"].payload)


def test_missing_secrets_are_named() -> None:
    with pytest.raises(SecretError, match="environment variable SLACK_URL .named by url_env. is not set"):
        build_sinks(CFG, {k: v for k, v in ENV.items() if k != "SLACK_URL"})
    with pytest.raises(SecretError, match="signing secret must be base64"):
        build_sinks(CFG, {**ENV, "HOOK_SECRET": "whsec_not base64!"})


def test_sinks_do_not_show_secrets() -> None:
    sinks = build_sinks(CFG, ENV)
    assert "sekret" not in repr(sinks) and "R0UTINGKEY0" not in repr(sinks)
    assert sinks["chat"].redact("POST https://hooks.slack.com/services/T0/B0/sekret failed") == \
        "POST <redacted> failed"


def test_a_url_written_in_the_config_is_no_secret_only_the_credentials_it_carries_are() -> None:
    """A sink redacts its URL when it was read from url_env or url_file (its token may be anywhere in it); a `url:`
    written in the config stays in its errors, but for the password and the credential-named query values it
    carries. As the running sink redacts, `store scrub` scrubs (its `secrets`)."""
    plain = "http://ops:hunter2pass@alertmanager:9093/am?token=tok3nSecretValue&x=1&view=list-everything"
    cfg = AlertsConfig.model_validate({"sinks": [
        {"name": "am", "type": "alertmanager", "url": "http://alertmanager:9093"},
        {"name": "creds", "type": "webhook", "url": plain},  # an Alertmanager URL takes no query
        {"name": "env", "type": "alertmanager", "url_env": "AM_URL"},
        {"name": "pd", "type": "pagerduty", "routing_key_env": "PD_KEY"}]})
    sinks = build_sinks(cfg, {"AM_URL": "http://alertmanager:9093", "PD_KEY": "R0UTINGKEY0"})
    said = "ConnectError: http://alertmanager:9093/api/v2/alerts and https://events.pagerduty.com/v2/enqueue"
    assert sinks["am"].redact(said) == said and sinks["am"].secrets == ()
    assert sinks["pd"].redact(said) == said and sinks["pd"].secrets == ("R0UTINGKEY0",)
    assert sinks["env"].redact(said) == said.replace("http://alertmanager:9093", "<redacted>")
    assert sinks["creds"].redact(plain) == \
        "http://ops:<redacted>@alertmanager:9093/am?token=<redacted>&x=1&view=list-everything"


def test_external_labels_go_on_every_pushed_alert_and_into_every_payload() -> None:
    # Found by a newcomer walk-through: two deployments (prod and staging) pushing to one Alertmanager with the same
    # canary and target ids merged into one alert, and their inhibits crossed; Prometheus' answer is
    # global.external_labels, and alerts.external_labels is its equivalent
    cfg = CFG.model_copy(update={"external_labels": {"env": "prod", "team": "llm"}})
    sinks = build_sinks(cfg, ENV)
    n = notes()
    [a] = json.loads(sinks["am"].render(n["am"], T0).body)
    assert a["labels"] == {"alertname": "LLMMonitorDrift", "canary": "c1", "target": "t1", "signal": "refusal_rate",
                           "severity": "critical", "env": "prod", "team": "llm"}
    [refreshed] = json.loads(sinks["am"].refresh([n["am"]], T0).body)  # the re-sends while it fires as well
    assert refreshed["labels"] == a["labels"]
    hook = json.loads(sinks["hook"].render(n["hook"], T0).body)
    assert hook["data"] == {**n["hook"].payload, "external_labels": {"env": "prod", "team": "llm"}}
    chat = json.loads(sinks["chat"].render(n["chat"], T0).body)
    assert [f["text"] for f in chat["blocks"][1]["fields"]][:3] == ["*env*\nprod", "*team*\nllm", "*canary*\nc1"]
    pd = json.loads(sinks["pd"].render(n["pd"], T0).body)
    assert pd["payload"]["custom_details"]["external_labels"] == {"env": "prod", "team": "llm"}
    assert pd["dedup_key"] == "llm-monitor/c1/t1/refusal_rate"  # kept: an incident open at the change still resolves
    plain = build_sinks(CFG, ENV)  # none set: every payload as before
    assert json.loads(plain["hook"].render(n["hook"], T0).body)["data"] == n["hook"].payload
    assert "external_labels" not in json.loads(plain["pd"].render(n["pd"], T0).body)["payload"]["custom_details"]


def test_slack_message_keeps_to_slacks_field_limits_whatever_the_external_labels() -> None:
    # Slack refuses (400 invalid_blocks) a section of more than 10 fields or a field over 2000 characters: seven
    # external labels (or one long value) beside canary, target, signal and severity had every message refused
    labels = {f"l{i}": f"v{i}" for i in range(7)} | {"long": "x" * 3000}
    cfg = CFG.model_copy(update={"external_labels": labels})
    chat = json.loads(build_sinks(cfg, ENV)["chat"].render(notes()["chat"], T0).body)
    fields = [f["text"] for f in chat["blocks"][1]["fields"]]
    assert len(fields) <= 10 and all(len(f) <= 2000 for f in fields)
    assert fields[0].startswith("*labels*\nl0=v0, l1=v1") and fields[1:] == [
        "*canary*\nc1", "*target*\nt1", "*signal*\nrefusal_rate", "*severity*\ncritical"]
    few = CFG.model_copy(update={"external_labels": {"env": "prod", "long": "y" * 3000}})
    fields = [f["text"] for f in json.loads(build_sinks(few, ENV)["chat"].render(notes()["chat"], T0).body)
              ["blocks"][1]["fields"]]
    assert fields[0] == "*env*\nprod" and len(fields[1]) <= 2000 and len(fields) == 6


def test_slack_shows_the_deciding_test_and_its_figures_for_every_kind_of_drift_event() -> None:
    """A chart's event (a rate chart, a rank CUSUM) showed no test nor figure in Slack, a window test's its p-value
    unnamed: each now shows `test:` with a p-value or the chart's level/threshold, a rank CUSUM's later window test
    under that test's name, a resolved rate what showed it back; a message of several events names each one's."""
    from monitor.alerts.sinks.slack import slack_message
    from monitor.drift import DriftEvent, EventUpdate
    from monitor.drift_alerts import alert_event

    def message(action: str, *events: DriftEvent) -> str:
        payloads = [plan(alert_event(EventUpdate(action, e)), CFG, T0, {}).notifications for e in events]
        chat = [n for ns in payloads for n in ns if n.sink == "chat"]
        p = chat[0].payload if len(chat) == 1 else merge_drift([n.payload for n in chat])
        return "\n".join(b["text"]["text"] for b in slack_message(p)["blocks"] if "text" in b)

    base = dict(canary="c1", target="t1", kind="behaviour", baseline_n=300, first_obs_id=None, first_obs_at=None,
                opened_at=T0.isoformat())
    rate = DriftEvent(signal="refused", test="bernoulli_cusum", baseline_value=0.0, current_value=0.6,
                      effect_size=1.8, statistic=17.94, p_value=None, threshold=14.2, current_n=147,
                      detail={"back": {"n": 370, "hits": 2, "rate": 2 / 370}}, **base)
    rank = DriftEvent(signal="output_chars", test="rank_cusum", baseline_value=225.0, current_value=349.0,
                      effect_size=1.2, statistic=13.1, p_value=None, threshold=13.0, current_n=30,
                      detail={"window": {"test": "mann_whitney+ks", "p_value": 4.1e-8}}, **base)
    window = DriftEvent(signal="latency_s", test="mann_whitney+ks", baseline_value=1.0, current_value=2.0,
                        effect_size=0.9, statistic=0.8, p_value=3.2e-6, threshold=None, current_n=30, **base)
    assert "test: bernoulli_cusum 17.9/14.2" in message("opened", rate)
    assert "back: 0.00541 over the last 370" in message("resolved", rate)
    assert "test: rank_cusum 13.1/13; mann_whitney+ks p=4.1e-08" in message("opened", rank)
    assert "test: mann_whitney+ks p=3.2e-06" in message("opened", window)
    zero = DriftEvent(signal="refused", test="zero_tolerance", baseline_value=0.0, current_value=3 / 40,
                      effect_size=None, statistic=1.0, p_value=None, threshold=1.0, current_n=40,
                      detail={"declared": "zero", "violations": 3, "observations": 40}, **base)
    assert "test: zero_tolerance 3 of 40" in message("opened", zero)  # not its level/threshold, always 1/1
    both = message("opened", rate, window)
    assert "refused: 0 -&gt; 0.6 (bernoulli_cusum 17.9/14.2)" in both and "(mann_whitney+ks p=3.2e-06)" in both


def _slack_texts(body: dict) -> list[str]:
    """Every mrkdwn text of a Slack message: the fallback text, each section's text and fields, the context."""
    out = [body["text"]]
    for b in body["blocks"]:
        out += [b["text"]["text"]] if "text" in b else []
        out += [f["text"] for f in b.get("fields", [])] + [e["text"] for e in b.get("elements", [])]
    return out


def _badly_escaped(text: str) -> list[str]:
    """What in escaped mrkdwn is not as Slack's rules want it: an `&` that starts no escape (a cut `&am`), or a `<`
    or `>` outside a whole `<url|label>` link."""
    import re

    rest = re.sub(r"<[^<>|]+\|[^<>]*>", "", text)  # the links
    return re.findall(r"&(?!(?:amp|lt|gt);)[^&]{0,4}|[<>]", rest)


def test_slack_escapes_every_text_once_cuts_none_inside_an_escape_and_escapes_its_links() -> None:
    # Found by QA: the fallback `text` went out unescaped; our own `->` between from and to in a section was a raw
    # `>`; a cut to Slack's limits after escaping could end inside `&amp;` (`&am`) or an arrow's `-&gt;` (`-&g`);
    # and a link's URL went into `<url|label>` as it was (a `>` or `|` in it ends the link early).
    from monitor.alerts.sinks.slack import slack_message

    link = "https://grafana.example/d/x?var-a=1&var-b=<2>|3"
    p = {"status": "firing", "severity": "warning", "canary": "c&1", "target": "t<1>", "signal": "s",
         "summary": "c&1@t<1>: 0.1 -> 0.5 & more", "link": link, "event_id": "e&1",
         "evidence": {"baseline_value": "a&b", "current_value": "<c>", "diff": "- x & y\n+ <z>"},
         "changes": [{"canary": "c&1", "signal": "m", "from": "gpt<4>", "to": "gpt&5"}],
         "events": [{"signal": "s", "baseline_value": 1, "current_value": 2, "link": link},
                    {"signal": "r&", "baseline_value": 3, "current_value": 4}]}
    body = slack_message(p)
    assert body["text"] == ":rotating_light: [warning] c&amp;1@t&lt;1&gt;: 0.1 -&gt; 0.5 &amp; more"
    assert body["blocks"][0]["text"]["text"] == body["text"]
    changes = body["blocks"][3]["text"]["text"]
    assert "c&amp;1 m: gpt&lt;4&gt; -&gt; gpt&amp;5" in changes and "s: 1 -&gt; 2" in changes
    escaped_link = "https://grafana.example/d/x?var-a=1&amp;var-b=&lt;2&gt;%7C3"
    assert f"(<{escaped_link}|event>)" in changes
    assert body["blocks"][-1]["elements"][0]["text"] == f"<{escaped_link}|event e&amp;1>"
    assert [(t, bad) for t in _slack_texts(body) if (bad := _badly_escaped(t))] == []
    # each cut to a limit ends before an escape or an arrow it would split, whatever falls at the limit
    for pad in range(2890, 2905):
        long = {**p, "summary": "x" * pad + " & -> <" * 40, "evidence": {"diff": "y" * pad + "& -> <" * 40},
                "changes": [], "events": []}
        body = slack_message(long)
        assert [(pad, t[-12:], bad) for t in _slack_texts(body) if (bad := _badly_escaped(t))] == []
        assert len(body["text"]) <= 3000 and all(len(t) <= 3000 for t in _slack_texts(body))


def test_slack_says_when_it_cuts_a_text_and_how_much_it_left_out() -> None:
    # Found by QA: a long evidence diff (or summary) was cut to Slack's limits with nothing saying so: the on-call
    # read a diff that ended mid-line as if it were whole.
    import re

    from monitor.alerts.sinks.slack import slack_message

    diff = "- old & line <a>\n+ new -> line\n" * 200  # 6,200 characters, each `&`, `<`, `>` escaped in the message
    p = {"status": "firing", "severity": "warning", "summary": "s" * 3500 + " & <x>", "evidence": {"diff": diff}}
    body = slack_message(p)
    block = next(t for t in _slack_texts(body) if t.startswith("```"))
    shown, _, note = block[3:].partition("```")
    m = re.fullmatch(r" … \(cut, ([\d,]+) more characters\)", note)
    assert m, block[-80:]
    unescaped = shown.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert diff.startswith(unescaped) and int(m.group(1).replace(",", "")) == len(diff) - len(unescaped)
    assert len(block) <= 3000
    head = body["blocks"][0]["text"]["text"]
    assert re.search(r" … \(cut, [\d,]+ more characters\)$", head) and len(head) <= 3000
    assert re.search(r" … \(cut, [\d,]+ more characters\)$", body["text"]) and len(body["text"]) <= 3000
    assert [(t[-40:], bad) for t in _slack_texts(body) if (bad := _badly_escaped(t))] == []
    short = slack_message({**p, "summary": "s", "evidence": {"diff": "- a\n+ b"}})
    assert "cut" not in json.dumps(short)  # nothing cut, nothing said
