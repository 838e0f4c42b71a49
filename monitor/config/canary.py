"""A canary: a probe prompt with its schedule, checks and declared signals; and a probe file of them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    ModelWrapValidatorHandler,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.checks import CheckSpec, check_names
from monitor.checks.base import MAX_NAME, VALIDATING_CANARY
from monitor.checks.json_schema import check_schema
from monitor.config.strict import Id, Strict, check_id
from monitor.config.target import RequestParams
from monitor.config.timing import cron_trigger, never_fires, shortest_gap_s
from monitor.drift.names import declarable
from monitor.durations import format_duration, parse_duration
from monitor.errors import named
from monitor.known_names import known as known_list
from monitor.placed import Placed


class Schedule(Strict):
    """When a canary runs: a fixed period (`every: 5m`, first run within `daemon.max_start_delay` of a start) or a
    cron expression (UTC; at its times only, not at a start), with optional jitter."""

    every: str | None = None
    cron: str | None = None
    jitter: str | None = None

    # Each field is checked on its own, so an error names it (`schedule.every`) and shows its value, as every other
    # field error does; only "which of them" is the schedule's own check.
    @field_validator("every", "jitter", mode="before")
    @classmethod
    def _unit(cls, v: Any) -> Any:
        # monitor.yaml's durations take bare seconds; a schedule's do not (is `every: 5` seconds or minutes?):
        # say so, rather than pydantic's "Input should be a valid string"
        if isinstance(v, int | float) and not isinstance(v, bool):
            n = format(v, "g")
            raise ValueError(f"a schedule's durations need their unit: {n}s for seconds or {n}m for minutes")
        return v

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
                raise ValueError(f"invalid cron expression: {e}{_period_hint(v)}") from e
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


def _period_hint(cron: str) -> str:
    """For `*/90` in the minutes (or `*/36` in the hours, `*/45` in the days): a cron step starts again at each hour
    (day, month), so a period longer than its field is no cron; say how to write the period meant."""
    fields = cron.split()
    for i, (unit, limit, field) in enumerate(zip("mhd", (60, 24, 31), fields[:3], strict=False)):
        step, span = field.removeprefix("*/"), dict(m="hour", h="day", d="month")[unit]
        if not (field.startswith("*/") and step.isdigit() and int(step) >= limit):
            continue
        if int(step) == limit:  # once per the next field's span: a cron writes that, at the field's first value
            once = " ".join([*fields[:i], "1" if unit == "d" else "0", *fields[i + 1:]])
            name = dict(m="minutes", h="hours", d="days of the month")[unit]
            every = f", or `every: {step}{unit}` for a period counted from the start" \
                if all(f == "*" for f in fields[i + 1:]) else ""
            return f"; `*/{step}` in the {name} is once {'an' if span == 'hour' else 'a'} {span}: write `{once}`{every}"
        kept = " ".join(fields[i + 1:])
        lost = "" if all(f == "*" for f in fields[i + 1:]) else \
            f" (it runs at all times: `every` keeps no `{kept}`)"
        return f"; a cron step starts again at each {span}, so no cron runs every {step}{unit}: write `every: " \
               f"{step}{unit}` for that{lost}"
    return ""


CacheTtl = Literal["5m", "1h"]
MAX_CACHE_POINTS = 4  # Anthropic's limit of cache_control breakpoints in one request


class Message(Strict):
    role: Literal["system", "user", "assistant"]
    content: str
    # A prompt-cache breakpoint after this message, kept for that long (Anthropic's cache_control: the prompt up to
    # and including it is cached; OpenAI-compatible servers cache prompts on their own and are sent nothing)
    cache: CacheTtl | None = None

    @model_validator(mode="after")
    def _cached_text(self) -> Message:
        if self.cache is not None and not self.content:
            raise ValueError("an empty message cannot carry `cache`: Anthropic refuses a breakpoint on an empty block")
        return self


_TOOL_KEYS = frozenset({"type", "function"})
_FUNCTION_KEYS = frozenset({"name", "description", "parameters", "strict"})


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    """Check one entry of a canary's `tools` against OpenAI's function-tool format, which every call sends (and
    the Anthropic provider converts): else a typo there failed every call at run time, or crashed its checks."""
    shape = "a tool is {type: function, function: {name, description, parameters}}"
    unknown = sorted(set(tool) - _TOOL_KEYS)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} ({shape})")
    if tool.get("type") != "function":
        raise ValueError(f"type must be 'function' (OpenAI's function-tool format), got {tool.get('type')!r}")
    fn = tool.get("function")
    if not isinstance(fn, dict):
        raise ValueError(f"function must be a mapping ({shape})")
    unknown = sorted(set(fn) - _FUNCTION_KEYS)
    if unknown:
        raise ValueError(f"function: unknown key {unknown[0]!r} (name, description, parameters, strict)")
    name = fn.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"function.name must be a non-empty text, got {name!r}")
    if "description" in fn and not isinstance(fn["description"], str):
        raise ValueError("function.description must be a text")
    if "strict" in fn and not isinstance(fn["strict"], bool):
        raise ValueError("function.strict must be true or false")
    params = fn.get("parameters")
    if params is not None:
        if not isinstance(params, dict):
            raise ValueError("function.parameters must be a JSON Schema mapping")
        try:
            check_schema(params)
        except ValueError as e:
            raise ValueError(f"function.parameters: {e}") from None
    return tool


class Canary(Strict, Placed):
    """A probe prompt, run `samples` times per scheduled run against each of its targets."""

    id: Id
    description: str = ""
    messages: list[Message] = Field(min_length=1)
    params: RequestParams | None = None
    tools: list[Annotated[dict[str, Any], AfterValidator(_tool)]] | None = None
    samples: int = Field(default=1, ge=1, le=100)
    schedule: Schedule = Schedule(every="5m")
    targets: list[str] | None = None
    checks: list[CheckSpec] = []
    tags: list[str] = []
    # Rate signals declared to stay at zero (refused, error, exact_match, check:NAME): the first refusal, error,
    # mismatch or failed check opens a drift event at once, outside the statistical false-alarm budget.
    zero_tolerance: list[str] = []
    source: str = Field(default="", exclude=True)  # the probe file it came from

    @model_validator(mode="wrap")
    @classmethod
    def _naming_its_checks(cls, data: Any, handler: ModelWrapValidatorHandler[Canary]) -> Canary:
        """Validate with this canary's id (when it is a valid one) known to its checks' errors."""
        cid = data.get("id") if isinstance(data, dict) else None
        try:
            cid = check_id(cid) if isinstance(cid, str) else None
        except ValueError:
            cid = None
        token = VALIDATING_CANARY.set(named(cid) if cid else None)
        try:
            return handler(data)
        finally:
            VALIDATING_CANARY.reset(token)

    @field_validator("messages")
    @classmethod
    def _messages(cls, v: list[Message]) -> list[Message]:
        if not any(m.role == "user" for m in v):
            roles = ", ".join(m.role for m in v)
            raise ValueError(f"needs a user message: the upstream answers a user turn (roles given: {roles})")
        return v

    @field_validator("messages")
    @classmethod
    def _cache_points(cls, v: list[Message]) -> list[Message]:
        # in the order Anthropic reads the prompt: the system messages (its `system`), then the others
        points = [m.cache for m in sorted(v, key=lambda m: m.role != "system") if m.cache is not None]
        if len(points) > MAX_CACHE_POINTS:
            raise ValueError(f"{len(points)} messages set `cache`: Anthropic takes at most {MAX_CACHE_POINTS} "
                             "cache breakpoints in one request")
        if "5m" in points and "1h" in points[points.index("5m"):]:
            raise ValueError("a `cache: 1h` message comes after a `cache: 5m` one (system messages first): Anthropic "
                             "takes the longer-lived breakpoints before the shorter ones")
        return v

    @field_validator("checks")
    @classmethod
    def _result_names(cls, v: list[Any]) -> list[Any]:
        # a name that comes again is suffixed #2, #3...: `check:NAME#2` must fit a signal too (the store's column)
        long = next(((i, n) for i, n in enumerate(check_names(v)) if len(n) > MAX_NAME), None)
        if long is not None:
            raise ValueError(f"checks[{long[0]}] is named {long[1]!r} as a repeat ({len(long[1])} characters): a "
                             f"check's result name is at most {MAX_NAME}; give it a shorter `name`")
        return v

    @field_validator("tools")
    @classmethod
    def _tool_names(cls, v: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        names = [t["function"]["name"] for t in v or []]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:  # Anthropic refuses a request whose tool names repeat; a tool_call check would read the first
            raise ValueError(f"function name {twice[0]!r} declared twice: tool names must be unique")
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
            raise ValueError(f"unknown signal{'s' if len(unknown) > 1 else ''} {names} {known_list(known, unknown[0])}")
        return v


class ProbeFile(Strict):
    canaries: list[Canary] = []
