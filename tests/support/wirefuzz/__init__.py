"""A mutation fuzzer for the providers' reading of upstream answers, over a real loopback HTTP server.

Each case is a valid answer (OpenAI or Anthropic, streamed or whole, text or tool call) mutated from a fixed seed:
JSON fields removed, nulled or given values of the wrong type or range, unknown fields and events, events
duplicated, dropped or swapped, bodies truncated or broken by invalid UTF-8, 200 answers carrying errors, error
statuses with odd bodies and headers or bodies cut short of their Content-Length. The server (`WireServer`,
asyncio) writes each case's bytes as they are and closes the connection (or, for an error page that stalls partway,
keeps it open until the client gives up at the case's short timeout); the providers are the daemon's own
(`build_provider`), one per kind, reused across cases
as the runner reuses them. `violations` checks the invariants the project promises of every `CallResult`.

Run many seeds (not part of the test suite; `tests/test_providers_fuzzed.py` runs a few thousand)::

    .venv/bin/python -m tests.support.wirefuzz --cases 5000 --seed 1
"""

from tests.support.wirefuzz.case import KINDS, ODD_VALUES, Case
from tests.support.wirefuzz.invariants import violations
from tests.support.wirefuzz.mutate import make_case, mutate_json
from tests.support.wirefuzz.runner import PROBES, Outcome, WireServer, daemon_provider, run_cases, store_cases
from tests.support.wirefuzz.shapes import SHAPES

__all__ = ["KINDS", "ODD_VALUES", "PROBES", "SHAPES", "Case", "Outcome", "WireServer", "daemon_provider", "make_case",
           "mutate_json", "run_cases", "store_cases", "violations"]
