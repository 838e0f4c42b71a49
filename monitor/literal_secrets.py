"""Secrets are never read from the config text: a model refuses, by name, the key a secret would be written under.

A target's `api_key`, a Slack sink's `url` and a PagerDuty sink's `routing_key` are refused before the fields are
read, with a message that says where the secret goes instead and never shows it (an unknown key's "Extra inputs are
not permitted" would echo the value).
"""

from __future__ import annotations

from typing import Any

from pydantic import model_validator
from pydantic_core import PydanticCustomError

# The error type of a refused key: config loading names the key itself (its line, `targets[0].api_key`), where the
# model validator's error is the model's, and never shows its value
LITERAL_SECRET = "literal_secret"


def refused_key(key: str, message: str) -> Any:
    """Return a model validator (run before the fields) that refuses input holding `key`, saying `message`."""

    def refuse(cls: type, data: Any) -> Any:
        if isinstance(data, dict) and key in data:
            raise PydanticCustomError(LITERAL_SECRET, message, {"key": key})
        return data

    return model_validator(mode="before")(refuse)  # a classmethod, as its first parameter is `cls`
