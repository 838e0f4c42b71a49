"""The drift engine's settings as monitor.yaml writes them, and the optional embeddings signal's endpoint."""

from __future__ import annotations

from pydantic import Field, field_validator

from monitor.config.strict import Strict
from monitor.config.target import MAX_PRICE
from monitor.drift.names import disableable
from monitor.drift.settings import DriftSettings
from monitor.known_names import known as known_list
from monitor.one_line import one_line
from monitor.placed import Placed


class InputPrices(Strict):
    """USD per million input tokens (an embeddings model bills no output tokens)."""

    input: float = Field(ge=0, le=MAX_PRICE)


class EmbeddingsConfig(Strict, Placed):
    """Where the optional semantic-similarity signal gets its vectors: a target's OpenAI-compatible API (Placed: a
    warning about its price names its line).

    Its calls count in the target's spend and cap (canary `_embeddings`), priced by `prices` or the shipped table;
    the target's own `prices` are its chat model's and are not used for them."""

    target: str  # a configured target (its base_url and key are used)
    model: str = Field(min_length=1, max_length=200)  # e.g. text-embedding-3-small, nomic-embed-text
    prices: InputPrices | None = None

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        # sent in each call's JSON body: a ${VAR} ending in a line break failed every call with a 404 naming it
        return one_line(v, after=", which no model name has")


class DriftConfig(Strict):
    """The drift engine's knobs (see monitor.drift.settings.DriftSettings for what each does)."""

    enabled: bool = True
    embeddings: EmbeddingsConfig | None = None
    baseline_size: int = Field(default=30, ge=5, le=10_000)
    # while a baseline forms, this many failed calls in a row or more are an outage and left out of its error rate
    baseline_outage_run: int = Field(default=3, ge=2, le=10_000)
    window: int = Field(default=30, ge=5, le=10_000)
    eval_every: int = Field(default=10, ge=1, le=10_000)  # past the longest window a test would never run
    false_alarms_per_10k: float = Field(default=0.5, gt=0, le=100)  # per stream, per 10,000 observations
    # ... and at most this many expected false events per day across every canary x target stream together:
    # once the streams' observations add up to more, each stream's budget shrinks to share it, so adding canaries
    # does not add false alarms. null: no fleet cap.
    false_alarms_per_day: float | None = Field(default=1.0, gt=0)
    mmd_permutations: int = Field(default=200, ge=20, le=10_000)
    mmd_every: int = Field(default=30, ge=1, le=10_000)  # past the longest window a test would never run
    disabled_signals: list[str] = []

    @field_validator("disabled_signals")
    @classmethod
    def _known_signals(cls, v: list[str]) -> list[str]:
        known = disableable()
        for name in v:
            if name not in known and not (name.startswith("check:") and len(name) > len("check:")):
                raise ValueError(f"unknown signal {name!r} {known_list(known, name)}")
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
