"""One fuzz case (`Case`): the files of a config folder, one of them mutated, and the values odd input is made of."""

from __future__ import annotations

from dataclasses import dataclass, field

MONITOR = "monitor.yaml"
WEB = "web.yml"
BIG = 1_000_000  # characters of the longest value: a message must not echo it whole

ODD_VALUES: list[object] = [
    None, "", "7", "-3", "1e3", "x" * 300, -1, 0, 10**30, -(10**20), 1.5, True, False, [], [1, "a"], {}, {"a": 1},
    float("nan"), float("inf"), float("-inf"), "\u202eevil\u202c", "😀🔥", "a\x00b", "\x1b[31mred", "line\nbreak",
    "${FUZZ_UNSET_VAR}", "${FUZZ_OPENAI_KEY}", "ü" * 50, "[/x]", "%s%n{0}",
]
DURATIONS = ["5x", "-5m", "1e400s", "", "5 m", "99999999999999999999d", "nan", "inf", "1h-", "m", "0s", "1.5.5s",
             "٣m", "5mm", "1_000s", "P1D"]
CRONS = ["* * *", "61 * * * *", "*/0 * * * *", "0 0 31 2 *", "@reboot", "* * * * * * *", "0 0 30 2 *", "a b c d e",
         "1-0 * * * *", "", "0 0 29 2 1", "*/99999999999 * * * *"]
REGEXES = ["(", "[a-", "(?P<x", "a{2,1}", "\\", "*a", "(?<=a+)b", "(?P<n>a)(?P<n>b)", "\\p{L}", "(?i", "a" * 5000,
           "(a+)+$"]
SCHEMAS: list[object] = [{"type": "nope"}, {"minItems": -1}, {"$ref": "#/nope"}, {"pattern": "("}, {"required": "n"},
                         {"type": ["object", 5]}, {"properties": []}, {"$schema": "http://bad/schema"}, [], "object",
                         {"items": {"type": {"type": "x"}}}, {"enum": []}, {"$ref": "http://127.0.0.1:9/s.json"}]


@dataclass
class Case:
    """A config folder's files (relative path -> bytes) and what was done to them (for the report)."""

    id: str
    files: dict[str, bytes]
    target: str  # the file mutated
    mutations: list[str] = field(default_factory=list)
    web_flag: bool = False  # pass the web config file as --web.config.file rather than http.web_config_file
