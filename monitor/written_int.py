"""An integer YAML read from text other than its decimal digits, keeping that text.

YAML 1.1 (PyYAML's) reads `010` as 8 (octal), `0x1F` as 31, `1_000` as 1000 and `1:30` as 90 (base 60). Where a
value is text (a label value: Prometheus keeps `010` as written), the number alone hides what was written; config
loading gives such an int as a `WrittenInt`, whose `text` a check can show (monitor.alerts.config).
"""

from __future__ import annotations


class WrittenInt(int):
    """An int with the YAML text it was read from (`010` for 8)."""

    text: str

    @classmethod
    def of(cls, value: int, text: str) -> WrittenInt:
        out = cls(value)
        out.text = text
        return out


__all__ = ["WrittenInt"]
