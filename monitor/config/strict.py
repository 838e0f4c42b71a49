"""What every config model shares: strict (unknown keys rejected, frozen, no inf or NaN, no boolean for a number)
and the id rule."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ModelWrapValidatorHandler, model_validator

from monitor.not_bool import refuse_bools

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}\Z")


class Strict(BaseModel):
    """Base of every config model: unknown keys rejected, immutable, no infinite or NaN number."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="wrap")
    @classmethod
    def _no_bool_for_number(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        return refuse_bools(cls, data, handler)


def check_id(v: str) -> str:
    """Return `v` if it is a valid target or canary id, else raise ValueError saying what an id may hold."""
    if not _ID.match(v):
        raise ValueError("must be lowercase letters, digits, '.', '_' or '-', starting with a letter or digit")
    return v


# A target's or canary's id: not empty (pydantic's own message), then the id rule
Id = Annotated[str, Field(min_length=1), AfterValidator(check_id)]

