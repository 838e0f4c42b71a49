"""The `alerts:` section of monitor.yaml: sinks, routes, cooldown and delivery settings.

Secrets (webhook signing secrets, Slack URLs, PagerDuty routing keys) are never accepted in the config
text: a sink names the environment variable (`*_env`) or file (`*_file`) that holds them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.alerts.events import KINDS, SEVERITIES
from monitor.durations import Seconds, format_duration
from monitor.http_urls import url_problem
from monitor.keyed_error import keyed_error
from monitor.keylike import looks_like_a_key, shown_name
from monitor.known_names import known as known_list
from monitor.literal_secrets import refused_key
from monitor.not_bool import refuse_bools
from monitor.one_line import one_line
from monitor.placed import Placed
from monitor.written_int import WrittenInt

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}\Z")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_SECRETLIKE = re.compile(r"^(whsec_|xox[abp]-|sk-|sk_)|^[A-Za-z0-9+/_=-]{32,}$")
# Validation context under which AlertsConfig leaves sink names and routes unchecked: the config loader checks them
# itself, one problem per sink and route, also when other parts of the section fail validation.
REFERENCES_CHECKED = "references_checked"


def _env_name(v: str | None) -> str | None:
    if v is not None and (not _ENV.match(v) or _SECRETLIKE.search(v)):
        raise ValueError("must be the NAME of an environment variable holding the secret (e.g. "
                         "SLACK_WEBHOOK_URL), not the secret itself: secrets are never read from the config text")
    return v


def http_url(v: str | None) -> str | None:
    """Return `v` without a trailing slash; ValueError unless it is an http:// or https:// URL (the check of a sink's
    `url` written in the config, and of one read from its `url_env` or `url_file` when the sink is built)."""
    if v is None:
        return v
    problem = url_problem(v)
    if problem:
        raise ValueError(problem)
    return v.rstrip("/")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="wrap")
    @classmethod
    def _no_bool_for_number(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        return refuse_bools(cls, data, handler)


class _SinkBase(_Strict, Placed):
    # Placed: the file and line loading found the sink at, which the problems of its secrets name (monitor.placed)
    name: str
    timeout: Annotated[Seconds, Field(gt=0)] = 10.0  # each attempt, reply included (0: every attempt would fail)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be lowercase letters, digits, '.', '_' or '-', starting with a letter or digit")
        return v

    # Whether its `url` was written with a ${VAR}: taken from the environment, it is a secret as url_env's is (a
    # webhook's token may be in its path). Set by loading (`url_written_as`), as the place is; False in code.
    _url_from_env: bool = PrivateAttr(default=False)

    @property
    def url_secret(self) -> bool:
        """Whether the sink's URL is a secret: read from url_env or url_file (no `url`: Slack's always), or a `url`
        the environment gave (a ${VAR} in it); a `url` written out in the config is not."""
        return getattr(self, "url", None) is None or self._url_from_env

    def url_written_as(self, from_env: bool) -> Self:
        """Return this entry, knowing whether its `url` was written with a ${VAR} (loading calls it)."""
        copy = self.model_copy()  # with its place
        copy._url_from_env = from_env
        return copy

    @field_validator("url_env", "secret_env", "routing_key_env", mode="after", check_fields=False)
    @classmethod
    def _envs(cls, v: str | None) -> str | None:
        return _env_name(v)

    @field_validator("url", mode="after", check_fields=False)
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return http_url(v)


def _one_url(m: Any, *, literal_ok: bool, what: str) -> None:
    given = [k for k in ("url", "url_env", "url_file") if getattr(m, k, None)]
    if len(given) != 1:
        options = "url, url_env or url_file" if literal_ok else "url_env or url_file"
        raise ValueError(f"{what} sink {m.name!r}: set exactly one of {options}")


class WebhookSink(_SinkBase):
    """A generic JSON webhook signed per Standard Webhooks v1 (when a secret is named)."""

    type: Literal["webhook"]
    url: str | None = None
    url_env: str | None = None
    url_file: str | None = None
    secret_env: str | None = None
    secret_file: str | None = None

    @model_validator(mode="after")
    def _check(self) -> WebhookSink:
        _one_url(self, literal_ok=True, what="webhook")
        if self.secret_env and self.secret_file:
            raise ValueError(f"webhook sink {self.name!r}: set at most one of secret_env or secret_file")
        return self


class SlackSink(_SinkBase):
    """A Slack incoming webhook; its URL is the secret, so it comes from the environment or a file."""

    type: Literal["slack"]
    url_env: str | None = None
    url_file: str | None = None

    _no_literal = refused_key("url", "a Slack webhook URL is a secret: put it in an environment variable and name it "
                              "with url_env (or point url_file at a file)")

    @model_validator(mode="after")
    def _check(self) -> SlackSink:
        _one_url(self, literal_ok=False, what="slack")
        return self


_AM_API = re.compile(r"/api/v[12](?:/alerts)?(?=/|$)")


def alertmanager_url_problem(url: str) -> str | None:
    """Why `url` is no Alertmanager base URL the sink can append `/api/v2/alerts` to (None: it is one): it holds the
    API's path already (`/api/v2/alerts`, `/api/v1`), a query string or a fragment. Names the API path found, never
    the rest of the URL (one read from url_env or url_file is a secret)."""
    try:
        found = _AM_API.search(urlsplit(url).path)
    except ValueError:  # no URL urlsplit reads: the URL check (`http_url`) says why
        return None
    if found:
        return (f"holds the API path {found.group()}: the sink appends /api/v2/alerts itself; give Alertmanager's "
                "address (http://alertmanager:9093, with its --web.route-prefix if it has one)")
    for mark, what in (("?", "a query string"), ("#", "a fragment")):
        if mark in url:
            return (f"has {what} ({mark}...): the sink appends /api/v2/alerts itself, after the path; give "
                    "Alertmanager's address alone (http://alertmanager:9093)")
    return None


class AlertmanagerSink(_SinkBase):
    """Alertmanager's v2 API: alerts are pushed, re-sent while firing and resolved with `endsAt`."""

    type: Literal["alertmanager"]
    url: str | None = None
    url_env: str | None = None
    url_file: str | None = None

    @field_validator("url", mode="after")
    @classmethod
    def _api_url(cls, v: str | None) -> str | None:
        problem = alertmanager_url_problem(v) if v is not None else None
        if problem:
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _check(self) -> AlertmanagerSink:
        _one_url(self, literal_ok=True, what="alertmanager")
        return self


class PagerDutySink(_SinkBase):
    """PagerDuty Events API v2: trigger and resolve with a dedup key per canary x target x signal."""

    type: Literal["pagerduty"]
    url: str = "https://events.pagerduty.com/v2/enqueue"
    routing_key_env: str | None = None
    routing_key_file: str | None = None

    _no_literal = refused_key("routing_key", "routing_key is not accepted in the config text: name an environment "
                              "variable with routing_key_env (or point routing_key_file at a file)")

    @model_validator(mode="after")
    def _check(self) -> PagerDutySink:
        if (self.routing_key_env is None) == (self.routing_key_file is None):
            raise ValueError(f"pagerduty sink {self.name!r}: set exactly one of routing_key_env or routing_key_file")
        return self


SinkConfig = Annotated[WebhookSink | SlackSink | AlertmanagerSink | PagerDutySink, Field(discriminator="type")]


def _listify(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


# A route's match glob at most: longer than any id, kind, severity or tag (fnmatch took a minute over 1M characters)
MAX_GLOB = 200
StrList = Annotated[list[Annotated[str, Field(max_length=MAX_GLOB)]] | None, BeforeValidator(_listify)]


class Match(_Strict):
    """What a route matches; every field given must match (any of its values; shell-style globs allowed)."""

    kind: StrList = None
    severity: StrList = None
    target: StrList = None
    canary: StrList = None
    tags: StrList = None  # matches when the event carries any of these tags

    @field_validator("severity")
    @classmethod
    def _sev(cls, v: list[str] | None) -> list[str] | None:
        import fnmatch

        for s in v or []:  # a value or a shell glob, as in every match key
            if not any(fnmatch.fnmatchcase(known, s) for known in SEVERITIES):
                raise ValueError(f"unknown severity {s!r}: it matches none of {', '.join(SEVERITIES)}")
        return v

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: list[str] | None) -> list[str] | None:
        import fnmatch

        for k in v or []:
            if not any(fnmatch.fnmatchcase(known, k) for known in KINDS):
                raise ValueError(f"{k!r} matches no event kind (kinds: {', '.join(KINDS)})")
        return v


class Route(_Strict):
    """Send events matching `match` to `sinks`; every matching route adds its sinks."""

    match: Match = Match()
    sinks: list[str] = Field(min_length=1)


class Retry(_Strict):
    """Delivery retries: exponential backoff with full jitter from `initial` up to `max`, then give up."""

    initial: Annotated[Seconds, Field(gt=0)] = 5.0  # 0 (or a max of 0): every retry at once, a hot loop at a
    max: Annotated[Seconds, Field(gt=0)] = 3600.0    # receiver that is down
    give_up_after: Seconds = 86400.0  # at least group_wait + initial (AlertsConfig): room for a first retry
    max_retry_after: Seconds = 3600.0  # cap on a receiver's Retry-After

    @model_validator(mode="after")
    def _max_at_least_initial(self) -> Retry:
        # The backoff grows from `initial` and is capped at `max`: a max under initial made every retry wait up to
        # max, and the initial written was never used.
        if self.max < self.initial:
            raise keyed_error("max", f"must be at least retry.initial ({format_duration(self.initial)}): the backoff "
                              "grows from retry.initial and is capped at retry.max, so a smaller max leaves "
                              "retry.initial unused", format_duration(self.max))
        return self


# Prometheus' label names (the classic ones every Alertmanager takes); `__` begins the names Prometheus reserves
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*\Z")
# The labels a pushed alert sets itself: an external label of one of these names would change what it identifies
OWN_LABELS = ("alertname", "canary", "target", "signal", "severity")


def _label_name(v: str) -> str:
    if not _LABEL.match(v):
        # not quoted: a key that is no name may be a secret written in its place (config loading drops it from the
        # field it names, too); the line points at it
        raise ValueError("not a classic Prometheus label name (letters, digits and '_', not starting with a digit; "
                         "the UTF-8 names of Prometheus 3 are not taken); the key is not shown")
    if v.startswith("__"):  # a token of letters, digits and '_' is a name: not shown when it looks like one
        shown = "" if looks_like_a_key(v) else f"{v!r}: "
        raise ValueError(f"{shown}label names beginning with '__' are reserved by Prometheus")
    if v in OWN_LABELS:
        raise ValueError(f"{v!r} is a label every alert llm-monitor pushes sets itself ({', '.join(OWN_LABELS)}); "
                         "name the deployment with another label (env, cluster, team)")
    return v


def _label_value(v: str) -> str:
    if not v:
        raise ValueError("an empty label value is no label in Alertmanager: leave the label out")
    # a NUL or a line break went into every alert's labels, the webhook body, Slack's fields and PagerDuty's details
    return one_line(v, "a label value on one line")


def _label_text(v: Any) -> Any:
    # `replica: 1` is a label value as Prometheus reads its external_labels (YAML's number, a string there); a
    # float or a boolean is not: Prometheus keeps the text (`1.10`, `yes`), where YAML here read 1.1 or True, and a
    # value unlike the Prometheus side's breaks the Alertmanager inhibits that match on it
    if isinstance(v, bool | float):
        raise ValueError(f"write it quoted: YAML reads it as the {type(v).__name__} {v!r}, where Prometheus' "
                         "external_labels keep the text as written")
    if isinstance(v, WrittenInt):  # `010` (octal in YAML 1.1), 0x1F, 1_000, 1:30: the number is not what was written
        raise ValueError(f"write it quoted: YAML reads {v.text} as the int {int(v)}, where Prometheus' "
                         "external_labels keep the text as written")
    return str(v) if isinstance(v, int) else v


def _at(where: str) -> str:
    return f"{where}: " if where else ""


LabelName = Annotated[str, AfterValidator(_label_name)]
LabelValue = Annotated[str, BeforeValidator(_label_text), AfterValidator(_label_value)]


class AlertsConfig(_Strict, Placed):
    """The `alerts:` section: where notifications go and how often.

    With no routes, every event goes to every sink. A firing message for the same canary x target x signal
    is not repeated within `cooldown` (webhook and Slack sinks; Alertmanager and PagerDuty de-duplicate
    themselves and get every state change); a firing message after a resolve is always sent, and a target's model
    change only repeats if its signal's new value was told within it (a change back is news). Model changes
    of one target, and the drift of one canary x target, seen within `group_wait` go to webhook and Slack sinks
    as one message each. Firing alerts are re-sent to Alertmanager every `resend_interval`.
    """

    external_url: str = "http://127.0.0.1:9464"
    # Prometheus' global.external_labels: on every alert pushed to Alertmanager, and in the other sinks' payloads,
    # so two deployments (prod and staging, two teams) sending to one receiver with the same ids stay apart
    external_labels: dict[LabelName, LabelValue] = {}
    cooldown: Seconds = 1800.0
    group_wait: Seconds = 30.0
    resend_interval: Seconds = 60.0
    retry: Annotated[Retry, Field(validate_default=True)] = Retry()  # checked against group_wait as written
    sinks: list[SinkConfig] = []
    routes: list[Route] = []

    @field_validator("external_url")
    @classmethod
    def _ext(cls, v: str) -> str:
        return http_url(v) or v

    @field_validator("resend_interval")
    @classmethod
    def _resend(cls, v: float) -> float:
        if v < 1:
            raise ValueError("must be at least 1s")
        return v

    @field_validator("retry")
    @classmethod
    def _give_up(cls, v: Retry, info: ValidationInfo) -> Retry:
        # A notification is first tried up to group_wait after it is written (webhook and Slack collect a drift or a
        # target's model changes meanwhile) and its first retry comes up to `initial` after that: a shorter
        # give_up_after gave up on it at its first failed attempt (0: every notification), without a retry.
        group_wait = info.data.get("group_wait")
        if group_wait is not None and v.give_up_after < group_wait + v.initial:
            least = format_duration(group_wait + v.initial)
            raise keyed_error("give_up_after", f"must be at least group_wait + retry.initial ({least}): a notification "
                              "is first tried up to group_wait after it is written, and its first retry comes up to "
                              "retry.initial after that; a shorter time gives up on it at its first failed attempt",
                              format_duration(v.give_up_after))
        return v

    @model_validator(mode="after")
    def _refs(self, info: ValidationInfo) -> AlertsConfig:
        if info.context and info.context.get(REFERENCES_CHECKED):
            return self
        names = [s.name for s in self.sinks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate sink names: {', '.join(dupes)}")
        for i, route in enumerate(self.routes):
            unknown = [n for n in route.sinks if n not in names]
            if unknown:
                raise ValueError(f"routes[{i}] names unknown sinks: {', '.join(unknown)} {known_list(names, unknown[0])}")
        return self

    def secret_looking_labels(self, besides: dict[str, str] | None = None) -> list[str]:
        """Warnings for the external labels whose value or name looks like a secret (an API key or token pasted in
        place of a name): each names its file, line and label (its name unless that looks like one), never the value.
        Not refused: a deployment's name may look so. `besides` (the running config's labels, at a reload): only
        those it does not have, as set."""
        out = []
        for name, value in self.external_labels.items():
            secret = [what for what, text in (("name", name), ("value", value)) if looks_like_a_key(text)]
            if not secret or (besides is not None and besides.get(name) == value):
                continue
            out.append(_at(self.where_of(f"external_labels.{name}")) + f"alerts.external_labels.{shown_name(name)}: "
                       f"the {' and the '.join(secret)} {'look' if len(secret) > 1 else 'looks'} like a secret (an "
                       "API key or token; not shown): it goes in the clear on every alert pushed to Alertmanager and "
                       "in every sink's payload; name the deployment there (env: prod), and keep credentials in the "
                       "environment")
        return out

    def sink(self, name: str) -> WebhookSink | SlackSink | AlertmanagerSink | PagerDutySink:
        """Return the sink config called `name` (KeyError if none)."""
        for s in self.sinks:
            if s.name == name:
                return s
        raise KeyError(name)
