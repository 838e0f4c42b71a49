"""A model's error about one of its keys, found by a check that reads other fields too (a cross-field bound).

Pydantic places such an error at the validator's model or field; config loading places this one at the key it is
about (its line, `alerts.retry.give_up_after`) and shows that key's value as written.
"""

from __future__ import annotations

from pydantic_core import PydanticCustomError

# The error type: config loading appends ctx["key"] (dotted, relative to where pydantic placed the error) to its path
KEYED = "keyed"


def keyed_error(key: str, message: str, value: object) -> PydanticCustomError:
    """Return the error `message` about `key` (dotted, under the validator's model or field), whose value is `value`
    (shown when the document does not hold it: a default)."""
    return PydanticCustomError(KEYED, message, {"key": key, "value": value})
