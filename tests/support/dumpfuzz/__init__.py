"""A mutation fuzzer for the JSON-lines files llm-monitor reads: `replay` dumps and `refusal --jsonl` input.

Each case starts from valid lines (recorded GPT-4 answers from ../shared/datasets/llmdrift, synthetic rows with
every optional fact, the rows `llm-monitor export` wrote of a store; XSTest prompts and completions for `refusal`)
and mutates them from a fixed seed: fields removed, null or of the wrong type, unknown fields, huge strings, odd
Unicode (lone surrogates, NUL, RTL), invalid UTF-8, lines that are not JSON or not objects, blank lines, CRLF, a
byte-order mark, no final newline, many lines, odd timestamps, duplicate keys, deep nesting, NaN and Infinity
(not JSON: refused wherever they are).
Each mutation says whether the command must accept it or refuse it naming the line (and the field). The commands
run in this process through `monitor.cli.main` (`runner.run_cli`) with strict UTF-8 pipes for output; `violations`
checks: exit 0 or 2, never a traceback; an error names file, line and field in bounded words; output reads back
(`refusal --jsonl` keeps every field and adds `refusal` and `refusal_score`, and writes JSON a strict reader takes). `roundtrip.export_replay` stores
observations of every shape, exports them and replays the export.

Run many seeds (`tests/test_dumps_fuzzed.py` runs a few hundred)::

    .venv/bin/python -m tests.support.dumpfuzz --cases 3000 --seed 1
"""

from tests.support.dumpfuzz.case import ERROR, OK, Case, Mark
from tests.support.dumpfuzz.mutate import make_case
from tests.support.dumpfuzz.roundtrip import export_replay
from tests.support.dumpfuzz.runner import Outcome, run_case, run_cases, run_cli, violations
from tests.support.dumpfuzz.seeds import Seeds, exported_rows

__all__ = ["ERROR", "OK", "Case", "Mark", "Outcome", "Seeds", "export_replay", "exported_rows", "make_case",
           "run_case", "run_cases", "run_cli", "violations"]
