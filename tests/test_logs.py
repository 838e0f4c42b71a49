"""Both log formats carry a record's `extra=` context: JSON lines as keys, text as logfmt key=value."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from monitor.logs import JsonFormatter, TextFormatter, setup_logging


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


def _lines_after_uvicorn_config(capsys: pytest.CaptureFixture[str], make_config: Callable[[], object],
                                level: str, fmt: str) -> list[str]:
    """Set up logging as the CLI does, let uvicorn configure its loggers, and log what uvicorn logs."""
    setup_logging(level, fmt)
    try:
        make_config()
        logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 1,
                                                extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"})
        logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/", "1.1", 200)
    finally:
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # leave no handlers or levels to later tests
            logger = logging.getLogger(name)
            logger.handlers[:] = []
            logger.propagate = True
            logger.setLevel(logging.NOTSET)
    return capsys.readouterr().err.splitlines()


def test_the_daemons_http_server_logs_through_the_chosen_format(capsys: pytest.CaptureFixture[str]) -> None:
    """`--log-format json` means every line on stderr is JSON: uvicorn's own text handler ("WARNING:  Invalid
    HTTP request received." when a client sends garbage to /metrics) must not write beside it."""
    from starlette.applications import Starlette

    from monitor.http import Server

    lines = _lines_after_uvicorn_config(capsys, lambda: Server.for_app(Starlette()), "info", "json")
    assert [json.loads(line)["msg"] for line in lines] == ["Invalid HTTP request received."]


def test_the_simulators_server_logs_through_the_chosen_format_and_level(capsys: pytest.CaptureFixture[str]) -> None:
    """`llm-monitor --log-level warning sim` shows no request lines, and those shown at info are JSON lines."""
    from monitor.sim import builtin_scenario
    from monitor.sim.server import _config, _listen, build_app

    def config(level: str) -> Callable[[], object]:
        def make() -> object:
            listener = _listen("127.0.0.1", 0)
            listener.close()
            return _config(build_app(builtin_scenario("demo")), level, listener)
        return make

    lines = _lines_after_uvicorn_config(capsys, config("warning"), "warning", "json")
    assert [json.loads(line)["msg"] for line in lines] == ["Invalid HTTP request received."]
    lines = _lines_after_uvicorn_config(capsys, config("info"), "info", "json")
    assert [json.loads(line)["msg"] for line in lines] == [
        "Invalid HTTP request received.", "Started server process [1]", '127.0.0.1:1 - "GET / HTTP/1.1" 200']
    assert "color_message" not in lines[1]  # uvicorn's ANSI-coloured copy of the message is not a field
