"""Config entries that know where they were written, for the errors found only when they are used.

A target's API key and an alert sink's secrets are read when the daemon builds what uses them (check-config, run,
a reload), after loading has checked the file; their problems name the file and line of the entry as every other
config error does, and so do check-config's warnings about an entry or a part of it (a canary's uncalibrated
judge check, a target's spend cap without a price, drift.embeddings without a price, an unsigned webhook, a web
config file's basic auth without TLS or its certificate near its expiry).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

from pydantic import BaseModel, PrivateAttr


class Placed(BaseModel):
    """A config entry (a target, an alert sink, a canary, drift.embeddings, the web config file) that carries the
    `file:line` loading found it at, and those of the parts of it a warning may be about.

    The place is private state, not a field: it is not written in the config, and a model built in code has none
    (its errors are named as before). Loading sets it with :meth:`located`; copies keep it.
    """

    _where: str = PrivateAttr(default="")
    _parts: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def where(self) -> str:
        """`file:line` of the entry in the config (empty for one not loaded from a file)."""
        return self._where

    def where_of(self, part: str) -> str:
        """`file:line` of a part of the entry (a canary's `checks[0]`, a web config file's `basic_auth_users`) that
        loading placed, else of the entry itself."""
        return self._parts.get(part) or self._where

    def __eq__(self, other: object) -> bool:
        """Equal as the entries written are: where they were written is not part of them (a line shifted by an
        edit above does not make a reloaded target another target)."""
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def located(self, where: str, parts: Mapping[str, str] | None = None) -> Self:
        """Return a copy of this entry that names `where` (`file:line`) in the problems of its secrets and in
        check-config's warnings, and `parts` (name -> `file:line`) in those about its parts."""
        copy = self.model_copy()
        copy._where = where
        if parts is not None:
            copy._parts = dict(parts)
        return copy


__all__ = ["Placed"]
