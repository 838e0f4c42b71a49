"""The exception tree of llm-monitor, drawn in one place.

Exceptions mean llm-monitor itself (or its input) is broken. A failing upstream is never an exception that
escapes: it becomes an :class:`monitor.domain.Observation` with an ``error_type``.

    MonitorError
    ├── ConfigError        bad config or probe file (file, line, field, value, reason)
    ├── SecretError        a secret is missing or unusable, or was written into the config text
    │   └── SecretMissing  a named secret's variable or file is unset, empty or unreadable
    ├── StoreError         the store is unreachable or its schema is newer than this build
    └── ReplayError        a replay dump cannot be read
"""

from __future__ import annotations

from dataclasses import dataclass


class MonitorError(Exception):
    """Base class of every error llm-monitor raises on purpose."""


@dataclass
class ConfigIssue:
    """One problem found in a config or probe file."""

    file: str
    field: str
    reason: str
    line: int | None = None
    value: object = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        value = "" if self.value is None else f" (value: {shown(self.value)})"
        return f"{where}: {_clipped(self.field, MAX_REASON)}: {_clipped(self.reason, MAX_REASON)}{value}"


MAX_SHOWN = 200  # characters of a value an issue shows: a megabyte written in a field is not echoed whole
MAX_REASON = 1000  # ... and of its reason, which may quote the value too (pydantic's "Input tag '...' found")


def _clipped(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def named(name: str) -> str:
    """An id as a message names it: as written, or cut short (`shown`) when it is too long to repeat."""
    return name if len(name) <= MAX_SHOWN else shown(name)


def shown(value: object, limit: int = MAX_SHOWN) -> str:
    """A value as an error shows it: its repr, cut at `limit` characters (saying how long it was); an integer too
    long to print whole, by its size."""
    if isinstance(value, int) and value.bit_length() > 640:  # repr() refuses past 4,300 digits (about 14,000 bits)
        return f"an integer of about {int(value.bit_length() * 0.30103):,} digits"
    if isinstance(value, str):  # cut by what repr() shows: a control or format character is 6 (\u202e)
        text = repr(value[:limit])
        return text if len(text) <= limit and len(value) <= limit else f"{text[:limit]}… ({len(value):,} characters)"
    return _clipped(repr(value), limit)


class ConfigError(MonitorError):
    """A config or probe file is invalid; carries every issue found, each naming file, line, field and value."""

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class SecretError(MonitorError):
    """A secret is missing from the environment, or was written literally into the config."""

    def located(self, where: str) -> SecretError:
        """This error led by `where`, the file and line of the entry naming the secret (`monitor.yaml:12: target
        t: ...`), its class kept; itself when `where` is empty (an entry not loaded from a file)."""
        return type(self)(f"{where}: {self}") if where else self

    @classmethod
    def of(cls, problems: list[SecretError]) -> SecretError:
        """One error for every secret a config lacks, a line each (itself when there is one): a start or a reload
        says them all, as it does the config's own problems, rather than one per attempt."""
        return problems[0] if len(problems) == 1 else cls("\n".join(str(p) for p in problems))


class SecretMissing(SecretError):
    """A secret's named variable or file is unset, empty or unreadable (a value is there but bad: SecretError)."""


class StoreError(MonitorError):
    """The store cannot be reached or has a schema this build does not know."""


class NoSchema(StoreError):
    """A PostgreSQL store's search_path names no schema that exists: `reason` says which, without the URL, for an
    error that names the config's field instead."""

    def __init__(self, shown_url: str, reason: str):
        super().__init__(f"cannot prepare the store at {shown_url}: {reason}")
        self.reason = reason


class ReplayError(MonitorError):
    """A replay dump is malformed; the message names the file, line and field."""
