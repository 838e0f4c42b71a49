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
    assert rest[0] == "  | Traceback (most recent call last):" and rest[-1] == "  | RuntimeError: boom"


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


# every character a line-based reader (Python's splitlines, a log shipper, an editor) may break a line at
_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def _injected(exc: BaseException | None = None) -> logging.LogRecord:
    """A record whose message and fields hold a second, forged record, as a completion or a receiver's error may."""
    forged = "2026-12-03 12:00:00,000 ERROR   monitor.alerts: forged"
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.getLogger("monitor.test").makeRecord(
        "monitor.test", logging.WARNING, __file__, 1, "receiver said %s", (f"no{_BREAKS}{forged}",), exc_info,
        extra={"reply": f"a{_BREAKS}{forged}", "short": "x\ny\u2028z"})


def test_a_text_record_is_one_line_whatever_its_message_and_fields_hold() -> None:
    line = TextFormatter().format(_injected())
    assert len(line.splitlines()) == 1
    assert "receiver said no\\n\\r\\x0b\\x0c\\x1c\\x1d\\x1e\\x85\\u2028\\u2029" in line
    assert ' short="x\\ny\\u2028z"' in line and ' reply="a\\n\\r' in line


def test_a_text_tracebacks_continuation_lines_are_marked() -> None:
    """A traceback stays readable on several lines, each marked as the record's: a forged record in the
    exception's message can not start a line of its own."""
    try:
        raise RuntimeError(f"boom{_BREAKS}2026-12-03 12:00:00,000 ERROR   monitor.alerts: forged")
    except RuntimeError as e:
        record = _injected(e)
    first, *rest = TextFormatter().format(record).split("\n")
    assert len(first.splitlines()) == 1 and rest
    assert all(line.startswith("  | ") and len(line.splitlines()) == 1 for line in rest)
    assert rest[0] == "  | Traceback (most recent call last):"
    assert rest[-2:] == ["  | RuntimeError: boom",  # the message's newline ends a line, its other breaks are escaped
                         "  | \\r\\x0b\\x0c\\x1c\\x1d\\x1e\\x85\\u2028\\u20292026-12-03 12:00:00,000 ERROR   monitor.alerts: forged"]


def test_a_text_stack_is_marked_as_the_record_s() -> None:
    record = _injected()
    record.stack_info = "Stack (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
    _, *rest = TextFormatter().format(record).split("\n")
    assert rest and all(line.startswith("  | ") for line in rest)


def test_a_json_record_is_one_line_whatever_it_holds() -> None:
    try:
        raise RuntimeError(f"boom{_BREAKS}forged")
    except RuntimeError as e:
        record = _injected(e)
    line = JsonFormatter().format(record)
    assert len(line.splitlines()) == 1
    out = json.loads(line)
    assert out["reply"].startswith(f"a{_BREAKS}") and out["exc"].endswith(f"RuntimeError: boom{_BREAKS}forged")


def _decoded(escaped: str) -> str:
    """What a reader gets back from a text record's escapes (Python's: `\\\\`, `\\n`, `\\x1b`, `\\u202e`)."""
    return escaped.encode("latin-1", "backslashreplace").decode("unicode_escape")


# a value and another value its escaped form was written the same as: a literal backslash before `n`, `x1b`, `u2028`
_LOOKALIKES = [("a\\nb", "a\nb"), ("a\\x1bb", "a\x1bb"), ("a\\u2028b", "a\u2028b"), ("C:\\new\\x85", "C:\new\x85"),
               ("tail\\", "tail\\\\"), ("é\\r", "é\r")]


@pytest.mark.parametrize(("literal", "control"), _LOOKALIKES)
def test_a_text_record_tells_a_logged_backslash_from_an_escape(literal: str, control: str) -> None:
    """The text format escapes line breaks and control characters as `\\n`, `\\x1b`: a message or field holding a
    backslash before `n` (a Windows path, a regex, an upstream's JSON error) was written the same as one holding a line
    break, so no reader could tell which was logged. A backslash is written `\\\\` where escaping applies."""
    lines = {}
    for text in (literal, control):
        record = logging.getLogger("monitor.test").makeRecord("monitor.test", logging.WARNING, __file__, 1, "said %s",
                                                              (text,), None, extra={"reply": text, "path": f"{text}x"})
        line = TextFormatter().format(record)
        assert len(line.splitlines()) == 1
        message = line.split("monitor.test: said ", 1)[1].split(" reply=", 1)[0]
        assert _decoded(message) == text  # the message decodes back to what was logged
        fields = line.split(" reply=", 1)[1]
        reply, path = fields.split(" path=")
        # a field value needing any escape is quoted as logfmt tools read it: a JSON string
        assert json.loads(reply) == text and json.loads(path) == f"{text}x"
        lines[text] = line.split(" WARNING ", 1)[1]
    assert lines[literal] != lines[control]


def test_a_text_traceback_tells_a_backslash_from_an_escape() -> None:
    records = []
    for text in _LOOKALIKES[0]:
        try:
            raise RuntimeError(text)
        except RuntimeError as e:
            records.append(logging.getLogger("monitor.test").makeRecord(
                "monitor.test", logging.ERROR, __file__, 1, "failed", (), (type(e), e, e.__traceback__)))
    assert TextFormatter().format(records[0]).split("\n")[-1] == "  | RuntimeError: a\\\\nb"
    assert TextFormatter().format(records[1]).split("\n")[-2:] == ["  | RuntimeError: a", "  | b"]


def test_a_plain_field_value_stays_unquoted_and_json_lines_are_unchanged() -> None:
    record = logging.getLogger("monitor.test").makeRecord("monitor.test", logging.INFO, __file__, 1, "m", (), None,
                                                          extra={"target": "gpt-mini", "model": "café", "n": 3})
    assert TextFormatter().format(record).endswith(" target=gpt-mini model=café n=3")
    for literal, control in _LOOKALIKES:
        for text in (literal, control):
            record = logging.getLogger("monitor.test").makeRecord("monitor.test", logging.INFO, __file__, 1, "%s",
                                                                  (text,), None, extra={"reply": text})
            out = json.loads(JsonFormatter().format(record))
            assert (out["msg"], out["reply"]) == (text, text)
