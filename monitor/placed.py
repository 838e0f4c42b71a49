"""Config entries that know where they were written, for the errors found only when they are used.

A target's API key and an alert sink's secrets are read when the daemon builds what uses them (check-config, run,
a reload), after loading has checked the file; their problems name the file and line of the entry as every other
config error does, and so do check-config's warnings about an entry (a canary's uncalibrated judge, a target's
spend cap without a price, an unsigned webhook).
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, PrivateAttr


class Placed(BaseModel):
    """A config entry (a target, an alert sink, a canary) that carries the `file:line` loading found it at.

    The place is private state, not a field: it is not written in the config, and a model built in code has none
    (its errors are named as before). Loading sets it with :meth:`located`; copies keep it.
    """

    _where: str = PrivateAttr(default="")

    @property
    def where(self) -> str:
        """`file:line` of the entry in the config (empty for one not loaded from a file)."""
        return self._where

    def __eq__(self, other: object) -> bool:
        """Equal as the entries written are: where they were written is not part of them (a line shifted by an
        edit above does not make a reloaded target another target)."""
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def located(self, where: str) -> Self:
        """Return a copy of this entry that names `where` (`file:line`) in the problems of its secrets."""
        copy = self.model_copy()
        copy._where = where
        return copy


__all__ = ["Placed"]
