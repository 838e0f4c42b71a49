"""Slack incoming webhook: a text fallback plus Block Kit blocks. The URL is the secret."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from monitor.alerts.config import AlertsConfig, SlackSink
from monitor.alerts.events import Notification
from monitor.alerts.sinks.base import USER_AGENT, Rendered, Sink, read_url, to_json
from monitor.decision import BACK, decision

_ICON = {"firing": ":rotating_light:", "resolved": ":white_check_mark:", "info": ":information_source:"}
_SECTION_MAX = 2900  # Slack caps a section's text at 3000 characters
_FIELDS_MAX = 10  # Slack refuses (400 invalid_blocks) a section of more than 10 fields, or a field over 2000 characters
_FIELD_MAX = 1990
_TEXT_MAX = 3000  # the fallback `text` (notifications, clients without blocks), cut as a section is


def _esc(text: Any) -> str:
    """`text` as Slack's mrkdwn takes it: `&`, `<` and `>` escaped (`&amp;`, `&lt;`, `&gt;`), once."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


ARROW = _esc("->")  # `from -> to` in escaped text: `-&gt;`, shown as `->`


def _link(url: Any, label: Any) -> str:
    """A mrkdwn link `<url|label>`: both escaped, a `|` in the URL percent-encoded (it would end the URL early)."""
    return f"<{_esc(url).replace('|', '%7C')}|{_esc(label)}>"


def _unescaped_len(text: str) -> int:
    """How many characters escaped mrkdwn stands for (`&amp;` is one)."""
    return len(text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


def _cut_note(left_out: int) -> str:
    """What a cut text ends with: how many characters of it were left out."""
    return f" … (cut, {left_out:,} more characters)"


def _cut(text: str, limit: int, fence: str = "") -> str:
    """Escaped mrkdwn, inside `fence` (a code block's ```), in at most `limit` characters; cut, never inside an escape
    (`&am` of `&amp;`, `-&g` of an arrow) or a link (`<http://...` unclosed): the cut goes back to before it, and the
    text then ends (after its fence) with `… (cut, N more characters)`, N counted as the reader would (`&amp;` one):
    a diff cut mid-line reads as whole otherwise. Escaped, `&` only starts an escape and `<` a link."""
    if len(text) + 2 * len(fence) <= limit:
        return f"{fence}{text}{fence}"
    cut = text[:max(limit - 2 * len(fence) - len(_cut_note(_unescaped_len(text))), 0)]
    amp = cut.rfind("&")
    if amp >= 0 and ";" not in cut[amp:]:
        cut = cut[:amp]
    lt = cut.rfind("<")
    if lt >= 0 and ">" not in cut[lt:]:
        cut = cut[:lt]
    return f"{fence}{cut}{fence}{_cut_note(_unescaped_len(text[len(cut):]))}"


def _num(v: Any) -> Any:
    """A float as people read it (0.481, 3.7e-05), not to 17 digits; anything else as it is."""
    return f"{v:.3g}" if isinstance(v, float) else v


def _when(v: Any) -> str:
    """An ISO time as `2026-11-30 10:51:16 UTC` (UTC, to the second); anything unreadable as it is."""
    try:
        t = datetime.fromisoformat(str(v))
    except ValueError:
        return str(v)
    t = t.astimezone(UTC) if t.tzinfo else t
    return f"{t:%Y-%m-%d %H:%M:%S} UTC"


def _delivery_note(p: dict[str, Any]) -> str:
    """What the message says of its own delivery: a re-sent page, or an end whose page never arrived."""
    if p.get("resent"):
        return " (re-sent: its first delivery here was given up on; it still fires)"
    if p.get("firing_not_delivered"):
        return " (its firing message was never delivered here: the receiver was unreachable)"
    return ""


def slack_message(p: dict[str, Any], external_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the Slack message for a notification payload; the deployment's `external_labels` (env=prod) lead its
    fields, so one channel fed by two deployments tells them apart."""
    icon = _ICON.get(p.get("status", "info"), "")
    text = f"{icon} [{p.get('severity', '')}] {p.get('summary', '')}".strip() + _delivery_note(p)
    own = [f"*{k}*\n{_esc(p[k])}" for k in ("canary", "target", "signal", "severity") if p.get(k)]
    labels = dict(external_labels or {})
    if len(labels) + len(own) <= _FIELDS_MAX:
        fields = [f"*{_esc(k)}*\n{_esc(v)}" for k, v in labels.items()] + own
    else:  # more labels than Slack's 10 fields hold: one field of them all, or every message would be refused
        fields = ["*labels*\n" + _esc(", ".join(f"{k}={v}" for k, v in labels.items()))] + own
    fields = [_cut(f, _FIELD_MAX) for f in fields]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(_esc(text), _SECTION_MAX)}},
    ]
    if fields:
        blocks.append({"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]})
    ev = p.get("evidence") or {}
    facts = [f"{k}: {_esc(_num(ev[k]))}" for k in ("baseline_value", "current_value") if ev.get(k) is not None]
    if ev.get("test"):  # the test and its figure, for every kind of event: a p-value, or a chart's level/threshold
        facts.append(f"test: {_esc(decision(ev))}")
    elif ev.get("p_value") is not None:
        facts.append(f"p_value: {_esc(_num(ev['p_value']))}")
    facts += [f"{k}: {_esc(_num(ev[k]))}" for k in ("baseline_n", "current_n") if ev.get(k) is not None]
    back = ev.get(BACK)
    if isinstance(back, dict) and back.get("n"):  # a rate event's end: the rate of the observations that showed it
        facts.append(f"back: {_esc(_num(back.get('rate')))} over the last {_esc(back['n'])}")
    if ev.get("first_obs_at"):  # since when: the first observation the change was seen in
        facts.append(f"since: {_esc(_when(ev['first_obs_at']))}")
    if p.get("note"):
        facts.append(f"note: {_esc(p['note'])}")
    if facts:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut("\n".join(facts), _SECTION_MAX)}})
    changes = [f"{_esc(c.get('canary'))} {_esc(c.get('signal'))}: {_esc(c.get('from'))} {ARROW} {_esc(c.get('to'))}"
               for c in p.get("changes") or []]
    events = p.get("events") or []
    if len(events) > 1:  # several signals of one canary x target in one message
        changes += [f"{_esc(e.get('signal'))}: {_esc(_num(e.get('baseline_value')))} {ARROW} "
                    f"{_esc(_num(e.get('current_value')))}" + (f" ({_esc(e['decision'])})" if e.get("decision") else "")
                    + (f" ({_link(e['link'], 'event')})" if e.get("link") else "") for e in events]
    if changes:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut("\n".join(changes), _SECTION_MAX)}})
    if ev.get("diff"):
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(_esc(ev["diff"]), _SECTION_MAX, "```")}})
    if p.get("link"):
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": _link(p["link"], f"event {p.get('event_id') or ''}")}]})
    # the fallback text is mrkdwn too (notifications, clients without blocks): escaped and cut alike
    return {"text": _cut(_esc(text), _TEXT_MAX), "blocks": blocks}


class Slack(Sink):
    """POST `{"text", "blocks"}` to the incoming-webhook URL read from the environment or a file."""

    type = "slack"

    def __init__(self, name: str, url: str, timeout: float, external_labels: Mapping[str, str] | None = None):
        super().__init__(name, url, timeout)
        self.external_labels = dict(external_labels or {})

    @classmethod
    def build(cls, cfg: SlackSink, alerts: AlertsConfig, environ: Mapping[str, str] | None) -> Slack:
        url = read_url(cfg.name, cfg.url_env, cfg.url_file, environ)
        assert url is not None
        return cls(cfg.name, url, cfg.timeout, alerts.external_labels)

    def render(self, n: Notification, now: datetime) -> Rendered:
        body = to_json(slack_message(n.payload, self.external_labels))
        return Rendered(self.url, body, {"content-type": "application/json", "user-agent": USER_AGENT})
