"""A mutation fuzzer for the configuration: monitor.yaml, the probe files and the web config file.

Each case is a config folder of valid files (`seeds`: targets of both providers, every sink type, drift settings,
a probe file with crons, judges, regexes and a JSON schema, two files of the shipped probe library, a web config
file with TLS and basic auth) with one file mutated from a fixed seed (`mutate`): keys removed, nulled, renamed or
added, values of the wrong type or range, odd text up to a megabyte, durations, crons, regexes and JSON schemas that
do not hold, duplicate and unknown ids; YAML broken by tabs, quotes, aliases, tags, nesting or numbers too long to
convert; bytes that are not UTF-8; empty files. `runner` loads each with `load_config` and runs
`llm-monitor check-config` on it in this process; `invariants` holds what the project promises of bad input: a
ConfigError whose every issue names a file of the folder, a field and a reason in the user's words, bounded in
length and showing no secret; check-config exiting 0 or 2, never with a traceback.

Run many seeds (not part of the test suite; `tests/test_config_fuzzed.py` runs a few hundred)::

    .venv/bin/python -m tests.support.cfgfuzz --cases 5000 --seed 1
"""

from tests.support.cfgfuzz.case import Case
from tests.support.cfgfuzz.invariants import cli_violations, load_violations
from tests.support.cfgfuzz.mutate import base_files, make_case, mutate_data
from tests.support.cfgfuzz.runner import Outcome, check_config, run_case, run_cases

__all__ = ["Case", "Outcome", "base_files", "check_config", "cli_violations", "load_violations", "make_case",
           "mutate_data", "run_case", "run_cases"]
