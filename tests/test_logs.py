"""Both log formats carry a record's `extra=` context: JSON lines as keys, text as logfmt key=value."""

from __future__ import annotations

import json
import logging

from monitor.logs import JsonFormatter, TextFormatter


def _record(exc: bool = False) -> logging.LogRecord:
    logger = logging.getLogger("monitor.test")
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError as e:
            exc_info = (type(e), e, e.__traceback__)
    return logger.makeRecord("monitor.test", logging.WARNING, __file__, 1, "probe %s failed", ("c1",), exc_info,
                             extra={"canary": "c1", "target": "gpt mini", "attempt": 2, "detail": {"code": 429}})


def test_json_lines_carry_the_extra_fields() -> None:
    out = json.loads(JsonFormatter().format(_record()))
    assert (out["level"], out["msg"], out["canary"], out["target"], out["attempt"]) == \
        ("warning", "probe c1 failed", "c1", "gpt mini", 2)
    assert out["detail"] == {"code": 429}


def test_text_lines_carry_the_extra_fields_as_logfmt() -> None:
    line = TextFormatter().format(_record())
    assert line.endswith('WARNING monitor.test: probe c1 failed canary=c1 target="gpt mini" attempt=2 '
                         'detail="{\\"code\\": 429}"')


def test_text_traceback_follows_the_fields() -> None:
    first, *rest = TextFormatter().format(_record(exc=True)).splitlines()
    assert first.endswith("probe c1 failed canary=c1 target=\"gpt mini\" attempt=2 detail=\"{\\\"code\\\": 429}\"")
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "RuntimeError: boom"
