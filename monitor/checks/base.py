"""What every check shares: the spec base model, the evaluation context and the verdict shape."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.keyed_error import keyed_error
from monitor.not_bool import refuse_bools

Judge = Callable[[str], str]
Verdict = tuple[bool | None, str]  # (passed, detail); passed is None when the check cannot be applied
MAX_NAME = 74  # characters of a check's name: `check:NAME`, its drift signal, is then at most 80, as an id


# The id of the canary whose checks are being validated (set by the config's Canary), for an error to name it
VALIDATING_CANARY: ContextVar[str | None] = ContextVar("validating_canary", default=None)


def one_name_each(model: type[BaseModel], data: Any) -> None:
    """Raise an error about the field of `model` that `data` holds under both its names (json_schema's `schema`
    and `json_schema`), naming both and the canary being validated: pydantic takes one and calls the other an
    unknown key, though either alone is accepted."""
    if not isinstance(data, Mapping):
        return
    for name, f in model.model_fields.items():
        if f.alias and f.alias != name and f.alias in data and name in data:
            canary = VALIDATING_CANARY.get()
            raise keyed_error(name, f"{f'canary {canary}: ' if canary else ''}{f.alias} and {name} are one option "
                                    f"written twice ({name}: its name in code); keep one", None)


class BaseCheck(BaseModel):
    """Base of every check spec: strict (unknown keys rejected), immutable, with an optional result name.

    Subclasses add a ``type`` literal (the discriminator) and their own options; the result is reported under
    ``name`` when given, else under the type.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_name_each(cls, data: Any) -> Any:
        one_name_each(cls, data)
        return data

    @model_validator(mode="wrap")
    @classmethod
    def _no_bool_for_number(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        return refuse_bools(cls, data, handler)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        # the name is a metric label and a webhook field, and `check:NAME` a drift signal (80 characters at most,
        # as an id): a longer one was kept, and made every series and payload that carries it that long
        if v is not None and len(v) > MAX_NAME:
            raise ValueError(f"at most {MAX_NAME} characters ({len(v):,} given): a check's name is a metric label "
                             "and a webhook field, `check:NAME` a drift signal")
        return v


@dataclass(frozen=True, slots=True)
class Context:
    """What a check may need beyond the observation: the canary's prompt and tools, and the judge."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    judge: Judge | Mapping[str, Judge] | None = None
    gates: Any = None  # llm_judge.JudgeGates: the judges' calibration standing, kept by the caller


def plain(value: Any) -> Any:
    """Turn pydantic models (and lists/dicts of them) into plain JSON-like data."""
    if hasattr(value, "model_dump"):
        return value.model_dump(by_alias=True, exclude_none=True)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def ordered(low: float | None, high: float | None, low_name: str, high_name: str) -> None:
    """Raise ValueError when both bounds are set and low > high (used by field validators on the upper bound)."""
    if low is not None and high is not None and low > high:
        raise ValueError(f"{low_name} ({low}) must be <= {high_name} ({high})")


def within(value: float, low: float | None, high: float | None, what: str) -> Verdict:
    """Compare a measured value with optional inclusive bounds."""
    if low is not None and value < low:
        return False, f"{what} {value:g} < min {low:g}"
    if high is not None and value > high:
        return False, f"{what} {value:g} > max {high:g}"
    return True, f"{what} {value:g} within [{'-' if low is None else f'{low:g}'}, {'-' if high is None else f'{high:g}'}]"


def clip(text: str, limit: int = 80) -> str:
    """Shorten text for a detail message, keeping it on one line."""
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


def count_bound(limit: int) -> Any:
    """A `CountBounds` check's ``min`` or ``max``: unset, or a whole number from 0 to `limit`, past which a bound is
    a typo that passes or fails every answer (each subclass bounds both by what it measures)."""
    return Field(default=None, ge=0, le=limit)


class CountBounds(BaseCheck):
    """A check with inclusive integer bounds ``min``/``max``: at least one set, and min <= max. Subclasses declare
    both again with `count_bound`, giving the largest value they can measure."""

    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @field_validator("max")
    @classmethod
    def _order(cls, v: int | None, info: ValidationInfo) -> int | None:
        ordered(info.data.get("min"), v, "min", "max")
        return v

    @model_validator(mode="after")
    def _some_bound(self) -> CountBounds:
        if self.min is None and self.max is None:
            raise ValueError("set min, max or both")
        return self
