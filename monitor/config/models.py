"""The configuration schema: targets (upstream model APIs), canaries (probe prompts) and daemon settings.

Every model rejects unknown keys, carries its defaults, and checks what it can on its own; cross-file checks
(unique ids, canaries naming known targets) live in :mod:`monitor.config.references`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from monitor.alerts.config import AlertsConfig
from monitor.checks import CheckSpec, check_names
from monitor.config.timing import cron_trigger, never_fires, shortest_gap_s
from monitor.drift.names import declarable, disableable
from monitor.drift.settings import DriftSettings
from monitor.durations import Seconds, format_duration, parse_duration
from monitor.keylike import looks_like_a_key
from monitor.placed import Placed

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field name
_HEADER_VALUE = re.compile(r"^[\x20-\x7e\t]*$")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _check_id(v: str) -> str:
    if not _ID.match(v):
        raise ValueError("must be lowercase letters, digits, '.', '_' or '-', starting with a letter or digit")
    return v


Id = Annotated[str, Field(min_length=1)]


class RequestParams(Strict):
    """Sampling parameters sent with every call; canary params override the target's."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None

    def merged(self, override: RequestParams | None) -> RequestParams:
        """Return these params with every field set in `override` replacing ours."""
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_none=True))


class Prices(Strict):
    """USD per million tokens. Reasoning tokens are billed as output tokens (they are counted in them).

    Input tokens read from a prompt cache are priced at `cached_input`, those written to one at
    `cache_write_input` (Anthropic: 1.25 times the input price, for the default 5-minute TTL) or
    `cache_write_1h_input` (2 times, for a 1-hour TTL); any of the three left unset prices its tokens as `input`
    (OpenAI-compatible servers bill no cache writes)."""

    input: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write_input: float | None = Field(default=None, ge=0)
    cache_write_1h_input: float | None = Field(default=None, ge=0)
    output: float = Field(ge=0)


class Target(Strict, Placed):
    """One upstream model API to watch (Placed: the problems of its API key, read when its provider is built, name
    the file and line of the target)."""

    id: Id
    provider: Literal["openai", "anthropic"]
    base_url: str
    model: str = Field(min_length=1, max_length=200)  # the store's column
    api_key_env: str | None = None
    api_key_file: str | None = None
    params: RequestParams = RequestParams()
    stream: bool = True
    stream_usage: bool = True  # send stream_options.include_usage (OpenAI-compatible servers)
    # auto: a <think> block leading the content (a reasoning model served without a reasoning parser) is reasoning,
    # not the answer (OpenAI-compatible servers; monitor.providers.thinktags); always: the chat template opens the
    # block, so the content is reasoning up to </think>, all of it when none comes; off: the answer as sent
    reasoning_tags: Literal["auto", "always", "off"] = "auto"
    timeout: Annotated[Seconds, Field(gt=0)] = 60.0  # one whole call: 60, 60s or 1m
    max_concurrency: int = Field(default=4, ge=1, le=1024)
    # Bytes read from one reply at most (after decompression too): the longest completions models write today
    # (128k tokens) take about 40 MB streamed in OpenAI's format, about 300 bytes of framing each, and well under
    # 1 MB as one JSON answer. A hostile or broken upstream can hold this much per call in flight to it.
    max_reply_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    headers: dict[str, str] = {}
    prices: Prices | None = None
    daily_spend_cap_usd: float | None = Field(default=None, gt=0)
    # all: every canary that lists no targets runs against it; listed: only the canaries that name it (a judge or
    # embeddings target, or a costly model watched by a few canaries)
    canaries: Literal["all", "listed"] = "all"

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_id(v)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an http:// or https:// URL")
        try:
            urlsplit(v).port  # noqa: B018  # raises for a port that is not a number from 0 to 65535
        except ValueError:
            raise ValueError("the port must be a number from 0 to 65535") from None
        return v.rstrip("/")

    @field_validator("reasoning_tags", mode="before")
    @classmethod
    def _tags_switch(cls, v: Any) -> Any:
        # YAML reads an unquoted off (and no, false) as False: the switch meant
        return {False: "off", True: "auto"}.get(v, v) if isinstance(v, bool) else v

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and (not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", v) or looks_like_a_key(v)):
            raise ValueError(
                "must be the NAME of an environment variable that holds the key (e.g. OPENAI_API_KEY), "
                "not the key itself: keys are never read from the config text")
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if name.lower() in {"authorization", "x-api-key", "api-key"}:
                raise ValueError(f"header {name!r} carries a secret: use api_key_env or api_key_file instead")
            if not _TOKEN.match(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name (letters, digits and "
                                 "!#$%&'*+-.^_`|~, no spaces)")
            if not _HEADER_VALUE.match(value):
                raise ValueError(f"header {name!r}: its value must be printable ASCII on one line (no line breaks, "
                                 "no other control or non-ASCII characters)")
        return v

    @model_validator(mode="before")
    @classmethod
    def _no_literal_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and "api_key" in data:
            raise ValueError("api_key is not accepted in the config text: put the key in an environment "
                             "variable and name it with api_key_env (or point api_key_file at a file)")
        return data


class Schedule(Strict):
    """When a canary runs: a fixed period (`every: 5m`, first run within `daemon.max_start_delay` of a start) or a
    cron expression (UTC; at its times only, not at a start), with optional jitter."""

    every: str | None = None
    cron: str | None = None
    jitter: str | None = None

    # Each field is checked on its own, so an error names it (`schedule.every`) and shows its value, as every other
    # field error does; only "which of them" is the schedule's own check.
    @field_validator("every")
    @classmethod
    def _every(cls, v: str | None) -> str | None:
        if v is not None and parse_duration(v) < 1:
            raise ValueError("must be at least 1s")
        return v

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                cron_trigger(v)
            except ValueError as e:
                raise ValueError(f"invalid cron expression: {e}") from e
            if never_fires(v):  # APScheduler would keep such a job without a next run: a canary that never runs
                raise ValueError("never fires: no date matches its day, month and weekday fields")
        return v

    @field_validator("jitter")
    @classmethod
    def _jitter(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        jitter = parse_duration(v)
        every = info.data.get("every")  # absent when it failed (reported on its own)
        if every is not None and jitter >= parse_duration(every):
            raise ValueError(f"must be shorter than `every` ({every})")
        # APScheduler 3 takes the next cron time after the run's jittered time: a jitter as long as a gap between
        # two cron times (or longer) would skip the later one
        cron = info.data.get("cron")
        gap = shortest_gap_s(cron) if cron is not None else None
        if gap is not None and jitter >= gap:
            raise ValueError(f"must be shorter than the shortest gap between two `cron` times "
                             f"({format_duration(gap)})")
        return v

    @model_validator(mode="after")
    def _one_of(self) -> Schedule:
        if (self.every is None) == (self.cron is None):
            raise ValueError("set exactly one of `every` or `cron`")
        return self

    @property
    def jitter_s(self) -> float:
        return parse_duration(self.jitter) if self.jitter else 0.0


class Message(Strict):
    role: Literal["system", "user", "assistant"]
    content: str


class Canary(Strict, Placed):
    """A probe prompt, run `samples` times per scheduled run against each of its targets."""

    id: Id
    description: str = ""
    messages: list[Message] = Field(min_length=1)
    params: RequestParams | None = None
    tools: list[dict[str, Any]] | None = None
    samples: int = Field(default=1, ge=1, le=100)
    schedule: Schedule = Schedule(every="5m")
    targets: list[str] | None = None
    checks: list[CheckSpec] = []
    tags: list[str] = []
    # Rate signals declared to stay at zero (refused, error, exact_match, check:NAME): the first refusal, error,
    # mismatch or failed check opens a drift event at once, outside the statistical false-alarm budget.
    zero_tolerance: list[str] = []
    source: str = Field(default="", exclude=True)  # the probe file it came from

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_id(v)

    @field_validator("messages")
    @classmethod
    def _messages(cls, v: list[Message]) -> list[Message]:
        if not any(m.role == "user" for m in v):
            roles = ", ".join(m.role for m in v)
            raise ValueError(f"needs a user message: the upstream answers a user turn (roles given: {roles})")
        return v

    @field_validator("zero_tolerance")
    @classmethod
    def _zero_tolerance(cls, v: list[str], info: ValidationInfo) -> list[str]:
        checks = info.data.get("checks")  # checks are validated first; absent here when they failed (reported)
        known = declarable(check_names(checks or []))
        # without the checks their names are unknown: a check:NAME is not judged, rather than called unknown
        unknown = [name for name in v if name not in known and (checks is not None or not name.startswith("check:"))]
        if unknown:
            names = ", ".join(repr(n) for n in unknown)
            raise ValueError(f"unknown signal{'s' if len(unknown) > 1 else ''} {names}; expected one of "
                             f"{', '.join(known)}")
        return v


class Storage(Strict):
    url: str = "sqlite:///llm-monitor.db"
    retention_days: float = Field(default=90, gt=0, le=36_500)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^(sqlite|postgresql(\+psycopg)?)://", v):
            raise ValueError("must start with sqlite:// or postgresql+psycopg://")
        # ${ENV} is interpolated before this check, so the password has to reach libpq another way
        if re.match(r"^postgresql(\+psycopg)?://[^/@]*:[^/@]+@", v) or re.search(r"[?&]password=", v):
            raise ValueError("must not contain a password: use PGPASSWORD, PGPASSFILE or a .pgpass file")
        return v


class Http(Strict):
    listen: str = "127.0.0.1:9464"
    reload_token_env: str = "LLM_MONITOR_RELOAD_TOKEN"
    web_config_file: str | None = Field(default=None, min_length=1)  # TLS and basic auth (exporter-toolkit format)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, _, port = v.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:9464 or 0.0.0.0:9464")
        return v

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class Daemon(Strict):
    grace_period: Seconds = 30.0  # in-flight probes get this long on shutdown
    max_start_delay: Seconds = 30.0  # first runs are spread over this long


class InputPrices(Strict):
    """USD per million input tokens (an embeddings model bills no output tokens)."""

    input: float = Field(ge=0)


class EmbeddingsConfig(Strict, Placed):
    """Where the optional semantic-similarity signal gets its vectors: a target's OpenAI-compatible API (Placed: a
    warning about its price names its line).

    Its calls count in the target's spend and cap (canary `_embeddings`), priced by `prices` or the shipped table;
    the target's own `prices` are its chat model's and are not used for them."""

    target: str  # a configured target (its base_url and key are used)
    model: str = Field(min_length=1, max_length=200)  # e.g. text-embedding-3-small, nomic-embed-text
    prices: InputPrices | None = None


class DriftConfig(Strict):
    """The drift engine's knobs (see monitor.drift.settings.DriftSettings for what each does)."""

    enabled: bool = True
    embeddings: EmbeddingsConfig | None = None
    baseline_size: int = Field(default=30, ge=5, le=10_000)
    # while a baseline forms, this many failed calls in a row or more are an outage and left out of its error rate
    baseline_outage_run: int = Field(default=3, ge=2, le=10_000)
    window: int = Field(default=30, ge=5, le=10_000)
    eval_every: int = Field(default=10, ge=1)
    false_alarms_per_10k: float = Field(default=0.5, gt=0, le=100)  # per stream, per 10,000 observations
    # ... and at most this many expected false events per day across every canary x target stream together:
    # once the streams' observations add up to more, each stream's budget shrinks to share it, so adding canaries
    # does not add false alarms. null: no fleet cap.
    false_alarms_per_day: float | None = Field(default=1.0, gt=0)
    mmd_permutations: int = Field(default=200, ge=20, le=10_000)
    mmd_every: int = Field(default=30, ge=1)
    disabled_signals: list[str] = []

    @field_validator("disabled_signals")
    @classmethod
    def _known_signals(cls, v: list[str]) -> list[str]:
        known = disableable()
        for name in v:
            if name not in known and not (name.startswith("check:") and len(name) > len("check:")):
                raise ValueError(f"unknown signal {name!r}; expected one of {', '.join(known)}")
        return v

    def settings(self, observations_per_day: float = 0.0) -> DriftSettings:
        """Return the engine settings: the defaults with every field set here replacing them.

        Each stream's budget is `false_alarms_per_10k`, or less when the `observations_per_day` all streams
        together analyse (each observation is one evaluation of its stream) would spend more than
        `false_alarms_per_day` at it."""
        values = self.model_dump(exclude={"enabled", "embeddings", "false_alarms_per_day"}, exclude_defaults=True)
        if "disabled_signals" in values:
            values["disabled_signals"] = tuple(values["disabled_signals"])
        if self.false_alarms_per_day is not None and observations_per_day > 0:
            values["false_alarms_per_10k"] = min(self.false_alarms_per_10k,
                                                 self.false_alarms_per_day * 10_000 / observations_per_day)
        return DriftSettings(**values)


class RefusalConfig(Strict):
    """The optional LLM judge consulted where the local refusal classifier is unsure."""

    judge_target: str | None = None  # a configured target with a pinned model
    min_agreement: float = Field(default=0.9, gt=0, le=1)  # on the frozen calibration set, or no verdicts count
    band: tuple[float, float] = (0.3, 0.7)  # local refusal scores that count as unsure

    @field_validator("band")
    @classmethod
    def _band(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= v[0] <= v[1] <= 1:
            raise ValueError(f"must be [low, high] with 0 <= low <= high <= 1, got [{v[0]:g}, {v[1]:g}]")
        return v


class MonitorFile(Strict):
    """The top-level monitor.yaml as written by the user."""

    targets: list[Target] = Field(min_length=1)
    probes: list[str] = ["./probes"]
    storage: Storage = Storage()
    http: Http = Http()
    daemon: Daemon = Daemon()
    drift: DriftConfig = DriftConfig()
    alerts: AlertsConfig = AlertsConfig()
    refusal: RefusalConfig = RefusalConfig()


class ProbeFile(Strict):
    canaries: list[Canary] = []
